// Events delivered end to end (issue in another process → handler here) and CPU per event:
// a TokenLifecycle vs a seed-style subscriber that psubscribes `__key*__:*` and filters in JS.
// Then how long a revoked token keeps passing from the verified-token cache, on a healthy
// link and on a link that stalls without closing.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { StallingProxy } from '../../spec/support/proxy.js';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenLifecycle, TokenStore, storeDefaults } from '../../lib/index.js';
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
  const healthy = await revocationWindow(server, config.quick ? 100 : 500);
  log(`  healthy link, revoked → refused: p50 ${healthy.p50.toFixed(1)} ms, p99 ${healthy.p99.toFixed(1)} ms, max ${healthy.max.toFixed(1)} ms`);
  const stalled = await stalledRevocationWindow(server, config.quick ? 5 : 20, log);
  log(`  stalled link, revoked → refused: p50 ${stalled.p50.toFixed(0)} ms, p99 ${stalled.p99.toFixed(0)} ms, max ${stalled.max.toFixed(0)} ms`);
  const [rOurs, rSeed] = rates.map(sample);
  const [cOurs, cSeed] = cpus.map(sample);
  const ms = (w: Window, digits: number) => `${w.p50.toFixed(digits)} / ${w.p99.toFixed(digits)} / ${w.max.toFixed(digits)} ms`;
  return [
    { label: 'issued events/s end to end (issue → handler) | — | seed psubscribe', ours: show(rOurs!), other: show(rSeed!), vsOther: ratio(rOurs!.median, rSeed!.median),
      note: `${config.events} tokens issued by a child process at concurrency 64; the rate is bounded by issuing, so both listeners mostly keep up — CPU per event is the telling figure.` },
    { label: 'listener CPU µs per event (lower is better) | — | seed psubscribe', ours: show(cOurs!), other: show(cSeed!), vsOther: ratio(cSeed!.median, cOurs!.median) + ' less',
      note: 'CPU (user + system) of the listening process over the run divided by the events delivered; the seed subscriber receives a keyspace and a keyevent message for every write of every structure.' },
    { label: 'revoked token still passing from the cache, healthy link, p50 / p99 / max', ours: ms(healthy, 1),
      note: `${healthy.n} revocations, one at a time, by a store on another connection, of a token the store of this process (default options: the cache on, following the journal itself; no lifecycle) answered from memory just before; from the revoke call until the first verify of that token that did not pass started (a tight loop, one verify per turn of the event loop). The refusing verify asks Redis: ${healthy.refusals}.` },
    { label: 'revoked token still passing from the cache, stalled link, p50 / p99 / max', ours: ms(stalled, 0),
      note: `${stalled.n} samples: the store's client (and so its journal feed, a duplicate() of it) goes through a TCP proxy (spec/support/proxy.ts) that stops forwarding without closing anything; stall, revoke from a direct connection, then verify the cached token in a tight loop. From the revoke until the first verify that did not pass started: the cache's default maxStaleness is ${MAX_STALENESS} ms, so the window is ${MAX_STALENESS} ms less the age of the feed's last proof at the stall (max ≤ ${MAX_STALENESS} ms: ${stalled.max <= MAX_STALENESS ? 'yes' : 'NO'}). That verify then waits for the stalled Redis and fails closed: ${stalled.refusals}, ${Math.round(stalled.settle)} ms (median) after it started (the store's default timeout is ${storeDefaults.timeout} ms). After each sample the link resumes and the next one waits until the store answers from memory again.` },
  ];
}

/** The cache's default `maxStaleness` (README: a revoked token passes for at most 1 s when the link stalls). */
const MAX_STALENESS = 1000;

interface Window { n: number; p50: number; p99: number; max: number; refusals: string; settle: number }

/**
 * Resolves true when `verify(token)` is answered from the process' memory: before a
 * `setImmediate` callback, which any answer from Redis (I/O) comes after.
 */
async function answeredFromMemory(store: TokenStore, token: string): Promise<boolean> {
  let immediate = false;
  const timer = new Promise<false>((resolve) => setImmediate(() => { immediate = true; resolve(false); }));
  const verified = store.verify(token).then(() => !immediate, () => false);
  return Promise.race([verified, timer]);
}

/** Verifies `token` until it is answered from memory (the feed fresh, the token cached). */
async function untilCached(store: TokenStore, token: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await answeredFromMemory(store, token))) {
    if (Date.now() > deadline) throw new Error('the store did not answer a verified token from memory within 15 s');
    await sleep(10);
  }
}

/**
 * Verifies a revoked `token` in a tight loop until a verify does not pass. Resolves with
 * the time the first such verify started (ms after `since`), how long it took to settle
 * and why it failed; gives up (Infinity) after `capMs`.
 */
async function untilRefused(store: TokenStore, token: string, since: number, capMs: number): Promise<{ window: number; settle: number; code: string }> {
  for (;;) {
    const start = performance.now();
    if (start - since > capMs) return { window: Infinity, settle: 0, code: 'still passing' };
    try {
      await store.verify(token);
    } catch (err) {
      return { window: start - since, settle: performance.now() - start, code: (err as { code?: string }).code ?? String(err) };
    }
    await new Promise((r) => setImmediate(r));
  }
}

function summary(windows: number[], settles: number[], codes: string[]): Window {
  const counts = new Map<string, number>();
  for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1);
  return {
    n: windows.length, p50: percentile(windows, 50), p99: percentile(windows, 99), max: Math.max(...windows),
    refusals: [...counts].map(([code, n]) => `${code} ×${n}`).join(', '), settle: percentile(settles, 50),
  };
}

/**
 * How long a revoked token keeps passing `verify` from the cache on a healthy link:
 * revoke from another connection, then verify the cached token in a tight loop until
 * it is refused. The store has default options (it follows the journal itself).
 */
async function revocationWindow(server: RedisServer, n: number): Promise<Window> {
  const redis = server.client();
  const other = server.client();
  await redis.config('SET', 'notify-keyspace-events', '');
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
  const revoker = new TokenStore({ redis: other, key: SECRET, issuer: 'https://issuer.bench', cache: false });
  const windows: number[] = [];
  const settles: number[] = [];
  const codes: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { token, jti } = await store.issue(`user${i}`);
      await untilCached(store, token);
      const start = performance.now();
      const revoked = revoker.revoke(jti);
      const r = await untilRefused(store, token, start, 10_000);
      windows.push(r.window);
      settles.push(r.settle);
      codes.push(r.code);
      await revoked;
    }
  } finally {
    await store.close();
    redis.disconnect();
    other.disconnect();
  }
  return summary(windows, settles, codes);
}

/**
 * The same on a link that stalls without closing: the store's client goes through a
 * StallingProxy; stall it, revoke from a direct connection, and time until the cached
 * token stops passing (the feed can no longer prove it is fresh).
 */
async function stalledRevocationWindow(server: RedisServer, n: number, log: (line: string) => void): Promise<Window> {
  const proxy = await StallingProxy.start(server.port);
  const redis = new Redis(proxy.port, '127.0.0.1');
  redis.on('error', () => {});
  const direct = server.client();
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
  const revoker = new TokenStore({ redis: direct, key: SECRET, issuer: 'https://issuer.bench', cache: false });
  const windows: number[] = [];
  const settles: number[] = [];
  const codes: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { token, jti } = await store.issue(`stalled${i}`);
      await untilCached(store, token);
      proxy.stall();
      const start = performance.now();
      await revoker.revoke(jti);
      const r = await untilRefused(store, token, start, 10_000);
      proxy.resume();
      windows.push(r.window);
      settles.push(r.settle);
      codes.push(r.code);
      log(`  stalled link ${i + 1}/${n}: passed for ${r.window.toFixed(0)} ms, then ${r.code} after ${r.settle.toFixed(0)} ms`);
    }
  } finally {
    proxy.resume();
    await store.close();
    redis.disconnect();
    direct.disconnect();
    await proxy.stop();
  }
  return summary(windows, settles, codes);
}
