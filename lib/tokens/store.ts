// TokenStore: issues RFC 9068 JWT access tokens and keeps each live token in Redis
// until its `exp`, to the millisecond. A token is valid when its signature verifies
// and its key still exists in Redis.
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import type { IssuedToken, SessionInfo, SessionTokens, TokenClaims, TokenInfo } from '../types.js';
import { Batcher } from './batch.js';
import { TokenCache, cacheOptions } from './cache.js';
import { ConfigError, StoreUnavailableError, TokenError } from '../errors.js';
import { fromCache } from './cached-answer.js';
import { secondOf, type KeySchema } from '../redis/keys.js';
import { checkLayout, checkRedis } from '../redis/layout.js';
import { failClosed } from '../redis/fail-closed.js';
import { scripts, type RedisClient } from '../redis/script.js';
import { cacheFeed, type CacheFeed } from './shared-feed.js';
import { keyRing, publicJwk, type KeyRing, type VerifyRules } from './signing.js';
import { checkAudience, checkName, checkTtl, optionalString, storeDefaults, type IssueOptions, type TokenStoreOptions } from './options.js';
import { NO_TEMPLATE, Records, issueCall, type IssueItem } from './records.js';
import { Minter } from './mint.js';
import { sessionSettings } from '../sessions/options.js';
import { Sessions, type RefreshOptions, type SessionHost, type StartSessionOptions } from '../sessions/sessions.js';
import { ClientIds, recordIssued, recordRevoked, recordVerified, recordVerifyFailed, verifyStart } from '../metrics/metrics.js';

export { storeDefaults, type IssueOptions, type TokenStoreOptions } from './options.js';
export type { KeyInput, VerifyKeyInput } from './signing.js';
export type { RedisClient } from '../redis/script.js';
export type { Retention } from '../redis/layout.js';
export type { TokenCacheOptions } from './cache.js';
/** Overdue tokens every 8th issue reaps, keeping memory bounded without a listener. */
const REAP_ON_ISSUE = 16;

/**
 * Most tokens per issue or revoke script call (group commit, see batch.ts). Small enough
 * that the calls of one tick are several: Redis runs one while this process prepares the
 * next (measured: 64 callers in 16-token calls issue about 1.3× faster than in one call).
 */
const MAX_ISSUES_PER_CALL = 16;
const MAX_LOOKUPS_PER_CALL = 256;

/**
 * Issues JWT access tokens and keeps each live token in Redis until it expires or
 * is revoked. `verify` checks the signature *and* that the token is still live.
 * Options, token format and verification: docs/token-store.md; the cache: docs/cache.md.
 *
 * @example
 * ```ts
 * const store = new TokenStore({ redis: new Redis(), key: process.env.TOKEN_SECRET!, issuer: 'https://api.example' });
 * const { token } = await store.issue('alice', { scope: 'read write', ttl: 600 });
 * const { sub, claims } = await store.verify(token);   // throws TokenError / StoreUnavailableError
 * await store.revoke(token);
 * ```
 */
export class TokenStore<Claims extends object = Record<string, unknown>> {
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
  private readonly feed: CacheFeed | undefined;
  /** The `client_id` attributes of the issued counter: a bounded set. */
  private readonly clientIds: ClientIds;
  private closed = false;
  private readonly minter: Minter;
  private readonly sessionCalls: Sessions;
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
    this.ring = keyRing(options);
    this.ttl = checkTtl('ttl', options.ttl ?? storeDefaults.ttl);
    this.issuer = optionalString('issuer', options.issuer);
    const audience = checkAudience(options.audience);
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
      this.feed = cacheFeed(this.redis, this.keys, this.cache, { maxStaleness: cache.maxStaleness, keptPerBucket: kept, lifecycle: cache.lifecycle });
      this.cache.attach(this.feed);
    }
    const defaultClientId = this.clientId ?? this.issuer ?? (Array.isArray(audience) ? audience[0] : audience);
    // RFC 9068: every token carries client_id. A store that could not issue one fails now, not at its first issue().
    if (defaultClientId === undefined) throw new ConfigError('clientId', 'a client id: set clientId, issuer or audience (RFC 9068 tokens carry client_id)');
    this.clientIds = new ClientIds(defaultClientId);
    const sessions = sessionSettings(options.sessions);
    this.minter = new Minter(this.ring, new Records(this.issuer, audience), this.keys, { ttl: this.ttl, issuer: this.issuer, audience, defaultClientId, maxTokenLength });
    this.groupOf = (this.redis as { isCluster?: boolean }).isCluster === true ? (bucket) => bucket : () => 0;
    this.issues = new Batcher((_, items) => this.call(this.write(items)), MAX_ISSUES_PER_CALL);
    this.revocations = new Batcher((_, items) => this.call(scripts.revoke.run(this.redis,
      [...items.map(({ bucket, jti }) => this.keys.token(bucket, jti)),
        this.keys.answer(items[0]!.bucket, this.callId())],
      [this.retention, 'revoke', this.answerTtl, ...items.flatMap(({ bucket, jti }) => [this.keys.bases[bucket]!, jti])]) as Promise<number[]>), MAX_ISSUES_PER_CALL);
    const host: SessionHost = {
      redis: this.redis, keys: this.keys, retention: this.retention, answerTtl: this.answerTtl, minter: this.minter, ring: this.ring,
      call: (pending) => this.call(pending), callId: () => this.callId(), evict: (jtis) => { for (const jti of jtis) this.cache?.revoked(jti); },
      groupOf: (bucket) => this.groupOf(bucket), countIssued: (clientId) => recordIssued(this.clientIds.of(clientId)),
    };
    this.sessionCalls = new Sessions(host, sessions);
    this.lookups = new Batcher(async (_, keys) => (await this.call(this.redis.mget(...keys))).map((value) => value !== null), MAX_LOOKUPS_PER_CALL);
  }

  /**
   * Signs a new access token for `sub` and makes it live in Redis until its `exp`.
   * Rejects with `StoreUnavailableError` if Redis cannot confirm the write in time:
   * then the caller has no token, and at worst an unused entry expires on its own.
   */
  async issue(sub: string, options: IssueOptions<Claims> = {}): Promise<IssuedToken<TokenClaims & Claims>> {
    const minted = await this.minter.mint(sub, options);
    // Every 8th issue also reaps up to 16 overdue tokens of its bucket (more than issuing
    // adds), so memory stays bounded with no lifecycle running.
    const reap = (this.issued++ & 7) === 0 ? REAP_ON_ISSUE : 0;
    const item: IssueItem = { bucket: minted.bucket, jti: minted.jti, record: '', template: NO_TEMPLATE, reap };
    const write = async (): Promise<number> => {
      const template = minted.usable();
      item.template = template;
      item.record = minted.record(template);
      const written = await this.issues.add(this.groupOf(item.bucket), item);
      if (written !== -2) return written;
      // Redis holds another template's claims under this id: nothing was written for this
      // token, so it is written again with its claims in its own record.
      template.collided = true;
      return write();
    };
    // Sign while Redis writes: the two do not depend on each other.
    const [signed, written] = await Promise.all([minted.signed, write()]);
    if (written === -1) throw new StoreUnavailableError('Redis refused the token: its deadline is not after Redis server time (are the clocks apart?)');
    recordIssued(this.clientIds.of(minted.clientId));
    const { claims } = minted;
    return { token: signed, jti: claims.jti, sub, expiresAt: claims.exp * 1000, claims };
  }

  /**
   * Checks the signature, algorithm, `typ`, `iss`/`aud` when configured, `exp`, and
   * that the token is still live in Redis.
   * @throws TokenError with a code saying why the token was refused.
   * @throws StoreUnavailableError when Redis cannot answer: verification fails closed.
   */
  async verify(token: string): Promise<TokenInfo<TokenClaims & Claims>> {
    const hit = this[fromCache](token);
    if (hit !== undefined) return hit;
    const started = verifyStart();
    try {
      const info = await this.verifyInRedis(token);
      recordVerified(false, started);
      return info;
    } catch (err) {
      recordVerifyFailed(err, started);
      throw err;
    }
  }

  /** `verify` for a token the cache could not answer: signature and claims, then Redis. */
  private async verifyInRedis(token: string): Promise<TokenInfo<TokenClaims & Claims>> {
    const cache = this.cache;
    const claims = (await this.ring.verify(token, this.rules)) as TokenClaims & Claims;
    const bucket = this.keys.bucketOf(claims.jti);
    const mark = cache === undefined || this.closed ? -1 : cache.mark(); // a revocation from here on keeps it out
    try {
      if (!(await this.lookups.add(this.groupOf(bucket), this.keys.token(bucket, claims.jti)))) {
        // The key can be gone at the very instant of `exp`: say expired, not revoked.
        if (Date.now() >= claims.exp * 1000) throw new TokenError('ERR_TOKEN_EXPIRED', 'token has expired');
        throw new TokenError('ERR_TOKEN_REVOKED', 'token has been revoked');
      }
      const info: TokenInfo<TokenClaims & Claims> = { jti: claims.jti, sub: claims.sub, expiresAt: claims.exp * 1000, claims };
      cache?.add(token, info, mark);
      this.sessionCalls.verified(claims);
      return info;
    } finally {
      // After `add`, in the same turn: a revocation until then is remembered for it.
      cache?.settled(mark);
    }
  }

  /** @internal `verify`'s answer from the cache, synchronously (see fast-path.ts); undefined: ask `verify`. */
  [fromCache](token: string): TokenInfo<TokenClaims & Claims> | undefined {
    const cache = this.cache;
    if (cache === undefined) return undefined;
    const started = verifyStart();
    const hit = cache.get(token) as TokenInfo<TokenClaims & Claims> | undefined;
    if (hit !== undefined) {
      recordVerified(true, started);
      this.sessionCalls.verified(hit.claims);
    }
    return hit;
  }

  /**
   * Revokes one token, given as the token string (its signature is checked first)
   * or as its `jti`. Resolves `true` if it was live, `false` if it was already gone.
   */
  async revoke(tokenOrJti: string): Promise<boolean> {
    const jti = await this.ring.jtiOf(tokenOrJti, this.rules);
    const second = jti === undefined ? undefined : secondOf(jti);
    if (jti === undefined || second === undefined) return false;
    const bucket = this.keys.bucketOf(jti);
    // Evicted before the script runs, so no verification in flight caches it again, and
    // after, for one that read Redis in between: a revoke that resolved is final here.
    this.cache?.revoked(jti);
    try {
      const revoked = (await this.revocations.add(this.groupOf(bucket), { bucket, jti, second })) === 1;
      if (revoked) recordRevoked('revoke');
      return revoked;
    } finally {
      this.cache?.revoked(jti);
    }
  }

  /**
   * Revokes every live token of `sub` and ends its sessions; with `except`, that session
   * and its tokens stay ("log out other devices"). Resolves with how many tokens were revoked.
   */
  async revokeAll(sub: string, options: { except?: string } = {}): Promise<number> {
    checkName('sub', sub);
    const except = options.except === undefined ? '' : checkName('except', options.except, 16);
    const call = this.callId();
    this.cache?.revokedSubject(sub, except);
    const counts = await this.call(Promise.all(this.keys.bases.map((base, bucket) => scripts.revokeAll.run(this.redis,
      [this.keys.subject(bucket, sub), this.keys.due(bucket), this.keys.log(bucket), this.keys.answer(bucket, call)],
      [base, this.retention, 'revokeAll', this.answerTtl, except])))).finally(() => this.cache?.revokedSubject(sub, except));
    const revoked = counts.reduce<number>((sum, n) => sum + Number(n), 0);
    recordRevoked('revokeAll', revoked);
    return revoked;
  }

  /** The live tokens of `sub`, soonest to expire first. */
  async list(sub: string): Promise<TokenInfo<TokenClaims & Claims>[]> {
    checkName('sub', sub);
    const perBucket = await this.call(Promise.all(this.keys.bases.map((base, bucket) => scripts.list.run(this.redis,
      [this.keys.subject(bucket, sub)], [base]))));
    const tokens: TokenInfo<TokenClaims & Claims>[] = [];
    for (const rows of perBucket as string[][]) {
      for (const json of rows) {
        let claims: TokenClaims & Claims;
        try {
          claims = JSON.parse(json) as TokenClaims & Claims;
        } catch {
          continue; // not written by this library; never let one bad entry hide the rest
        }
        tokens.push({ jti: claims.jti, sub: claims.sub, expiresAt: claims.exp * 1000, claims });
      }
    }
    return tokens.sort((a, b) => a.expiresAt - b.expiresAt);
  }

  /**
   * Starts a session for `sub` (sign-in): its first access token (with a `sid` claim) and
   * its refresh token, which only `refresh` accepts, once. See docs/sessions.md.
   */
  startSession(sub: string, options?: StartSessionOptions<Claims>): Promise<SessionTokens<TokenClaims & Claims>> {
    return this.sessionCalls.start<Claims>(sub, options);
  }

  /**
   * Trades a refresh token for a new access token and a new refresh token (rotation).
   * @throws RefreshError ERR_REFRESH_INVALID, ERR_REFRESH_REUSED (theft: the session was ended), ERR_REFRESH_SCOPE, ERR_REFRESH_CLIENT.
   */
  refresh(refreshToken: string, options?: RefreshOptions): Promise<SessionTokens<TokenClaims & Claims>> {
    return this.sessionCalls.refresh<Claims>(refreshToken, options);
  }

  /** The live sessions of `sub` (its devices), oldest first. */
  sessions(sub: string): Promise<SessionInfo[]> {
    return this.sessionCalls.list(sub);
  }

  /** Ends a session and revokes its access tokens; `reason` is `revoked` (default) or `logout`. False if it had ended. */
  revokeSession(sid: string, reason: 'revoked' | 'logout' = 'revoked'): Promise<boolean> {
    return this.sessionCalls.end(sid, reason);
  }

  /**
   * RFC 7009 for a refresh token: ends its session. False for a token that is not a live one
   * of ours. With `clientId`, another client's token is left alone (RefreshError ERR_REFRESH_CLIENT).
   */
  revokeRefreshToken(refreshToken: string, options?: { clientId?: string }): Promise<boolean> {
    return this.sessionCalls.revokeRefreshToken(refreshToken, options);
  }

  /**
   * The public keys that verify this store's tokens, as a JWK Set (RFC 7517) for a
   * `/.well-known/jwks.json` endpoint: the current key and the `verifyKeys`, asymmetric
   * ones only, each with `kid` (when named), `alg` and `use: 'sig'`. Never a secret or a
   * private part: a store signing with an HMAC secret publishes `{ keys: [] }`.
   */
  async publicJwks(): Promise<{ keys: JWK[] }> {
    return { keys: this.ring.verifyingKeys().map(publicJwk).filter((jwk): jwk is JWK => jwk !== undefined) };
  }

  /**
   * Stops the store's journal feed and closes its connection (the `redis` client given
   * to the store is never closed). `verify` still works afterwards, without the cache.
   * Safe to call more than once.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.cache?.flush();
    this.cache?.detach();
    await this.feed?.stop();
  }

  /** `await using store = new TokenStore(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** One issue script call for the tokens of concurrent `issue` calls (one group). */
  private write(items: IssueItem[]): Promise<number[]> {
    const { keys, args, order } = issueCall(this.keys, this.retention, items);
    return (scripts.issue.run(this.redis, keys, args) as Promise<number[]>).then((codes) => {
      const out = new Array<number>(items.length);
      order.forEach((item, i) => { out[item] = codes[i]!; });
      return out;
    });
  }

  private callId(): string {
    return this.calls.prefix + (this.calls.count++).toString(36);
  }

  /** One Redis round trip, bounded in time; any failure becomes `StoreUnavailableError`. */
  private call<T>(pending: Promise<T>): Promise<T> {
    return failClosed(pending, this.timeout);
  }
}
