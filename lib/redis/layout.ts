// What a store and every lifecycle on the same prefix must agree on: the prefix,
// the bucket count and the journal's retention. Validated here, once, for both.
import { ConfigError } from '../errors.js';
import { KeySchema } from './keys.js';
import type { RedisClient } from './script.js';

/** How much of the journal Redis keeps. Trimmed as it is written. */
export interface Retention {
  /** Entries kept over all buckets. @default 100000 */
  entries?: number;
  /** Seconds an entry is kept at most (on top of `entries`). @default undefined (no age limit) */
  maxAge?: number;
}

export const layoutDefaults = {
  /** @default 'tok:' */
  prefix: 'tok:',
  /** @default 16 */
  buckets: 16,
  /** @default { entries: 100000 } */
  retention: { entries: 100_000 } as Retention,
} as const;

export interface Layout {
  keys: KeySchema;
  /** Retention as the scripts take it: "<max entries per bucket>/<max age ms>". */
  retention: string;
}

export function checkLayout(options: { prefix?: unknown; buckets?: unknown; retention?: unknown }): Layout {
  const prefix = options.prefix ?? layoutDefaults.prefix;
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 64 || /[{}\s]/.test(prefix)) {
    throw new ConfigError('prefix', 'a non-empty string of at most 64 characters without braces or spaces');
  }
  const buckets = options.buckets ?? layoutDefaults.buckets;
  if (!Number.isInteger(buckets) || (buckets as number) < 1 || (buckets as number) > 1024) {
    throw new ConfigError('buckets', 'an integer from 1 to 1024');
  }
  const retention = (options.retention ?? {}) as Retention;
  if (typeof retention !== 'object' || retention === null) throw new ConfigError('retention', 'an object { entries?, maxAge? }');
  const entries = retention.entries ?? layoutDefaults.retention.entries!;
  if (!Number.isInteger(entries) || entries < 100) throw new ConfigError('retention.entries', 'an integer of at least 100');
  const maxAge = retention.maxAge ?? 0;
  if (!Number.isInteger(maxAge) || maxAge < 0) throw new ConfigError('retention.maxAge', 'a whole number of seconds');
  return {
    keys: new KeySchema(prefix, buckets as number),
    retention: `${Math.ceil(entries / (buckets as number))}/${maxAge * 1000}`,
  };
}

export function checkRedis(redis: unknown): RedisClient {
  if (typeof redis !== 'object' || redis === null || typeof (redis as RedisClient).evalsha !== 'function' || typeof (redis as RedisClient).duplicate !== 'function') {
    throw new ConfigError('redis', 'an ioredis Redis or Cluster instance');
  }
  return redis as RedisClient;
}
