// Redis bytes per live token: MEMORY USAGE (SAMPLES 0, exact) summed over every key of
// the prefix, and the used_memory delta, vs a bare `SET … EX` key per token (jwt-redis' layout).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenStore } from '../../lib/index.js';
import { SECRET, throughput } from '../ops.js';
import { ratio } from '../stats.js';
import type { Config, Row } from './types.js';

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
}

/** Sums MEMORY USAGE over keys matching `pattern`, grouped by what follows the bucket tag. */
export async function usage(redis: Redis, pattern: string): Promise<{ total: number; by: Map<string, number> }> {
  const by = new Map<string, number>();
  let total = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    const sizes = await Promise.all(keys.map((k) => redis.memory('USAGE', k, 'SAMPLES', 0)));
    keys.forEach((k, i) => {
      const kind = /}:([a-z]+)/.exec(k)?.[1] ?? 'key';
      by.set(kind, (by.get(kind) ?? 0) + Number(sizes[i] ?? 0));
      total += Number(sizes[i] ?? 0);
    });
  } while (cursor !== '0');
  return { total, by };
}

/** Issues `n` tokens through a fresh store (its own prefix) and sums what Redis holds for them. */
async function measure(redis: Redis, n: number, ttl: (i: number) => number) {
  const prefix = `mem${randomBytes(3).toString('hex')}:`;
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', audience: 'api', prefix });
  await redis.config('RESETSTAT');
  const before = await usedMemory(redis);
  // One subject per token: the worst case for the subject indexes (a subject's later tokens cost less).
  await throughput(n, 256, (i) => store.issue(`user${i}`, { scope: 'read write', ttl: ttl(i) }));
  const found = await usage(redis, `${prefix}*`);
  const used = (await usedMemory(redis)) - before;
  const evalStats = /cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(await redis.info('commandstats'));
  // Issues go in groups (one script call for the tokens of a tick): Redis CPU per token, not per call.
  const evalUs = evalStats ? (Number(evalStats[2]) / n).toFixed(1) : '?';
  let journal = 0;
  for (const base of store.keys.bases) journal += await redis.xlen(`${base}log`);
  const breakdown = [...found.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(0)} B`).join(', ');
  const perEntry = (found.by.get('log') ?? 0) / Math.max(1, journal);
  return { total: found.total, used, breakdown, journal, perEntry, evalUs };
}

export async function memorySection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client({ enableAutoPipelining: true });
  try {
    await redis.flushall();
    // Steady state: tokens of a 900 s lifetime issued at a constant rate have their
    // deadlines spread evenly over 900 s; here over 900..1799 s, so none dies while measured.
    const n = config.memorySteady;
    const steady = await measure(redis, n, (i) => 900 + (i % 900));
    log(`  steady ${(steady.total / n).toFixed(0)} B/token (${steady.breakdown})`);
    await redis.flushall();
    const burst = await measure(redis, config.memoryTokens, () => 900);
    log(`  burst ${(burst.total / config.memoryTokens).toFixed(0)} B/token (${burst.breakdown})`);
    await redis.flushall();

    const m = config.memoryTokens;
    await redis.config('RESETSTAT');
    const before = await usedMemory(redis);
    const pipeline = redis.pipeline();
    for (let i = 0; i < m; i++) pipeline.set(`bare:${randomBytes(16).toString('base64url')}`, 'true', 'EX', 900);
    await pipeline.exec();
    const bare = await usage(redis, 'bare:*');
    const bareUsed = (await usedMemory(redis)) - before;
    const setStats = /cmdstat_set:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(await redis.info('commandstats'));
    const barePer = bare.total / m;

    const steadyPer = steady.total / n;
    const burstPer = burst.total / m;
    return [
      {
        label: `Redis bytes per live token, MEMORY USAGE summed: ${n.toLocaleString('en')} live tokens, steady state | — | bare SET … EX key`,
        ours: steadyPer.toFixed(0), other: barePer.toFixed(0), vsOther: ratio(steadyPer, barePer),
        note: `deadlines spread over 900 s as a steady rate of 900 s tokens leaves them, one subject each, default retention (the journal held ${steady.journal.toLocaleString('en')} entries, ${steady.perEntry.toFixed(0)} B each). By structure: ${steady.breakdown}. used_memory delta: ${(steady.used / n).toFixed(0)} B/token vs ${(bareUsed / m).toFixed(0)} B/token bare.`,
        goal: config.quick ? undefined : { text: '≤ 400 bytes of Redis per live token (steady state)', met: steadyPer <= 400 },
      },
      {
        label: `Redis bytes per live token, MEMORY USAGE summed: ${m.toLocaleString('en')} tokens issued at once | — | bare SET … EX key`,
        ours: burstPer.toFixed(0), other: barePer.toFixed(0), vsOther: ratio(burstPer, barePer),
        note: `the worst case: every token in the journal (one \`issued\` entry each, ${burst.perEntry.toFixed(0)} B), one subject each, all dying in the same few seconds. By structure: ${burst.breakdown}. used_memory delta: ${(burst.used / m).toFixed(0)} B/token. Redis CPU per token written: issue script ${burst.evalUs} µs (calls of up to 64 tokens) vs SET ${setStats?.[3] ?? '?'} µs (INFO commandstats).`,
      },
    ];
  } finally {
    redis.disconnect();
  }
}
