// What bin/redis-token-lifecycle.js does, on the TypeScript sources (no build needed):
// `node --import tsx spec/support/cli-main.ts tail --url …` in the CLI tests.
import { main } from '../../lib/cli/cli.js';

process.exitCode = await main(process.argv.slice(2));
setTimeout(() => process.exit(), 1000).unref();
