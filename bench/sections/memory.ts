// Redis bytes per live token: MEMORY USAGE (SAMPLES 0, exact) summed over every key of
// the prefix, and the used_memory delta, vs a bare `SET … EX` key per token (jwt-redis' layout).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisServer } from '../../spec/support/redis.js';
import { TokenStore, storeDefaults } from '../../lib/index.js';
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

/** The store's default prefix ('tok:'): the server is private to the bench and flushed before each measure. */
const PREFIX = storeDefaults.prefix;
/** Tokens issued at once for the burst floor (issue 11); the full run also reports `memoryTokens`. */
const BURST_FLOOR_TOKENS = 2_000;
const FLOOR_BYTES = 400;

/**
 * Issues `n` tokens through a fresh store with default options — what users get: the
 * default prefix, retention and buckets, the verified-token cache on (its journal feed
 * writes one epoch key per bucket) — and sums what Redis holds under the prefix.
 */
async function measure(redis: Redis, n: number, ttl: (i: number) => number) {
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
  const prefix = PREFIX;
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
  await store.close();
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
    // The floor is judged at 2k tokens issued at once; the full run also reports `memoryTokens` (10k).
    const bursts: { m: number; total: number; used: number; breakdown: string; perEntry: number; evalUs: string }[] = [];
    for (const m of [...new Set([BURST_FLOOR_TOKENS, config.memoryTokens])]) {
      bursts.push({ m, ...await measure(redis, m, () => 900) });
      log(`  burst of ${m}: ${(bursts.at(-1)!.total / m).toFixed(0)} B/token (${bursts.at(-1)!.breakdown})`);
      await redis.flushall();
    }

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
    const defaults = `Store with default options, as users get it: \`new TokenStore({ redis, key, issuer })\` (prefix ${PREFIX} — the server is private to the bench —, 16 buckets, journal retention 100,000 entries, the verified-token cache on: its journal feed starts with the first verify, so it has written nothing here; it would add one small epoch key per bucket).`;
    return [
      {
        label: `Redis bytes per live token, MEMORY USAGE summed: ${n.toLocaleString('en')} live tokens, steady state | — | bare SET … EX key`,
        ours: steadyPer.toFixed(0), other: barePer.toFixed(0), vsOther: ratio(steadyPer, barePer),
        note: `${defaults} Deadlines spread over 900 s as a steady rate of 900 s tokens leaves them, one subject each (the journal held ${steady.journal.toLocaleString('en')} entries, ${steady.perEntry.toFixed(0)} B each). By structure: ${steady.breakdown}. used_memory delta: ${(steady.used / n).toFixed(0)} B/token vs ${(bareUsed / m).toFixed(0)} B/token bare.`,
        goal: {
          text: `≤ ${FLOOR_BYTES} B of Redis per live token at steady state, default options: ${steadyPer.toFixed(0)} B at ${n.toLocaleString('en')} live tokens${config.quick ? ' — not judged in --quick: with fewer live tokens than the journal keeps (100,000) every token still has its journal entry, which the steady state of the full run (1,000,000) spreads thin' : ''}`,
          met: config.quick ? undefined : steadyPer <= FLOOR_BYTES,
        },
      },
      ...bursts.map((b) => {
        const per = b.total / b.m;
        return {
          label: `Redis bytes per live token, MEMORY USAGE summed: ${b.m.toLocaleString('en')} tokens issued at once | — | bare SET … EX key`,
          ours: per.toFixed(0), other: barePer.toFixed(0), vsOther: ratio(per, barePer),
          note: `${defaults} The worst case: every token in the journal (one \`issued\` entry each, ${b.perEntry.toFixed(0)} B), one subject each, all dying in the same few seconds. By structure: ${b.breakdown}. used_memory delta: ${(b.used / b.m).toFixed(0)} B/token. Redis CPU per token written: issue script ${b.evalUs} µs (calls of up to 16 tokens) vs SET ${setStats?.[3] ?? '?'} µs (INFO commandstats).`,
          ...(b.m === BURST_FLOOR_TOKENS ? { goal: { text: `≤ ${FLOOR_BYTES} B of Redis per live token, ${b.m.toLocaleString('en')} tokens issued at once, default options: ${per.toFixed(0)} B`, met: per <= FLOOR_BYTES } } : {}),
        } satisfies Row;
      }),
    ];
  } finally {
    redis.disconnect();
  }
}
