// Sessions as Redis holds them (include/sessions.lua: the packed string, and the state a
// `session_started` or `refreshed` journal entry carries), read into a SessionInfo.
import type { SessionDevice, SessionInfo, TokenClaims } from '../types.js';

/** The order of a stored device's parts (see sessions/options.ts, `deviceJson`). */
export const DEVICE_FIELDS: readonly (keyof SessionDevice)[] = ['userAgent', 'ip', 'label'];

/** A stored device (sessions/options.ts, `deviceJson`) as the object the application gave. */
export function deviceOf(stored: unknown): SessionDevice | undefined {
  if (!Array.isArray(stored)) return undefined;
  const device: SessionDevice = {};
  DEVICE_FIELDS.forEach((name, i) => { if (typeof stored[i] === 'string') device[name] = stored[i] as string; });
  return device;
}

/** A packed session's parts (include/sessions.lua, `session_pack`). */
export interface StoredSession {
  generation: number;
  createdAt: number;
  lastUsed: number;
  idleTimeout: number;
  absoluteExpiresAt: number;
  /** Its access tokens' lifetime, s (0: the store's). */
  ttl: number;
  /** Hashes of the current and the previous refresh token. */
  current: string;
  previous: string;
  clientId: string;
  scope: string;
  /** Further claims of its access tokens, JSON ('' for none). */
  claims: string;
  device: string;
  sub: string;
}

const PACKED = /^(\w+),(\w+),(\w+),(\w+),(\w+),(\w+),(\w+),([\w-]*),([\w-]*),([\w-]*),(\d+),(\d+),(\d+),(\d+),(\d+):/;
const STATE = /^(\w+),(\w+),(\w+),(\w+),(\w+),(\d+):/;
const hex = (text: string) => parseInt(text, 16);

/** Byte-length fields that follow a header: Redis counts bytes, JavaScript UTF-16 units. */
function fields(rest: string, lengths: number[]): string[] {
  const out: string[] = [];
  let at = 0;
  if (!NOT_ASCII.test(rest)) {
    // The common case: bytes are characters.
    for (const n of lengths) out.push(rest.slice(at, (at += n)));
    out.push(rest.slice(at));
    return out;
  }
  const bytes = Buffer.from(rest);
  for (const n of lengths) out.push(bytes.toString('utf8', at, (at += n)));
  out.push(bytes.toString('utf8', at));
  return out;
}
const NOT_ASCII = /[^\x00-\x7f]/;

/** The parts of a packed session, or undefined when it is not one. */
export function unpackSession(value: string | null): StoredSession | undefined {
  if (value === null) return undefined;
  const m = PACKED.exec(value);
  if (!m) return undefined;
  const createdAt = hex(m[2]!);
  const [clientId, scope, claims, device, , sub] = fields(value.slice(m[0].length), [m[11], m[12], m[13], m[14], m[15]].map(Number)) as [string, string, string, string, string, string];
  return {
    generation: hex(m[1]!), createdAt, lastUsed: createdAt + hex(m[3]!), idleTimeout: hex(m[4]!) * 1000, absoluteExpiresAt: createdAt + hex(m[5]!) * 1000,
    ttl: hex(m[7]!), current: m[8]!, previous: m[9]!, clientId, scope, claims, device, sub,
  };
}

/** A session's deadline: lastUsed + its idle timeout, capped at its absolute deadline, rounded up to a whole second. */
function deadline(lastUsed: number, idleTimeout: number, absolute: number): number {
  return Math.ceil(Math.min(lastUsed + idleTimeout, absolute) / 1000) * 1000;
}

function parsed<T>(json: string): T | undefined {
  if (json === '') return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

/** A packed session as a SessionInfo, or undefined when it is not one. */
export function sessionFromPacked(sid: string, packed: string): SessionInfo | undefined {
  const s = unpackSession(packed);
  if (s === undefined) return undefined;
  const info: SessionInfo = {
    sid, sub: s.sub, createdAt: s.createdAt, lastUsed: s.lastUsed, expiresAt: deadline(s.lastUsed, s.idleTimeout, s.absoluteExpiresAt),
    absoluteExpiresAt: s.absoluteExpiresAt, generation: s.generation,
  };
  const device = deviceOf(parsed<unknown>(s.device));
  if (device !== undefined) info.device = device;
  if (s.clientId !== '') info.clientId = s.clientId;
  if (s.scope !== '') info.scope = s.scope;
  const claims = parsed<Record<string, unknown>>(s.claims);
  if (claims !== undefined) info.claims = claims;
  return info;
}

/** Claims every access token has: the rest are the session's further claims. */
const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'sid']);

/**
 * The session a `session_started` or `refreshed` entry describes: its state, and the
 * claims of the access token it issued. Undefined when the state is not one.
 */
export function sessionFromState(sid: string, state: string, claims: TokenClaims): SessionInfo | undefined {
  const m = STATE.exec(state);
  if (!m) return undefined;
  const [narrowed, device] = fields(state.slice(m[0].length), [Number(m[6])]) as [string, string];
  const createdAt = hex(m[2]!);
  const lastUsed = createdAt + hex(m[3]!);
  const absoluteExpiresAt = createdAt + hex(m[5]!) * 1000;
  const info: SessionInfo = {
    sid, sub: claims.sub, createdAt, lastUsed, expiresAt: deadline(lastUsed, hex(m[4]!) * 1000, absoluteExpiresAt), absoluteExpiresAt, generation: hex(m[1]!),
  };
  const parsedDevice = deviceOf(parsed<unknown>(device));
  if (parsedDevice !== undefined) info.device = parsedDevice;
  if (typeof claims.client_id === 'string') info.clientId = claims.client_id;
  const scope = narrowed !== '' ? narrowed : claims.scope;
  if (typeof scope === 'string' && scope !== '') info.scope = scope;
  const extra = Object.entries(claims).filter(([name]) => !REGISTERED.has(name));
  if (extra.length > 0) info.claims = Object.fromEntries(extra);
  return info;
}
