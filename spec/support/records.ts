// Counts what the library still holds for tokens that have not ended: the records in
// the per-second hashes of every bucket (see lib/keys.ts), read with plain commands.
import type { Redis } from 'ioredis';
import type { KeySchema } from '../../lib/redis/keys.js';

/** Records (tokens not yet ended) in bucket `b`, or in every bucket. */
export async function records(redis: Redis, keys: KeySchema, b?: number): Promise<number> {
  let n = 0;
  for (const bucket of b === undefined ? Array.from({ length: keys.buckets }, (_, i) => i) : [b]) {
    for (const second of await redis.zrange(keys.due(bucket), 0, -1)) {
      const fields = await redis.hkeys(keys.window(bucket, Number(second)));
      n += fields.filter((f) => !f.startsWith('~')).length;
    }
  }
  return n;
}
