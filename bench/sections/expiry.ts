// `expired` lag after the deadline with N TTL keys resident: a TokenLifecycle (sweeper on
// the due index) vs Redis' own active expiry alone (a keyevent subscriber, nothing else).
import { randomBytes } from 'node:crypto';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenLifecycle, TokenStore } from '../../lib/index.js';
import { SECRET } from '../ops.js';
import { percentile, sleep } from '../stats.js';
import type { Config, Row } from './types.js';

const LOAD = `for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'bg:' .. i, 'x', 'EX', 3600) end return 1`;

function lags(values: number[], expected: number, cap: number): string {
  const missing = expected - values.length;
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
  if (values.length === 0) return `none within ${cap / 1000} s (all > ${cap / 1000} s)`;
  const tail = (p: number) => (values.length < Math.ceil((p / 100) * expected) ? `> ${cap / 1000} s` : fmt(percentile([...values, ...Array(missing).fill(Infinity)], p)));
  return `${tail(50)} / ${tail(99)} / ${missing > 0 ? `> ${cap / 1000} s (${missing} of ${expected} never fired)` : fmt(Math.max(...values))}`;
}

export async function expirySection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client();
  const rows: Row[] = [];
  let loaded = 0;
  try {
    for (const resident of config.expiryResident) {
      for (let from = loaded + 1; from <= resident; from += 50_000) await redis.eval(LOAD, 0, from, Math.min(resident, from + 49_999));
      loaded = resident;
      const n = config.expiryTokens;

      // This library.
      await redis.config('SET', 'notify-keyspace-events', '');
      const prefix = `ex${randomBytes(3).toString('hex')}:`;
      const lifecycle = new TokenLifecycle({ redis, prefix });
      lifecycle.on('error', () => {});
      const ours: number[] = [];
      const sessions: number[] = [];
      lifecycle.on('expired', (e) => { if (e.claims.sid === undefined) ours.push(Date.now() - e.claims.exp * 1000); });
      // Sessions idle past their deadline: ended by the same sweeper (reason idle).
      lifecycle.on('session_ended', (e) => { if (e.reason === 'idle') sessions.push(Date.now() - e.session.expiresAt); });
      await lifecycle.start();
      const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', prefix, sessions: { idleTimeout: 2 } });
      await Promise.all(Array.from({ length: n }, (_, i) => store.issue(`user${i}`, { ttl: 1 })));
      await Promise.all(Array.from({ length: n }, (_, i) => store.startSession(`member${i}`, { ttl: 1 })));
      const oursDeadline = Date.now() + 3000 + config.expiryCap;
      while ((ours.length < n || sessions.length < n) && Date.now() < oursDeadline) await sleep(20);
      await lifecycle.stop();
      await store.close();

      // Redis alone: keys with the same kind of deadline, and a subscriber to `expired`.
      await redis.config('SET', 'notify-keyspace-events', 'Ex');
      const sub = redis.duplicate();
      const alone: number[] = [];
      sub.on('message', (_channel: string, key: string) => {
        if (key.startsWith('re:')) alone.push(Date.now() - Number(key.split(':')[1]));
      });
      await sub.subscribe('__keyevent@0__:expired');
      const deadline = Math.ceil((Date.now() + 1000) / 1000) * 1000;
      const pipeline = redis.pipeline();
      for (let i = 0; i < n; i++) pipeline.set(`re:${deadline}:${i}`, 'x', 'PXAT', deadline);
      await pipeline.exec();
      const aloneDeadline = deadline + config.expiryCap;
      while (alone.length < n && Date.now() < aloneDeadline) await sleep(20);
      sub.disconnect();
      // Whatever did not expire yet must not be counted in the next, larger run.
      const left = await redis.keys('re:*');
      if (left.length) await redis.del(...left);

      const label = resident >= 1e6 ? `${resident / 1e6}M` : `${resident / 1e3}k`;
      const oursP99 = ours.length >= Math.ceil(0.99 * n) ? percentile([...ours, ...Array(n - ours.length).fill(Infinity)], 99) : Infinity;
      rows.push({
        label: `expired lag p50 / p99 / max after the deadline, ${label} TTL keys resident | — | Redis expiry alone`,
        ours: lags(ours, n, 2000 + config.expiryCap), other: lags(alone, n, config.expiryCap),
        note: resident === config.expiryResident[0] ? `${n} tokens (keys) with the same deadline, issued together; Redis alone is capped at ${config.expiryCap / 1000} s per run. One run per size (${n} samples).` : undefined,
        ...(resident >= 1e6 ? { goal: { text: 'expired p99 ≤ 250 ms with 1M keys', met: oursP99 <= 250 } } : {}),
      });
      const sessionsP99 = sessions.length >= Math.ceil(0.99 * n) ? percentile([...sessions, ...Array(n - sessions.length).fill(Infinity)], 99) : Infinity;
      rows.push({
        label: `session ended (idle) lag p50 / p99 / max after its deadline, ${label} TTL keys resident`,
        ours: lags(sessions, n, 3000 + config.expiryCap),
        note: resident === config.expiryResident[0] ? `${n} sessions (idleTimeout 2 s) started together, never refreshed: session_ended (reason idle) from the session's deadline (a whole second); the same lifecycle and sweeper as the expired row.` : undefined,
        ...(resident >= 1e6 ? { goal: { text: 'session idle end p99 ≤ 250 ms with 1M keys', met: sessionsP99 <= 250 } } : {}),
      });
      log(`  ${label} resident: ours ${ours.length}/${n}, sessions ${sessions.length}/${n}, alone ${alone.length}/${n}`);
    }
  } finally {
    await redis.config('SET', 'notify-keyspace-events', '').catch(() => {});
    redis.disconnect();
  }
  return rows;
}
