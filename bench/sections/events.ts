// Events delivered end to end (issue in another process → handler here) and CPU per event:
// a TokenLifecycle vs a seed-style subscriber that psubscribes `__key*__:*` and filters in JS.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenLifecycle, TokenStore } from '../../lib/index.js';
import { SECRET } from '../ops.js';
import { percentile, ratio, sample, show, sleep } from '../stats.js';
import type { Config, Row } from './types.js';

/** Issues `count` tokens from a child process; resolves when it says `start`, and `done` resolves when it exits. */
async function issuer(redisPort: number, prefix: string, count: number): Promise<{ done: Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../issuer.ts', import.meta.url).pathname], {
    env: { ...process.env, REDIS_PORT: String(redisPort), PREFIX: prefix, COUNT: String(count) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  return { done: new Promise((resolve) => child.once('exit', () => resolve())) };
}

interface Measure { rate: number; cpuUs: number }

async function measure(count: number, cap: number, begin: () => Promise<{ done: Promise<void> }>, counter: { n: number; last: number }): Promise<Measure> {
  counter.n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { done } = await begin();
  const deadline = Date.now() + cap;
  while (counter.n < count && Date.now() < deadline) await sleep(5);
  const cpu = process.cpuUsage(cpu0);
  await done;
  if (counter.n < count) throw new Error(`only ${counter.n}/${count} events within ${cap} ms`);
  return { rate: count / ((counter.last - t0) / 1000), cpuUs: (cpu.user + cpu.system) / count };
}

export async function eventsSection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client();
  const rates: [number[], number[]] = [[], []];
  const cpus: [number[], number[]] = [[], []];
  const cap = 120_000;
  try {
    for (let run = 0; run < config.runs; run++) {
      // This library: journal → lifecycle → handler.
      {
        await redis.config('SET', 'notify-keyspace-events', '');
        const prefix = `ev${randomBytes(3).toString('hex')}:`;
        const lifecycle = new TokenLifecycle({ redis, prefix });
        const counter = { n: 0, last: 0 };
        lifecycle.on('issued', () => { counter.n++; counter.last = performance.now(); });
        lifecycle.on('error', () => {});
        await lifecycle.start();
        const m = await measure(config.events, cap, () => issuer(server.port, prefix, config.events), counter);
        await lifecycle.stop();
        rates[0].push(m.rate);
        cpus[0].push(m.cpuUs);
      }
      // Seed style: every keyspace and keyevent notification, filtered here.
      {
        await redis.config('SET', 'notify-keyspace-events', 'KEA');
        const prefix = `sd${randomBytes(3).toString('hex')}:`;
        const sub = redis.duplicate();
        const counter = { n: 0, last: 0 };
        sub.on('pmessage', (_pattern: string, channel: string, key: string) => {
          if (channel.startsWith('__keyevent@') && channel.endsWith(':set') && key.startsWith(prefix) && key.includes('}:t:')) {
            counter.n++;
            counter.last = performance.now();
          }
        });
        await sub.psubscribe('__key*__:*');
        const m = await measure(config.events, cap, () => issuer(server.port, prefix, config.events), counter);
        sub.disconnect();
        rates[1].push(m.rate);
        cpus[1].push(m.cpuUs);
      }
      log(`  run ${run + 1}/${config.runs} done`);
    }
  } finally {
    await redis.config('SET', 'notify-keyspace-events', '').catch(() => {});
    redis.disconnect();
  }
  const revocation = await revocationWindow(server, config.quick ? 100 : 500);
  log(`  revoked → cache invalidated: p50 ${revocation.p50.toFixed(1)} ms, p99 ${revocation.p99.toFixed(1)} ms, max ${revocation.max.toFixed(1)} ms`);
  const [rOurs, rSeed] = rates.map(sample);
  const [cOurs, cSeed] = cpus.map(sample);
  return [
    { label: 'issued events/s end to end (issue → handler) | — | seed psubscribe', ours: show(rOurs!), other: show(rSeed!), vsOther: ratio(rOurs!.median, rSeed!.median),
      note: `${config.events} tokens issued by a child process at concurrency 64; the rate is bounded by issuing, so both listeners mostly keep up — CPU per event is the telling figure.` },
    { label: 'listener CPU µs per event (lower is better) | — | seed psubscribe', ours: show(cOurs!), other: show(cSeed!), vsOther: ratio(cSeed!.median, cOurs!.median) + ' less',
      note: 'CPU (user + system) of the listening process over the run divided by the events delivered; the seed subscriber receives a keyspace and a keyevent message for every write of every structure.' },
    { label: 'revoked token still passing from the cache, p50 / p99 / max', ours: `${revocation.p50.toFixed(1)} / ${revocation.p99.toFixed(1)} / ${revocation.max.toFixed(1)} ms`,
      note: `${revocation.n} revocations, one at a time, by a store on another connection; from the revoke call until a cached verify of that token in this process is refused (idle machine apart from the bench).` },
  ];
}

/**
 * How long a revoked token keeps passing `verify` from the cache: revoke from another
 * connection, then verify the cached token in a tight loop until it is refused.
 */
async function revocationWindow(server: RedisServer, n: number): Promise<{ n: number; p50: number; p99: number; max: number }> {
  const redis = server.client({ enableAutoPipelining: true });
  const other = server.client();
  await redis.config('SET', 'notify-keyspace-events', '');
  const prefix = `rw${randomBytes(3).toString('hex')}:`;
  const lifecycle = new TokenLifecycle({ redis, prefix });
  lifecycle.on('error', () => {});
  await lifecycle.start();
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', prefix });
  const revoker = new TokenStore({ redis: other, key: SECRET, issuer: 'https://issuer.bench', prefix, cache: false });
  const windows: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { token, jti } = await store.issue(`user${i}`);
      await store.verify(token);
      await store.verify(token);
      const start = performance.now();
      const revoked = revoker.revoke(jti);
      for (;;) {
        try {
          await store.verify(token);
        } catch {
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
      windows.push(performance.now() - start);
      await revoked;
    }
  } finally {
    await lifecycle.stop();
    await store.close();
    redis.disconnect();
    other.disconnect();
  }
  return { n, p50: percentile(windows, 50), p99: percentile(windows, 99), max: Math.max(...windows) };
}
