// Sessions: refresh/s against this library's own issue/s (concurrency 64, default options,
// a lifecycle consuming every event in this process, as on the main rows), sessions
// started/s, and Redis bytes per live session (one access token and one refresh token).
import type { Redis } from 'ioredis';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenLifecycle, TokenStore, storeDefaults } from '../../lib/index.js';
import { SECRET, throughput } from '../ops.js';
import { ratio, sample, show } from '../stats.js';
import { usage } from './memory.js';
import type { Config, Row } from './types.js';

/** A browser's device, as an application would record it. */
const DEVICE = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0', ip: '203.0.113.7' };
const REFRESH_FLOOR = 0.5;
const SESSION_BYTES_FLOOR = 700;

export async function sessionsSection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client();
  const rows: Row[] = [];
  try {
    rows.push(...await rates(redis, config, log));
    await redis.flushall();
    rows.push(...await memory(redis, config, log));
  } finally {
    redis.disconnect();
  }
  return rows;
}

async function rates(redis: Redis, config: Config, log: (line: string) => void): Promise<Row[]> {
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
  const lifecycle = new TokenLifecycle({ redis });
  let handled = 0;
  for (const type of ['issued', 'revoked', 'session_started', 'refreshed'] as const) lifecycle.on(type, () => { handled++; });
  await lifecycle.start();
  const count = config.ops;
  const issue: number[] = [];
  const start: number[] = [];
  const refresh: number[] = [];
  let users = 0;
  // As on the main rows, a run's clock stops once the lifecycle has handled the last event it caused.
  let expected = 0;
  const drained = async () => {
    while (handled < expected) await new Promise((r) => setTimeout(r, 1));
  };
  const caused = <T>(done: Promise<T>) => { expected++; return done; };
  try {
    for (let run = 0; run < config.runs; run++) {
      issue.push(await throughput(count, 64, () => caused(store.issue(`user-${users++}`, { scope: 'read write' })), drained));
      const sessions: { refreshToken: string }[] = [];
      start.push(await throughput(count, 64, async (i) => { sessions[i] = await caused(store.startSession(`user-${users++}`, { scope: 'read write', device: DEVICE })); }, drained));
      refresh.push(await throughput(count, 64, (i) => caused(store.refresh(sessions[i]!.refreshToken)), drained));
      log(`  run ${run + 1}/${config.runs}: issue ${issue.at(-1)!.toFixed(0)}/s, startSession ${start.at(-1)!.toFixed(0)}/s, refresh ${refresh.at(-1)!.toFixed(0)}/s (events handled ${handled})`);
    }
  } finally {
    await lifecycle.stop();
    await store.close();
  }
  const [i, s, r] = [sample(issue), sample(start), sample(refresh)];
  const note = 'the store with default options and a TokenLifecycle consuming every event in this process (a run\'s clock stops once it handled the last event the run caused, as on the main rows); each startSession records a browser\'s device (user agent, IP); each refresh rotates a different session\'s refresh token once (one round trip: one script writes the new access token from the session, rotates, keeps the new secret sealed for the grace window, one journal entry; the token is signed after). Issue rows: a new subject per token.';
  return [
    { label: 'refresh/s, concurrency 64 (rotation: new access and refresh token) | — | this library\'s issue/s', ours: show(r), other: show(i), vsOther: ratio(r.median, i.median), note,
      goal: { text: `refresh/s ≥ ${REFRESH_FLOOR}× this library's issue/s (concurrency 64): ${(r.median / i.median).toFixed(2)}×`, met: r.median >= REFRESH_FLOOR * i.median } },
    { label: 'startSession/s, concurrency 64 | — | this library\'s issue/s', ours: show(s), other: show(i), vsOther: ratio(s.median, i.median) },
  ];
}

async function memory(redis: Redis, config: Config, log: (line: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  // 2,000 at once: every session_started entry still in the journal (the worst case).
  // Steady state: many more live sessions than the journal keeps entries (sessions live for
  // days, the journal keeps the last 100,000 events), access tokens' deadlines spread over
  // 900 s as a steady rate of sign-ins leaves them.
  const steady = config.quick ? 200_000 : 1_000_000;
  for (const [label, n, ttl, goal] of [
    ['2,000 sessions started at once', 2_000, () => 900, false],
    [`${steady.toLocaleString('en-US')} live sessions, steady state`, steady, (i: number) => 900 + (i % 900), true],
  ] as const) {
    await redis.flushall();
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
    await throughput(n, 256, (i) => store.startSession(`user${i}`, { scope: 'read write', ttl: ttl(i), device: DEVICE }));
    const found = await usage(redis, `${storeDefaults.prefix}*`);
    await store.close();
    const per = found.total / n;
    const by = [...found.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(0)} B`).join(', ');
    log(`  ${label}: ${per.toFixed(0)} B each (${by})`);
    rows.push({
      label: `Redis bytes per live session (one access token, one refresh token), MEMORY USAGE summed: ${label}`,
      ours: per.toFixed(0),
      note: `default options (journal retention 100,000 entries), one subject each, a browser's device recorded (user agent and IP, 110 bytes of JSON). By structure: ${by}.`,
      ...(goal ? { goal: { text: `≤ ${SESSION_BYTES_FLOOR} B of Redis per live session at steady state (${label}): ${per.toFixed(0)} B`, met: per <= SESSION_BYTES_FLOOR } } : {}),
    });
  }
  return rows;
}
