// TokenStore: issues RFC 9068 JWT access tokens and keeps each live token in Redis
// until its `exp`, to the millisecond. A token is valid when its signature verifies
// and its key still exists in Redis.
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import type { IssuedToken, TokenClaims, TokenInfo } from '../types.js';
import { Batcher } from './batch.js';
import { TokenCache, cacheOptions, type TokenCacheOptions } from './cache.js';
import { ConfigError, RedisTokenError, StoreUnavailableError, TokenError } from '../errors.js';
import { fromCache } from './cached-answer.js';
import { fnv1a, newJti, secondOf, type KeySchema } from '../redis/keys.js';
import { checkLayout, checkRedis, layoutDefaults, type Retention } from '../redis/layout.js';
import { scripts, type RedisClient } from '../redis/script.js';
import { RevocationFeed } from './revocation-feed.js';
import { KeyRing, namedKey, publicJwk, type KeyInput, type VerifyKeyInput, type VerifyRules } from './signing.js';

export type { KeyInput, VerifyKeyInput } from './signing.js';
export type { RedisClient } from '../redis/script.js';
export type { Retention } from '../redis/layout.js';
export type { TokenCacheOptions } from './cache.js';

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
   * off: every `verify` asks Redis. Claims of cached tokens are frozen.
   * @default { maxEntries: 10000, maxBytes: 32 MiB, maxStaleness: 1000 }
   */
  cache?: false | TokenCacheOptions;
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
export interface IssueOptions {
  /** Lifetime in seconds. Defaults to the store's `ttl`. */
  ttl?: number;
  /** Scopes, as a space-separated string or an array. */
  scope?: string | string[];
  /** `client_id` claim; defaults to the store's `clientId`, `issuer`, then `audience`. */
  clientId?: string;
  /** Extra claims. Registered claims (`sub`, `exp`, `jti`, …) cannot be set here. */
  claims?: Record<string, unknown>;
}

const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope']);
const MAX_TTL = 10 * 365 * 24 * 3600;
/** Milliseconds a token lives at least (only a ttl of 1 s could come closer to its exp). */
const MIN_LIFETIME = 100;
/** Overdue tokens every 8th issue reaps, keeping memory bounded without a listener. */
const REAP_ON_ISSUE = 16;

function checkTtl(option: string, ttl: unknown): number {
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
function checkName(option: string, value: unknown, max = Infinity): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new ConfigError(option, max === Infinity ? 'a non-empty string' : `a non-empty string of at most ${max} characters`);
  }
  if (LONE_SURROGATE.test(value)) throw new ConfigError(option, 'well-formed Unicode (no lone surrogate)');
  return value;
}

function optionalString(option: string, value: unknown): string | undefined {
  return value === undefined ? undefined : checkName(option, value);
}

/** Refuses lone surrogates anywhere in extra claims, names and values alike. */
function checkClaims(option: string, value: unknown): void {
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
const base64urlLength = (bytes: number) => Math.ceil((bytes * 4) / 3);

function scopeString(scope: unknown): string | undefined {
  if (scope === undefined) return undefined;
  const list = typeof scope === 'string' ? scope.split(' ').filter(Boolean) : scope;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) {
    throw new ConfigError('scope', 'a space-separated string or an array of scope tokens (RFC 6749 §3.3)');
  }
  return list.join(' ');
}

/**
 * Claims the tokens of a store share (iss, aud, client_id) are stored once per expiry
 * second and bucket as a template, not in each record.
 */
interface Template {
  id: string;
  /** The claims, as the members of a JSON object. */
  members: string;
  /** Redis holds other claims under this id (another store's template): records carry these claims themselves. */
  collided: boolean;
}
/** Records that hold every claim themselves (their template's id is taken by other claims). */
const NO_TEMPLATE: Template = { id: '', members: '', collided: false };
/** Client ids with a template of their own; tokens of further ones carry client_id in their record. */
const MAX_TEMPLATES = 256;

/** One token for the issue script (see issue-n.lua). */
interface IssueItem {
  bucket: number;
  jti: string;
  exp: number;
  sub: string;
  record: string;
  template: Template;
  json: string;
  /** Overdue tokens of its bucket to reap first. */
  reap: number;
}
/** Most tokens per issue or revoke script call, and token keys per MGET (group commit, see batch.ts). */
const MAX_ISSUES_PER_CALL = 64;
const MAX_LOOKUPS_PER_CALL = 256;

/** Any failure to get an answer from Redis, as the fail-closed error. */
function unavailable(err: unknown): never {
  if (err instanceof RedisTokenError) throw err;
  throw new StoreUnavailableError(`Redis is unavailable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * Issues JWT access tokens and keeps each live token in Redis until it expires or
 * is revoked. `verify` checks the signature *and* that the token is still live.
 *
 * @example
 * ```ts
 * const store = new TokenStore({ redis: new Redis(), key: process.env.TOKEN_SECRET!, issuer: 'https://api.example' });
 * const { token } = await store.issue('alice', { scope: 'read write', ttl: 600 });
 * const { sub, claims } = await store.verify(token);   // throws TokenError / StoreUnavailableError
 * await store.revoke(token);
 * ```
 */
export class TokenStore {
  /** @internal */ readonly keys: KeySchema;
  private readonly redis: RedisClient;
  private readonly ring: KeyRing;
  private readonly ttl: number;
  private readonly timeout: number;
  /** How long Redis keeps a revoking call's answer: as long as the caller waits for it, and a margin. */
  private readonly answerTtl: number;
  private readonly issuer: string | undefined;
  private readonly audience: string | string[] | undefined;
  private readonly clientId: string | undefined;
  private readonly rules: VerifyRules;
  private readonly retention: string;
  private readonly cache: TokenCache | undefined;
  private readonly feed: RevocationFeed | undefined;
  private closed = false;
  private readonly defaultClientId: string;
  /** Characters a token has besides its payload (header, signature, dots): learnt from the first one signed. */
  private tokenOverhead: number | undefined;
  private readonly maxTokenLength: number;
  /** Templates by client_id; '' holds iss and aud only. */
  private readonly templates = new Map<string, Template>();
  private issued = 0;
  /** Names the answer of each revoking call (see include/lifecycle.lua): this store's random part, then a count. */
  private readonly calls = { prefix: randomBytes(6).toString('base64url'), count: 0 };
  /** Group of a bucket for one command: a single node takes any keys in one command, a Cluster one slot. */
  private readonly groupOf: (bucket: number) => number;
  private readonly issues: Batcher<IssueItem, number>;
  private readonly lookups: Batcher<string, boolean>;
  private readonly revocations: Batcher<{ bucket: number; jti: string; second: number }, number>;

  constructor(options: TokenStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
    this.redis = checkRedis(options.redis);
    ({ keys: this.keys, retention: this.retention } = checkLayout(options));
    if (options.key === undefined || options.key === null) throw new ConfigError('key', 'a signing key or secret');
    const algorithm = optionalString('algorithm', options.algorithm);
    const kid = optionalString('kid', options.kid);
    const current = namedKey('key', options.key, algorithm, kid, true);
    if (options.verifyKeys !== undefined && !Array.isArray(options.verifyKeys)) {
      throw new ConfigError('verifyKeys', 'an array of { kid, key } or JWKs with a kid');
    }
    const older = (options.verifyKeys ?? []).map((entry, i) => {
      const option = `verifyKeys[${i}]`;
      if (typeof entry !== 'object' || entry === null || typeof entry.kid !== 'string' || entry.kid.length === 0) {
        throw new ConfigError(option, 'an object with a non-empty string kid');
      }
      const input = 'key' in entry && entry.key !== undefined ? entry.key : entry;
      const alg = 'algorithm' in entry ? entry.algorithm : (entry as { alg?: string }).alg;
      return namedKey(option, input as KeyInput, alg, entry.kid, false);
    });
    this.ring = new KeyRing(current, older);
    this.ttl = checkTtl('ttl', options.ttl ?? storeDefaults.ttl);
    this.issuer = optionalString('issuer', options.issuer);
    const audience = options.audience;
    if (audience !== undefined && typeof audience !== 'string' && !(Array.isArray(audience) && audience.length > 0 && audience.every((a) => typeof a === 'string' && a))) {
      throw new ConfigError('audience', 'a non-empty string or array of strings');
    }
    if (audience === '') throw new ConfigError('audience', 'a non-empty string or array of strings');
    this.audience = audience;
    this.clientId = optionalString('clientId', options.clientId);
    const timeout = options.timeout ?? storeDefaults.timeout;
    if (!Number.isInteger(timeout) || timeout < 1) throw new ConfigError('timeout', 'a whole number of milliseconds >= 1');
    this.timeout = timeout;
    this.answerTtl = timeout + 1000;
    const maxTokenLength = options.maxTokenLength ?? storeDefaults.maxTokenLength;
    if (!Number.isInteger(maxTokenLength) || maxTokenLength < 64) throw new ConfigError('maxTokenLength', 'an integer >= 64');
    this.rules = { issuer: this.issuer, audience, maxTokenLength };
    const cache = cacheOptions(options.cache);
    if (cache !== undefined) {
      const [kept, maxAge] = this.retention.split('/').map(Number) as [number, number];
      if (maxAge > 0 && maxAge < cache.maxStaleness) throw new ConfigError('cache.maxStaleness', `at most retention.maxAge (${maxAge} ms)`);
      this.cache = new TokenCache(cache);
      this.feed = new RevocationFeed(this.redis, this.keys, this.cache, { maxStaleness: cache.maxStaleness, keptPerBucket: kept });
      this.cache.attach(this.feed);
    }
    if (typeof audience === 'string') checkName('audience', audience);
    else audience?.forEach((a, i) => checkName(`audience[${i}]`, a));
    const defaultClientId = this.clientId ?? this.issuer ?? (Array.isArray(audience) ? audience[0] : audience);
    // RFC 9068: every token carries client_id. A store that could not issue one fails now, not at its first issue().
    if (defaultClientId === undefined) throw new ConfigError('clientId', 'a client id: set clientId, issuer or audience (RFC 9068 tokens carry client_id)');
    this.defaultClientId = defaultClientId;
    this.maxTokenLength = maxTokenLength;
    this.template('');
    this.groupOf = (this.redis as { isCluster?: boolean }).isCluster === true ? (bucket) => bucket : () => 0;
    this.issues = new Batcher((_, items) => this.call(this.write(items)), MAX_ISSUES_PER_CALL);
    this.revocations = new Batcher((_, items) => this.call(scripts.revoke.run(this.redis,
      [...items.flatMap(({ bucket, jti, second }) => [this.keys.token(bucket, jti), this.keys.window(bucket, second), this.keys.log(bucket)]),
        this.keys.answer(items[0]!.bucket, this.callId())],
      [this.retention, 'revoke', this.answerTtl, ...items.flatMap(({ bucket, jti }) => [this.keys.bases[bucket]!, jti])]) as Promise<number[]>), MAX_ISSUES_PER_CALL);
    this.lookups = new Batcher(async (_, keys) => (await this.call(this.redis.mget(...keys))).map((value) => value !== null), MAX_LOOKUPS_PER_CALL);
  }

  /** The template of tokens of `clientId` ('': iss and aud only, for client ids past MAX_TEMPLATES). */
  private template(clientId: string): Template {
    let found = this.templates.get(clientId);
    if (found) return found;
    if (this.templates.size >= MAX_TEMPLATES) return this.templates.get('')!;
    const claims: Record<string, unknown> = {};
    if (this.issuer !== undefined) claims.iss = this.issuer;
    if (this.audience !== undefined) claims.aud = this.audience;
    if (clientId !== '') claims.client_id = clientId;
    const members = JSON.stringify(claims).slice(1, -1);
    // A short id keeps records inside Redis' compact hash encoding. Ids can collide (32 bits):
    // issue-n.lua never lets a template overwrite another one's claims (see `collided`).
    found = { id: members === '' ? '' : fnv1a(members).toString(36), members, collided: false };
    this.templates.set(clientId, found);
    return found;
  }

  /**
   * Signs a new access token for `sub` and makes it live in Redis until its `exp`.
   * Rejects with `StoreUnavailableError` if Redis cannot confirm the write in time:
   * then the caller has no token, and at worst an unused entry expires on its own.
   */
  async issue(sub: string, options: IssueOptions = {}): Promise<IssuedToken> {
    checkName('sub', sub, 1024);
    const ttl = options.ttl === undefined ? this.ttl : checkTtl('ttl', options.ttl);
    const scope = scopeString(options.scope);
    const clientId = optionalString('clientId', options.clientId) ?? this.defaultClientId;
    const extra = options.claims ?? {};
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new ConfigError('claims', 'a plain object');
    for (const name of Object.keys(extra)) {
      if (RESERVED.has(name)) throw new ConfigError(`claims.${name}`, 'no registered claim: set it through its own option');
    }
    checkClaims('claims', extra);

    let now = Date.now();
    // With a ttl of 1 s, a token issued in the last milliseconds of a second would die
    // (exp is a whole second) before Redis stored it: such an issue waits for the next second.
    if (ttl === 1 && now % 1000 > 1000 - MIN_LIFETIME) {
      await new Promise((resolve) => setTimeout(resolve, 1000 - (now % 1000)));
      now = Date.now();
    }
    // exp - iat is exactly the ttl asked for: RFC 9068 consumers, gateways that cap token
    // age and `expires_in` all read it as the lifetime. (So a token lives between ttl - 1
    // and ttl seconds from now, and dies in Redis at its `exp`, to the millisecond.)
    const iat = Math.floor(now / 1000);
    const exp = iat + ttl;
    const jti = newJti(exp);
    const claims: TokenClaims = { ...extra, sub, exp, iat, jti, client_id: clientId };
    if (this.issuer !== undefined) claims.iss = this.issuer;
    if (this.audience !== undefined) claims.aud = this.audience;
    if (scope !== undefined) claims.scope = scope;

    // The record holds what the template and the jti do not (see include/lifecycle.lua):
    // jti, exp, iss, aud and client_id are not stored per token.
    const json = JSON.stringify(claims);
    // Never mint a token `verify` would refuse. Its length is known before signing: the
    // header and the signature have a fixed length per key, learnt from the first token.
    const payloadLength = base64urlLength(Buffer.byteLength(json));
    let token: string | undefined;
    if (this.tokenOverhead === undefined) {
      token = await this.ring.sign(claims, json);
      this.tokenOverhead = token.length - payloadLength;
    }
    if (payloadLength + this.tokenOverhead > this.maxTokenLength) {
      throw new ConfigError('claims', `claims that keep the token within maxTokenLength (${this.maxTokenLength} characters; this one would have ${payloadLength + this.tokenOverhead})`);
    }
    const shared = this.template(clientId);
    const bucket = this.keys.bucketOf(jti);
    // Every 8th issue also reaps up to 16 overdue tokens of its bucket (more than issuing
    // adds), so memory stays bounded with no lifecycle running.
    const reap = (this.issued++ & 7) === 0 ? REAP_ON_ISSUE : 0;
    const item = { bucket, jti, exp, sub, record: '', template: shared, json, reap };
    const write = async (): Promise<number> => {
      const template = item.template.collided ? this.templates.get('')! : item.template;
      item.template = template.collided ? NO_TEMPLATE : template;
      item.record = this.record(item.template, clientId, extra, scope, sub, exp - iat);
      const written = await this.issues.add(this.groupOf(bucket), item);
      if (written !== -2) return written;
      // Redis holds another template's claims under this id: nothing was written for this
      // token, so it is written again with its claims in its own record.
      template.collided = true;
      return write();
    };
    // Sign while Redis writes: the two do not depend on each other.
    const [signed, written] = await Promise.all([token ?? this.ring.sign(claims, json), write()]);
    if (written === -1) throw new StoreUnavailableError('Redis refused the token: its deadline is not after Redis server time (are the clocks apart?)');
    return { token: signed, jti: claims.jti, sub, expiresAt: claims.exp * 1000, claims };
  }

  /**
   * A token's record: what the template and the jti do not hold (see include/lifecycle.lua).
   * jti, exp, iss, aud and client_id are not stored per token, unless no template holds them.
   */
  private record(template: Template, clientId: string, extra: Record<string, unknown>, scope: string | undefined, sub: string, age: number): string {
    let own: Record<string, unknown> = extra;
    if (template === NO_TEMPLATE) {
      own = { ...extra, client_id: clientId };
      if (this.issuer !== undefined) own.iss = this.issuer;
      if (this.audience !== undefined) own.aud = this.audience;
    } else if (template.id === '' || this.templates.get('') === template) own = { ...extra, client_id: clientId };
    const rest = Object.keys(own).length > 0 ? JSON.stringify(own) : '';
    return `${template.id},${age},${scope === undefined ? '' : scope.length},${Buffer.byteLength(rest)}:${scope ?? ''}${rest}${sub}`;
  }

  /**
   * Checks the signature, algorithm, `typ`, `iss`/`aud` when configured, `exp`, and
   * that the token is still live in Redis.
   * @throws TokenError with a code saying why the token was refused.
   * @throws StoreUnavailableError when Redis cannot answer: verification fails closed.
   */
  async verify(token: string): Promise<TokenInfo> {
    const hit = this[fromCache](token);
    if (hit !== undefined) return hit;
    const cache = this.cache;
    const claims = (await this.ring.verify(token, this.rules)) as TokenClaims;
    const bucket = this.keys.bucketOf(claims.jti);
    // Before asking Redis: a revocation from here on keeps this answer out of the cache.
    const mark = cache === undefined || this.closed ? -1 : cache.mark();
    const live = await this.lookups.add(this.groupOf(bucket), this.keys.token(bucket, claims.jti));
    if (!live) {
      // The key can be gone at the very instant of `exp`: say expired, not revoked.
      if (Date.now() >= claims.exp * 1000) throw new TokenError('ERR_TOKEN_EXPIRED', 'token has expired');
      throw new TokenError('ERR_TOKEN_REVOKED', 'token has been revoked');
    }
    const info: TokenInfo = { jti: claims.jti, sub: claims.sub, expiresAt: claims.exp * 1000, claims };
    cache?.add(token, info, mark);
    return info;
  }

  /** @internal `verify`'s answer from the cache, synchronously (see fast-path.ts); undefined: ask `verify`. */
  [fromCache](token: string): TokenInfo | undefined {
    return this.cache?.get(token) as TokenInfo | undefined;
  }

  /**
   * Revokes one token, given as the token string (its signature is checked first)
   * or as its `jti`. Resolves `true` if it was live, `false` if it was already gone.
   */
  async revoke(tokenOrJti: string): Promise<boolean> {
    const jti = await this.jtiOf(tokenOrJti);
    const second = jti === undefined ? undefined : secondOf(jti);
    if (jti === undefined || second === undefined) return false;
    const bucket = this.keys.bucketOf(jti);
    // Evicted before the script runs, so no verification in flight caches it again, and
    // after, for one that read Redis in between: a revoke that resolved is final here.
    this.cache?.revoked(jti);
    try {
      return (await this.revocations.add(this.groupOf(bucket), { bucket, jti, second })) === 1;
    } finally {
      this.cache?.revoked(jti);
    }
  }

  /** Revokes every live token of `sub`. Resolves with how many were revoked. */
  async revokeAll(sub: string): Promise<number> {
    checkName('sub', sub);
    const call = this.callId();
    this.cache?.revokedSubject(sub);
    const counts = await this.call(Promise.all(this.keys.bases.map((base, bucket) => scripts.revokeAll.run(this.redis,
      [this.keys.subject(bucket, sub), this.keys.due(bucket), this.keys.log(bucket), this.keys.answer(bucket, call)],
      [base, this.retention, 'revokeAll', this.answerTtl])))).finally(() => this.cache?.revokedSubject(sub));
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  /** The live tokens of `sub`, soonest to expire first. */
  async list(sub: string): Promise<TokenInfo[]> {
    checkName('sub', sub);
    const perBucket = await this.call(Promise.all(this.keys.bases.map((base, bucket) => scripts.list.run(this.redis,
      [this.keys.subject(bucket, sub)], [base]))));
    const tokens: TokenInfo[] = [];
    for (const rows of perBucket as string[][]) {
      for (const json of rows) {
        let claims: TokenClaims;
        try {
          claims = JSON.parse(json) as TokenClaims;
        } catch {
          continue; // not written by this library; never let one bad entry hide the rest
        }
        tokens.push({ jti: claims.jti, sub: claims.sub, expiresAt: claims.exp * 1000, claims });
      }
    }
    return tokens.sort((a, b) => a.expiresAt - b.expiresAt);
  }

  /**
   * The public keys that verify this store's tokens, as a JWK Set (RFC 7517) for a
   * `/.well-known/jwks.json` endpoint: the current key and the `verifyKeys`, asymmetric
   * ones only, each with `kid` (when named), `alg` and `use: 'sig'`. Never a secret or a
   * private part: a store signing with an HMAC secret publishes `{ keys: [] }`.
   */
  async publicJwks(): Promise<{ keys: JWK[] }> {
    const keys: JWK[] = [];
    for (const key of this.ring.verifyingKeys()) {
      const jwk = publicJwk(key);
      if (jwk !== undefined) keys.push(jwk);
    }
    return { keys };
  }

  /**
   * Stops the store's journal feed and closes its connection (the `redis` client given
   * to the store is never closed). `verify` still works afterwards, without the cache.
   * Safe to call more than once.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.cache?.flush();
    await this.feed?.stop();
  }

  /** `await using store = new TokenStore(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** One issue script call for the tokens of concurrent `issue` calls (one group). */
  private write(items: IssueItem[]): Promise<number[]> {
    const keys: string[] = [];
    const templates = new Map<string, string>();
    const perToken: (string | number)[] = [];
    for (const { bucket, jti, exp, sub, record, template, json, reap } of items) {
      const k = this.keys;
      keys.push(k.token(bucket, jti), k.window(bucket, exp), k.due(bucket), k.subject(bucket, sub), k.log(bucket), k.templates(bucket));
      if (template.id !== '') templates.set(template.id, template.members);
      perToken.push(k.bases[bucket]!, jti, exp, record, template.id, json, reap);
    }
    const args: (string | number)[] = [this.retention, templates.size];
    for (const [id, members] of templates) args.push(id, members);
    return scripts.issue.run(this.redis, keys, args.concat(perToken)) as Promise<number[]>;
  }

  private callId(): string {
    return this.calls.prefix + (this.calls.count++).toString(36);
  }

  private async jtiOf(tokenOrJti: string): Promise<string | undefined> {
    if (typeof tokenOrJti !== 'string' || tokenOrJti.length === 0) throw new ConfigError('tokenOrJti', 'a token or a jti');
    if (!tokenOrJti.includes('.')) {
      if (!/^[A-Za-z0-9_-]{16,128}$/.test(tokenOrJti)) throw new ConfigError('tokenOrJti', 'a token or a jti');
      return tokenOrJti;
    }
    // Only a token we signed may revoke: a forged one naming someone's jti must not.
    try {
      return (await this.ring.verify(tokenOrJti, this.rules)).jti as string;
    } catch (err) {
      if (err instanceof TokenError && err.code === 'ERR_TOKEN_EXPIRED') return undefined;
      throw err;
    }
  }

  /** One Redis round trip, bounded in time; any failure becomes `StoreUnavailableError`. */
  private call<T>(pending: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer within ${this.timeout} ms`)), this.timeout);
    });
    return Promise.race([pending, timeout]).catch(unavailable).finally(() => clearTimeout(timer));
  }
}
