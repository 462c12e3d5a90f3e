// Small helpers for Redis streams (the journal), shared by every journal reader:
// the lifecycle's feeds, the store's revocation feed and the CLI.
import type { RedisClient } from './script.js';

/** XINFO-style flat [name, value, …] replies as an object. */
export function infoOf(reply: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
  return out;
}

/** XINFO STREAM of one bucket's journal, or undefined when it does not exist yet. */
export async function streamInfo(redis: RedisClient, key: string): Promise<Record<string, unknown> | undefined> {
  try {
    return infoOf((await redis.xinfo('STREAM', key)) as unknown[]);
  } catch (err) {
    if (err instanceof Error && /no such key/i.test(err.message)) return undefined;
    throw err;
  }
}

/** Compares two stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/** A stream entry's flat field list as an object. */
export function fieldsOf(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

/** A journal entry's event type and jti, read without building an object (hot for readers that skip most entries). */
export function typeAndJti(fields: string[]): [type: string | undefined, jti: string | undefined] {
  let type: string | undefined;
  let jti: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1];
    else if (fields[i] === 'jti') jti = fields[i + 1];
  }
  return [type, jti];
}
