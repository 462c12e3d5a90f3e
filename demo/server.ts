// `npm run demo`: the demo app on http://localhost:3000 (or $PORT), on whatever Redis
// demo/redis.ts finds or starts. Keys live under `demo:`, so a shared Redis is safe.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { TokenLifecycle, TokenStore } from '../lib/index.js';
import { createDemoApp } from './app.js';
import { demoRedis } from './redis.js';

const PREFIX = 'demo:';
const SHUTDOWN_TIMEOUT = 5000;

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, not ${JSON.stringify(process.env.PORT)}`);

  // Metrics: the library records through @opentelemetry/api; the application picks the
  // SDK and the exporter. Prometheus scrapes GET /metrics of the demo itself.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);

  const { redis, description, close } = await demoRedis();
  console.log(`Redis: ${description}`);

  let key: string | Uint8Array;
  if (process.env.TOKEN_SECRET) {
    key = process.env.TOKEN_SECRET;
    console.log('Signing key: TOKEN_SECRET');
  } else {
    key = randomBytes(32);
    console.log('Signing key: TOKEN_SECRET is not set, so a random 32-byte secret was generated; tokens stop verifying when the demo restarts.');
  }

  let store: TokenStore;
  let lifecycle: TokenLifecycle | undefined;
  try {
    store = new TokenStore({ redis, key, issuer: 'redis-token-lifecycle-demo', prefix: PREFIX });
    lifecycle = new TokenLifecycle({ redis, prefix: PREFIX });
    lifecycle.on('error', (err) => console.warn(`lifecycle: ${err.message}`));
    lifecycle.on('warning', (message) => console.warn(`lifecycle: ${message}`));
    lifecycle.on('issued', (e) => console.log(`issued   ${e.sub} ${e.jti}`));
    lifecycle.on('expired', (e) => console.log(`expired  ${e.sub} ${e.jti}`));
    lifecycle.on('revoked', (e) => console.log(`revoked  ${e.sub} ${e.jti} (${e.reason})`));
    lifecycle.on('session_started', (e) => console.log(`started  ${e.sub} session ${e.sid} ${e.jti}`));
    lifecycle.on('refreshed', (e) => console.log(`refreshed ${e.sub} session ${e.sid} ${e.jti}`));
    lifecycle.on('session_ended', (e) => console.log(`ended    ${e.sub} session ${e.sid} (${e.reason})`));
    lifecycle.on('reuse_detected', (e) => console.warn(`REUSE    ${e.sub} session ${e.sid}: a rotated refresh token came back; the session is ended`));
    await lifecycle.start();
  } catch (err) {
    await lifecycle?.stop();
    await close();
    throw err;
  }
  const started = lifecycle;
  const app = createDemoApp({ store, lifecycle: started, metrics: exporter });

  const server = app.listen(port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  }).catch(async (err) => {
    await started.stop();
    await close();
    throw err;
  });
  const { port: actual } = server.address() as AddressInfo;
  console.log(`Demo listening on http://localhost:${actual}  (Ctrl-C to stop)`);

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: shutting down`);
    // If something hangs, do not leave the terminal waiting.
    setTimeout(() => {
      console.error(`shutdown took longer than ${SHUTDOWN_TIMEOUT} ms: exiting`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT).unref();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // open /events streams would keep close() waiting forever
    await started.stop();
    await closed;
    await close();
    await meterProvider.shutdown();
    process.exit(0);
  };
  process.on('SIGINT', (signal) => void shutdown(signal));
  process.on('SIGTERM', (signal) => void shutdown(signal));
}

main().catch((err: unknown) => {
  console.error(`Demo failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
