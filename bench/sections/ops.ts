// issue / first-sight verify / repeated-token verify / revoke, at concurrency 1 and 64.
import type { RedisServer } from '../../spec/support/redis.js';
import { jwtRedis, joseBaseline, ours, pool, throughput, type Contender } from '../ops.js';
import { ratio, sample, show, type Sample } from '../stats.js';
import type { Config, Row } from './types.js';

type Op = 'issue' | 'verify (first sight)' | 'verify (repeated token)' | 'revoke';
const OPS: Op[] = ['issue', 'verify (first sight)', 'verify (repeated token)', 'revoke'];

export async function opsSection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client({ enableAutoPipelining: true });
  const cache = process.env.BENCH_NO_CACHE ? false : true;
  const contenders: Contender[] = [await ours(redis, { cache }), jwtRedis(redis), await joseBaseline(redis)];
  const rows: Row[] = [];
  try {
    for (const concurrency of [1, 64]) {
      const count = concurrency === 1 ? Math.max(500, config.ops >> 1) : config.ops;
      const results = new Map<string, number[]>();
      const add = (op: Op, c: Contender, value: number) => {
        const key = `${op}|${c.name}`;
        results.set(key, [...(results.get(key) ?? []), value]);
      };
      const pools = new Map<Contender, { token: string; jti: string }[]>();
      // Every first-sight run verifies tokens no run has seen: one pool, a fresh slice per run.
      for (const c of contenders) pools.set(c, await pool(c, count * config.runs, true));
      for (let run = 0; run < config.runs; run++) {
        for (const c of contenders) {
          add('issue', c, await throughput(count, concurrency, () => c.issue()));
          const tokens = pools.get(c)!;
          const offset = run * count;
          add('verify (first sight)', c, await throughput(count, concurrency, (i) => c.verify(tokens[offset + i]!.token)));
          const one = tokens[run]!.token;
          add('verify (repeated token)', c, await throughput(count, concurrency, () => c.verify(one)));
          const doomed = await pool(c, count);
          add('revoke', c, await throughput(count, concurrency, (i) => c.revoke(doomed[i]!.jti)));
        }
        log(`  concurrency ${concurrency}: run ${run + 1}/${config.runs} done`);
      }
      for (const op of OPS) {
        const [a, b, d] = contenders.map((c) => sample(results.get(`${op}|${c.name}`)!)) as [Sample, Sample, Sample];
        rows.push({
          label: `${op}/s, concurrency ${concurrency}`,
          ours: show(a), jwtRedis: show(b), other: show(d),
          vsJwtRedis: ratio(a.median, b.median), vsOther: ratio(a.median, d.median),
          ...goal(op, concurrency, a.median / b.median),
        });
      }
    }
  } finally {
    for (const c of contenders) await c.close?.();
    redis.disconnect();
  }
  return rows;
}

function goal(op: Op, concurrency: number, vsJwtRedis: number): Pick<Row, 'goal'> {
  if (concurrency !== 64) return {};
  const floor = op === 'issue' ? 1 : op === 'verify (first sight)' ? 0.8 : op === 'verify (repeated token)' ? 5 : undefined;
  if (floor === undefined) return {};
  return { goal: { text: `${op} ≥ ${floor}× jwt-redis`, met: vsJwtRedis >= floor } };
}
