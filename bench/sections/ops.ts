// issue / first-sight verify / repeated-token verify / revoke, at concurrency 1 and 64:
// this library with default options and a lifecycle consuming its events in this
// process (and the store alone), jwt-redis on node-redis v4 as its README sets it up
// (and on ioredis through an adapter), and a hand-written jose + ioredis baseline.
import type { RedisServer } from '../../spec/support/redis.js';
import { jwtRedisOnIoredis, jwtRedisOnNodeRedis, joseBaseline, ours, pool, throughput, type Contender } from '../ops.js';
import { ratio, sample, show, type Sample } from '../stats.js';
import type { Config, Row } from './types.js';

type Op = 'issue' | 'verify (first sight)' | 'verify (repeated token)' | 'revoke';
const OPS: Op[] = ['issue', 'verify (first sight)', 'verify (repeated token)', 'revoke'];
/** Floors at concurrency 64, as a ratio to jwt-redis on node-redis (issue 11). */
const FLOORS: Record<Op, number> = { issue: 1, 'verify (first sight)': 1, 'verify (repeated token)': 5, revoke: 0.6 };

export async function opsSection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  // Ours on a client made as the README's quick start makes it (`new Redis(url)`); the
  // ioredis peers keep the auto-pipelining client of earlier runs.
  const plain = server.client();
  const pipelined = server.client({ enableAutoPipelining: true });
  await plain.config('SET', 'notify-keyspace-events', '');
  const main = await ours(plain, { lifecycle: true });
  const alone = await ours(plain, { lifecycle: false, prefix: 'alone:', name: 'this library, store alone' });
  const nodeRedis = await jwtRedisOnNodeRedis(server.url);
  const ioredis = jwtRedisOnIoredis(pipelined);
  const jose = await joseBaseline(pipelined);
  const contenders: Contender[] = [main, alone, nodeRedis, ioredis, jose];
  const rows: Row[] = [];
  try {
    // Warm-up (untimed): connections, scripts loaded, JIT, the store's journal feed started.
    for (const c of contenders) {
      await c.begin?.();
      const warm = await pool(c, 500);
      if (c.verify) await throughput(warm.length, 64, (i) => c.verify!(warm[i]!.token));
      await throughput(warm.length, 64, (i) => c.revoke(warm[i]!.jti), c.drained);
      await c.end?.();
    }
    for (const concurrency of [1, 64]) {
      const count = concurrency === 1 ? Math.max(500, config.ops >> 1) : config.ops;
      const results = new Map<string, number[]>();
      const add = (op: Op, c: Contender, value: number) => {
        const key = `${op}|${c.name}`;
        results.set(key, [...(results.get(key) ?? []), value]);
      };
      const pools = new Map<Contender, { token: string; jti: string }[]>();
      // Every first-sight run verifies tokens no run has seen: one pool, a fresh slice per run.
      for (const c of contenders) if (c.verify) pools.set(c, await pool(c, count * config.runs));
      for (let run = 0; run < config.runs; run++) {
        for (const c of contenders) {
          if (c.begin) {
            await c.begin();
            // Untimed: the fresh lifecycle's first rounds (connections, first reads) are not part of a run.
            await pool(c, 256);
          }
          add('issue', c, await throughput(count, concurrency, () => c.issue(), c.drained));
          if (c.verify) {
            const tokens = pools.get(c)!;
            const offset = run * count;
            add('verify (first sight)', c, await throughput(count, concurrency, (i) => c.verify!(tokens[offset + i]!.token)));
            const one = tokens[run]!.token;
            add('verify (repeated token)', c, await throughput(count, concurrency, () => c.verify!(one)));
          }
          const doomed = await pool(c, count);
          add('revoke', c, await throughput(count, concurrency, (i) => c.revoke(doomed[i]!.jti), c.drained));
          await c.end?.();
        }
        log(`  concurrency ${concurrency}: run ${run + 1}/${config.runs} done`);
      }
      const of = (op: Op, c: Contender): Sample | undefined => {
        const runs = results.get(`${op}|${c.name}`);
        return runs ? sample(runs) : undefined;
      };
      for (const op of OPS) {
        for (const us of op === 'issue' || op === 'revoke' ? [main, alone] : [main]) {
          const [a, b, i, d] = [us, nodeRedis, ioredis, jose].map((c) => of(op, c)!) as [Sample, Sample, Sample, Sample];
          const floor = us === main && concurrency === 64 ? FLOORS[op] : undefined;
          rows.push({
            label: `${op}/s, concurrency ${concurrency}${us === alone ? ', store alone (no lifecycle)' : ''}`,
            ours: show(a), jwtRedis: show(b), jwtRedisIoredis: show(i), other: show(d),
            vsJwtRedis: ratio(a.median, b.median), vsJwtRedisIoredis: ratio(a.median, i.median), vsOther: ratio(a.median, d.median),
            ...(floor === undefined ? {} : { goal: { text: `${op} ≥ ${floor}× jwt-redis on node-redis (concurrency 64): ${(a.median / b.median).toFixed(2)}×`, met: a.median >= floor * b.median } }),
            ...(op === 'issue' && concurrency === 1 && us === main ? { note: NOTE } : {}),
          });
        }
      }
    }
  } finally {
    for (const c of contenders) await c.end?.().catch(() => {});
    for (const c of contenders) await c.close?.().catch(() => {});
    plain.disconnect();
    pipelined.disconnect();
  }
  return rows;
}

const NOTE = 'this library: `new TokenStore({ redis, key, issuer, audience })` with default options (prefix tok:, the verified-token cache on, following the journal on its own connection), on `new Redis(url)` as the README makes it; '
  + 'on the issue, verify and revoke rows a `TokenLifecycle` in the same process consumes every event (issued, revoked) with a handler, and the clock of an issue or revoke run stops only when the last operation resolved *and* the lifecycle handled the last event it caused; '
  + 'the "store alone" rows run the same store on another prefix with no lifecycle. '
  + 'jwt-redis: `redis.createClient()` (node-redis v4), `await client.connect()`, `new JWTR(client)`, as its README documents; "jwt-redis on ioredis" is the same library on an auto-pipelining ioredis client through a 4-line adapter. '
  + 'Each contender runs on its own (the lifecycle is started before our turn and stopped, notify-keyspace-events cleared, after it), all in this process, against the same redis-server.';
