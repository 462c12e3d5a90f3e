// Issue throughput and end-to-end event throughput on a local 3-master Redis
// Cluster, and the same on a single node, for the `npm run bench` table.
// Self-contained: starts (and stops) its own redis-server processes.
//
//   import { measureCluster, measureSingle } from './cluster.js';
//   const cluster = await measureCluster({ tokens: 20_000 });
//   // { issuePerSec, eventsPerSec }
import type { Cluster, Redis } from 'ioredis';
import { TokenLifecycle, TokenStore } from '../lib/index.js';
import { RedisCluster } from '../spec/support/cluster.js';
import { RedisServer } from '../spec/support/redis.js';

export interface MeasureOptions {
  /** Tokens issued in the timed run. @default 20000 */
  tokens?: number;
  /** issue() calls in flight at once. @default 64 */
  concurrency?: number;
  /** Masters of the cluster (measureCluster only). @default 3 */
  masters?: number;
}

export interface Measurement {
  /** store.issue() calls resolved per second. */
  issuePerSec: number;
  /** `issued` events delivered per second by one lifecycle, from the first issue to the last event. */
  eventsPerSec: number;
}

const SECRET = 'a-bench-secret-that-is-at-least-32-bytes-long';

async function measure(redis: Redis | Cluster, options: MeasureOptions): Promise<Measurement> {
  const tokens = options.tokens ?? 20_000;
  const concurrency = options.concurrency ?? 64;
  const prefix = `bench${Date.now().toString(36)}:`;
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://bench.test', prefix });
  const lifecycle = new TokenLifecycle({ redis, prefix });
  let delivered = 0;
  let allDelivered: () => void = () => {};
  const done = new Promise<void>((resolve) => { allDelivered = resolve; });
  lifecycle.on('issued', () => {
    if (++delivered === tokens) allDelivered();
  });
  lifecycle.on('error', () => {});
  await lifecycle.start();
  // Warm up: scripts loaded on every master, connections open.
  await Promise.all(Array.from({ length: 256 }, () => store.issue('warmup', { ttl: 600 })));
  await new Promise((r) => setTimeout(r, 200));
  delivered = 0;

  const start = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < tokens) {
      next++;
      await store.issue(`user${next % 1000}`, { ttl: 600 });
    }
  }));
  const issued = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.race([done, new Promise((r) => setTimeout(r, 60_000))]);
  const ended = Number(process.hrtime.bigint() - start) / 1e9;
  await lifecycle.stop();
  return { issuePerSec: Math.round(tokens / issued), eventsPerSec: Math.round(delivered / ended) };
}

/** Issue and end-to-end events/s on a local cluster (3 masters, no replicas by default). */
export async function measureCluster(options: MeasureOptions = {}): Promise<Measurement> {
  const cluster = await RedisCluster.start({ masters: options.masters ?? 3, replicasPerMaster: 0 });
  try {
    const redis = cluster.client();
    await redis.ping();
    return await measure(redis, options);
  } finally {
    await cluster.stop();
  }
}

/** The same on one redis-server. */
export async function measureSingle(options: MeasureOptions = {}): Promise<Measurement> {
  const server = await RedisServer.start();
  try {
    return await measure(server.client(), options);
  } finally {
    await server.stop();
  }
}

// `tsx bench/cluster.ts` prints both.
if (import.meta.url === `file://${process.argv[1]}`) {
  const single = await measureSingle();
  const cluster = await measureCluster();
  console.table({ 'single node': single, 'cluster (3 masters)': cluster });
}
