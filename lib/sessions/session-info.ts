// A session as its events and `sessions(sub)` carry it: the JSON include/sessions.lua
// builds (`session_json`), read into a SessionInfo.
import type { SessionInfo } from '../types.js';

interface Stored {
  sid: string;
  sub: string;
  createdAt: number;
  lastUsed: number;
  idleTimeout: number;
  absoluteExpiresAt: number;
  generation: number;
  clientId?: string;
  scope?: string;
  claims?: Record<string, unknown>;
  device?: SessionInfo['device'];
}

/** The session a JSON text describes, or undefined when it is not one. */
export function sessionOf(json: string): SessionInfo | undefined {
  let s: Stored;
  try {
    s = JSON.parse(json) as Stored;
  } catch {
    return undefined;
  }
  if (typeof s !== 'object' || s === null || typeof s.sid !== 'string' || typeof s.sub !== 'string') return undefined;
  const info: SessionInfo = {
    sid: s.sid,
    sub: s.sub,
    createdAt: s.createdAt,
    lastUsed: s.lastUsed,
    expiresAt: Math.min(s.lastUsed + s.idleTimeout, s.absoluteExpiresAt),
    absoluteExpiresAt: s.absoluteExpiresAt,
    generation: s.generation,
  };
  if (s.device !== undefined) info.device = s.device;
  if (s.clientId !== undefined) info.clientId = s.clientId;
  if (s.scope !== undefined) info.scope = s.scope;
  if (s.claims !== undefined) info.claims = s.claims;
  return info;
}

/** A session's string as include/sessions.lua packs it (`session_read`): the parts the store reads before a refresh. */
export interface StoredSession {
  generation: number;
  current: string;
  previous: string;
  clientId: string;
  scope: string;
  claims: string;
  sub: string;
}

const PACKED = /^(\d+),\d+,\d+,\d+,\d+,\d*,([\w-]*),([\w-]*),(\d+),(\d+),(\d+),(\d+):/;

/** The session a packed string holds, or undefined when it is not one. */
export function unpackSession(value: string | null): StoredSession | undefined {
  if (value === null) return undefined;
  const m = PACKED.exec(value);
  if (!m) return undefined;
  // Lengths are in bytes.
  const rest = Buffer.from(value.slice(m[0].length));
  let at = 0;
  const take = (n: number) => rest.toString('utf8', at, (at += n));
  const clientId = take(Number(m[4]));
  const scope = take(Number(m[5]));
  const claims = take(Number(m[6]));
  take(Number(m[7])); // the device
  return { generation: Number(m[1]), current: m[2]!, previous: m[3]!, clientId, scope, claims, sub: rest.toString('utf8', at) };
}
