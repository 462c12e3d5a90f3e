// What a TokenStore and its issue() accept: the option types, their defaults, and the
// checks every option and argument goes through once.
import { ConfigError } from '../errors.js';
import type { SessionOptions } from '../types.js';
import { layoutDefaults, type Retention } from '../redis/layout.js';
import type { RedisClient } from '../redis/script.js';
import type { TokenCacheOptions } from './cache.js';
import type { KeyInput, VerifyKeyInput } from './signing.js';

/** Options of {@link TokenStore}. Defaults are in {@link storeDefaults}. */
export interface TokenStoreOptions {
  /** An ioredis `Redis` or `Cluster`. The store never closes it. */
  redis: RedisClient;
  /** The signing key: an HMAC secret (>= 32 bytes), or an EC/Ed25519/RSA private key (PEM, JWK, KeyObject, CryptoKey). */
  key: KeyInput;
  /** JWS algorithm. Inferred from the key: HS256 for secrets, ES256/EdDSA/RS256 for keys. */
  algorithm?: string;
  /** Key id put in the token header (`kid`); taken from a JWK's `kid` when not given. */
  kid?: string;
  /** Older keys still accepted by `verify` (key rotation), looked up by the token's `kid`. */
  verifyKeys?: VerifyKeyInput[];
  /** `iss` of issued tokens; when set, `verify` requires it. */
  issuer?: string;
  /** `aud` of issued tokens; when set, `verify` requires it. */
  audience?: string | string[];
  /** `client_id` of issued tokens unless `issue` names one; defaults to `issuer`, then `audience`. */
  clientId?: string;
  /** Prefix of every Redis key. @default 'tok:' */
  prefix?: string;
  /** Default token lifetime in seconds. @default 900 */
  ttl?: number;
  /** Number of buckets (hash slots used); fixed for a prefix, must match every store and lifecycle on it. @default 16 */
  buckets?: number;
  /** Milliseconds to wait for Redis before failing closed with `StoreUnavailableError`. @default 2000 */
  timeout?: number;
  /** How much of the journal (the event log lifecycles read) Redis keeps. @default { entries: 100000 } */
  retention?: Retention;
  /** Longest token string `verify` will parse. @default 8192 */
  maxTokenLength?: number;
  /**
   * The verified-token cache, on by default: a token verified once is answered from
   * memory (no crypto, no Redis) until its `exp` or its revocation. The store follows
   * the journal on a connection of its own to hear of revocations by any process; a
   * revoked token is refused from the cache within `maxStaleness` (default 1 s) of its
   * revocation, and at once after this process' own `revoke`/`revokeAll`. A stalled
   * link, a flushed database or a journal that is gone drops the cache. `false` turns it
   * off: every `verify` asks Redis. Claims of cached tokens are frozen. See docs/cache.md.
   * @default { maxEntries: 10000, maxBytes: 32 MiB, maxStaleness: 1000 }
   */
  cache?: false | TokenCacheOptions;
  /** Sessions and refresh tokens (`startSession`, `refresh`): timeouts, grace window, cap. See docs/sessions.md. */
  sessions?: SessionOptions;
}

/** Defaults of {@link TokenStoreOptions}. */
export const storeDefaults = {
  /** @default 'tok:' */
  prefix: layoutDefaults.prefix,
  /** @default 900 */
  ttl: 900,
  /** @default 16 */
  buckets: layoutDefaults.buckets,
  /** @default 2000 */
  timeout: 2000,
  /** @default { entries: 100000 } */
  retention: layoutDefaults.retention,
  /** @default 8192 */
  maxTokenLength: 8192,
} as const;

/** Options of {@link TokenStore.issue}. */
export interface IssueOptions<Claims extends object = Record<string, unknown>> {
  /** Lifetime in seconds. Defaults to the store's `ttl`. */
  ttl?: number;
  /** Scopes, as a space-separated string or an array. */
  scope?: string | string[];
  /** `client_id` claim; defaults to the store's `clientId`, `issuer`, then `audience`. */
  clientId?: string;
  /** Extra claims. Registered claims (`sub`, `exp`, `jti`, …) cannot be set here. */
  claims?: Claims;
}

/** Registered claims: set through their own options, never through `claims`. */
export const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'sid']);
const MAX_TTL = 10 * 365 * 24 * 3600;

export function checkTtl(option: string, ttl: unknown): number {
  if (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_TTL) {
    throw new ConfigError(option, `a whole number of seconds from 1 to ${MAX_TTL}`);
  }
  return ttl as number;
}

/**
 * A lone UTF-16 surrogate: such a string has no UTF-8 form, so Redis would get the same
 * replacement bytes for many of them (`\ud800`, `\udbff` and `\ufffd` would share a key).
 */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** A string that names a Redis key or goes into a token: non-empty, well-formed Unicode. */
export function checkName(option: string, value: unknown, max = Infinity): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new ConfigError(option, max === Infinity ? 'a non-empty string' : `a non-empty string of at most ${max} characters`);
  }
  if (LONE_SURROGATE.test(value)) throw new ConfigError(option, 'well-formed Unicode (no lone surrogate)');
  return value;
}

export function optionalString(option: string, value: unknown): string | undefined {
  return value === undefined ? undefined : checkName(option, value);
}

/** Refuses lone surrogates anywhere in extra claims, names and values alike. */
export function checkClaims(option: string, value: unknown): void {
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new ConfigError(option, 'well-formed Unicode (no lone surrogate)');
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => checkClaims(`${option}[${i}]`, item));
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, inner] of Object.entries(value)) {
      if (LONE_SURROGATE.test(name)) throw new ConfigError(`${option}`, 'claim names in well-formed Unicode (no lone surrogate)');
      checkClaims(`${option}.${name}`, inner);
    }
  }
}

/** Length of `bytes` bytes in unpadded base64url. */
export const base64urlLength = (bytes: number) => Math.ceil((bytes * 4) / 3);

export function scopeString(scope: unknown): string | undefined {
  if (scope === undefined) return undefined;
  const list = typeof scope === 'string' ? scope.split(' ').filter(Boolean) : scope;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) {
    throw new ConfigError('scope', 'a space-separated string or an array of scope tokens (RFC 6749 §3.3)');
  }
  return list.join(' ');
}

/** `audience`: a non-empty string or array of them, in well-formed Unicode. */
export function checkAudience(audience: unknown): string | string[] | undefined {
  if (audience === undefined) return undefined;
  if (typeof audience === 'string') return checkName('audience', audience);
  if (!Array.isArray(audience) || audience.length === 0) throw new ConfigError('audience', 'a non-empty string or array of strings');
  return audience.map((a, i) => checkName(`audience[${i}]`, a));
}
