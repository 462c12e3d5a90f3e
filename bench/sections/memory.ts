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
async function usage(redis: Redis, pattern: string): Promise<{ total: number; by: Map<string, number> }> {
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

export async function memorySection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const redis = server.client({ enableAutoPipelining: true });
  const n = config.memoryTokens;
  try {
    await redis.flushall();
    const prefix = `mem${randomBytes(3).toString('hex')}:`;
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', audience: 'api', prefix });
    await redis.config('RESETSTAT');
    const before = await usedMemory(redis);
    // One subject per token (the common case: a few tokens per user), so subject indexes count fully.
    await throughput(n, 64, (i) => store.issue(`user${i}`, { scope: 'read write' }));
    const ours = await usage(redis, `${prefix}*`);
    const oursUsed = (await usedMemory(redis)) - before;
    const evalStats = /cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(await redis.info('commandstats'));

    await redis.config('RESETSTAT');
    const before2 = await usedMemory(redis);
    const pipeline = redis.pipeline();
    for (let i = 0; i < n; i++) pipeline.set(`bare:${randomBytes(16).toString('base64url')}`, 'true', 'EX', 900);
    await pipeline.exec();
    const bare = await usage(redis, 'bare:*');
    const bareUsed = (await usedMemory(redis)) - before2;
    const setStats = /cmdstat_set:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(await redis.info('commandstats'));

    const per = (x: number) => x / n;
    const breakdown = [...ours.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${per(v).toFixed(0)} B`).join(', ');
    log(`  ours ${per(ours.total).toFixed(0)} B/token (${breakdown}); bare ${per(bare.total).toFixed(0)} B/token`);
    return [
      {
        label: 'Redis bytes per live token, MEMORY USAGE summed | — | bare SET … EX key', ours: per(ours.total).toFixed(0), other: per(bare.total).toFixed(0),
        vsOther: ratio(per(ours.total), per(bare.total)),
        note: `${n} tokens, one subject each; by structure: ${breakdown}. used_memory delta: ${per(oursUsed).toFixed(0)} B/token vs ${per(bareUsed).toFixed(0)} B/token bare. Redis CPU per write: issue script ${evalStats?.[3] ?? '?'} µs/call vs SET ${setStats?.[3] ?? '?'} µs/call (INFO commandstats).`,
        goal: { text: '≤ 400 bytes of Redis per live token', met: per(ours.total) <= 400 },
      },
    ];
  } finally {
    redis.disconnect();
  }
}
