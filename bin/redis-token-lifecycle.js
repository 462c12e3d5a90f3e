#!/usr/bin/env node
// The `redis-token-lifecycle` command: all of it is in dist/cli/cli.js (lib/cli/cli.ts).
import { main } from '../dist/cli/cli.js';

process.exitCode = await main(process.argv.slice(2));
// Everything is closed by now; should a handle linger, do not hang the shell.
setTimeout(() => process.exit(), 1000).unref();
