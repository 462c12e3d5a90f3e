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

/**
 * A token event in one field (include/journal.lua: `issued` and `expired`), `<type>` (or
 * `<type>:<reason>`, read too), whose value is `<jti> <record>`, or ` <jti>` for a jti that
 * named no record. Undefined for any other entry: session events and `revoked` keep named
 * fields (`type`, `jti`, `reason`, `record`; before, also `claims`).
 */
export interface TokenEntry {
  type: string;
  reason: string | undefined;
  jti: string;
  record: string | undefined;
}

export function tokenEntry(fields: string[]): TokenEntry | undefined {
  if (fields.length !== 2) return undefined;
  const [name, value] = fields as [string, string];
  const colon = name.indexOf(':');
  const type = colon < 0 ? name : name.slice(0, colon);
  const reason = colon < 0 ? undefined : name.slice(colon + 1);
  return { type, reason, jti: jtiOf(value), record: recordIn(value) };
}

/** The jti in a one-field entry's value: all of it after a leading space (no record), else what precedes the first space. */
function jtiOf(value: string): string {
  if (value.charCodeAt(0) === 32) return value.slice(1);
  const space = value.indexOf(' ');
  return space < 0 ? value : value.slice(0, space);
}

/** The record in a one-field entry's value: what follows its first space, unless that space leads (no record). */
function recordIn(value: string): string | undefined {
  const space = value.indexOf(' ');
  return space > 0 ? value.slice(space + 1) : undefined;
}

/** The token record a journal entry carries (a token event's or a session's access token's), if any. */
export function recordOf(fields: string[]): string | undefined {
  if (fields.length === 2) return recordIn(fields[1]!);
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'record') return fields[i + 1];
  return undefined;
}

/**
 * The end a journal entry records (`revoked` or `expired`) and of which jti; undefined for
 * any other entry. Read without building an event: hot for readers that skip most entries.
 */
export function endOf(fields: string[]): [type: 'revoked' | 'expired', jti: string] | undefined {
  if (fields.length === 2) {
    const name = fields[0]!;
    const type = name.startsWith('revoked') ? 'revoked' : name.startsWith('expired') ? 'expired' : undefined;
    if (type === undefined || (name.length > 7 && name.charCodeAt(7) !== 58)) return undefined;
    return [type, jtiOf(fields[1]!)];
  }
  let type: string | undefined;
  let jti: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1];
    else if (fields[i] === 'jti') jti = fields[i + 1];
  }
  return (type === 'revoked' || type === 'expired') && jti !== undefined ? [type, jti] : undefined;
}
