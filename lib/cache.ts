// The verified-token cache: a token this process fully verified (signature, claims,
// live in Redis) is answered again from memory, without cryptography or Redis, until
// its `exp` — unless a `revoked` event for its jti arrives first. That makes the
// cache exactly as fresh as the lifecycle feeding it: it is used only while that
// lifecycle is subscribed and caught up, and emptied the moment it is not.
import { ConfigError } from './errors.js';
import type { KeySchema } from './keys.js';
import type { TokenLifecycle } from './lifecycle.js';

/** The `cache` option of a `TokenStore`. */
export interface TokenCacheOptions {
  /**
   * A `TokenLifecycle` of this process on the store's prefix, with journal delivery and
   * no `group` (each instance must see every `revoked` event). Start it yourself; until
   * it is started, subscribed and caught up (`lifecycle.synced`), the cache is not used.
   */
  lifecycle: TokenLifecycle;
  /** Most tokens held; the least recently used go first (two generations of half this each). @default 10000 */
  maxEntries?: number;
}

/** Defaults of {@link TokenCacheOptions}. */
export const cacheDefaults = {
  /** About 1–2 KB per entry with typical claims: 10–20 MB at most. @default 10000 */
  maxEntries: 10_000,
} as const;

/** What the cache hands back: the `TokenInfo` of the verification it remembers. */
export interface CachedToken {
  jti: string;
  sub: string;
  expiresAt: number;
  claims: Record<string, unknown>;
}

/** How long a revocation is remembered for verifications still in flight, ms (far above any Redis timeout). */
const REVOKED_MEMORY = 10 * 60_000;
const MAX_ENTRIES = 10_000_000;

type Lifecycle = Pick<TokenLifecycle, 'on' | 'off' | 'synced' | 'prefix' | 'buckets' | 'deliveryMode' | 'group'>;

/** Freezes an object and every object in it (claims are plain JSON: no cycles). */
function deepFreeze(value: object): void {
  Object.freeze(value);
  for (const key in value) {
    const inner = (value as Record<string, unknown>)[key];
    if (typeof inner === 'object' && inner !== null && !Object.isFrozen(inner)) deepFreeze(inner);
  }
}

/**
 * @internal The store's cache. Entries are keyed by the whole token string, never by
 * `jti`: only the exact string that was verified is ever answered from here.
 */
export class TokenCache {
  private readonly lifecycle: Lifecycle;
  private readonly maxEntries: number;
  // Two generations instead of a strict LRU list: V8 Maps keep deleted slots until they
  // rehash, so evicting from the front of one big Map gets slower with every eviction.
  // New and recently used tokens go to `young`; when it holds half the budget it becomes
  // `old` and the previous `old` is dropped whole. A hit in `old` moves the token back.
  private young = new Map<string, CachedToken>();
  private old = new Map<string, CachedToken>();
  private readonly generation: number;
  /** jti → its cached token strings (one, nearly always). */
  private readonly byJti = new Map<string, string | string[]>();
  /** Counts revocations; a verification remembers it when it asks Redis. */
  private revocations = 0;
  /** jti → the revocation count when it was revoked, oldest first (for verifications in flight). */
  private readonly revoked = new Map<string, { n: number; at: number }>();
  /** Verifications that started before this count can no longer be judged: they are not cached. */
  private forgottenBefore = 0;
  private readonly onRevoked = (e: { jti: string }) => this.revoke(e.jti);
  private readonly onExpired = (e: { jti: string }) => this.drop(e.jti);
  private readonly onSync = (synced: boolean) => {
    if (!synced) this.flush();
  };

  constructor(option: unknown, keys: KeySchema) {
    if (typeof option !== 'object' || option === null) throw new ConfigError('cache', 'an object { lifecycle, maxEntries? }');
    const { lifecycle, maxEntries = cacheDefaults.maxEntries } = option as Partial<TokenCacheOptions>;
    if (!isLifecycle(lifecycle)) throw new ConfigError('cache.lifecycle', 'a TokenLifecycle of this process');
    // Only a lifecycle that sees every revocation of this prefix may feed a cache.
    if (lifecycle.prefix !== keys.prefix || lifecycle.buckets !== keys.buckets) {
      throw new ConfigError('cache.lifecycle', `a TokenLifecycle on the store's prefix "${keys.prefix}" with ${keys.buckets} buckets`);
    }
    if (lifecycle.deliveryMode !== 'journal' || lifecycle.group !== undefined) {
      throw new ConfigError('cache.lifecycle', 'a TokenLifecycle with journal delivery and no group (it must see every revocation)');
    }
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_ENTRIES) {
      throw new ConfigError('cache.maxEntries', `an integer from 1 to ${MAX_ENTRIES}`);
    }
    this.lifecycle = lifecycle;
    this.maxEntries = maxEntries;
    this.generation = Math.ceil(maxEntries / 2);
    lifecycle.on('revoked', this.onRevoked);
    lifecycle.on('expired', this.onExpired);
    lifecycle.on('sync', this.onSync);
  }

  /** Number of tokens held. */
  get size(): number {
    return this.young.size + this.old.size;
  }

  /** The remembered verification of exactly this token string, if it is still good. */
  get(token: string): CachedToken | undefined {
    if (!this.lifecycle.synced) return undefined;
    let hit = this.young.get(token);
    if (hit === undefined) {
      hit = this.old.get(token);
      if (hit === undefined) return undefined;
      this.old.delete(token);
      this.keep(token, hit);
    }
    if (Date.now() >= hit.expiresAt) {
      this.delete(token, hit.jti);
      return undefined;
    }
    // A fresh object each time, so callers cannot share state through it.
    return { jti: hit.jti, sub: hit.sub, expiresAt: hit.expiresAt, claims: hit.claims };
  }

  /** Taken just before asking Redis whether the token is live; handed back to {@link add}. */
  mark(): number {
    return this.lifecycle.synced ? this.revocations : -1;
  }

  /**
   * Remembers a verification that found the token live in Redis, unless the
   * lifecycle was out of sync at any point since `mark` or revoked this jti since.
   * Freezes `info.claims`: every later hit hands out the same object.
   */
  add(token: string, info: CachedToken, mark: number): void {
    if (mark < 0 || mark < this.forgottenBefore || !this.lifecycle.synced) return;
    const revoked = this.revoked.get(info.jti);
    if (revoked !== undefined && revoked.n > mark) return;
    if (this.young.has(token) || this.old.has(token)) return;
    deepFreeze(info.claims);
    const tokens = this.byJti.get(info.jti);
    this.byJti.set(info.jti, tokens === undefined ? token : typeof tokens === 'string' ? [tokens, token] : [...tokens, token]);
    this.keep(token, { jti: info.jti, sub: info.sub, expiresAt: info.expiresAt, claims: info.claims });
  }

  /** Puts a token in the young generation; a full young generation retires the old one. */
  private keep(token: string, entry: CachedToken): void {
    this.young.set(token, entry);
    if (this.young.size < this.generation) return;
    for (const [dropped, { jti }] of this.old) this.unindex(dropped, jti);
    this.old = this.young;
    this.young = new Map();
  }

  /** Detaches from the lifecycle and forgets everything. */
  close(): void {
    this.lifecycle.off('revoked', this.onRevoked);
    this.lifecycle.off('expired', this.onExpired);
    this.lifecycle.off('sync', this.onSync);
    this.flush();
  }

  private revoke(jti: string): void {
    const now = Date.now();
    this.revocations++;
    this.revoked.delete(jti);
    this.revoked.set(jti, { n: this.revocations, at: now });
    // Forget old revocations; verifications begun before them are then simply not cached.
    for (const [old, { n, at }] of this.revoked) {
      if (now - at < REVOKED_MEMORY && this.revoked.size <= this.maxEntries * 4) break;
      this.revoked.delete(old);
      this.forgottenBefore = n;
    }
    this.drop(jti);
  }

  private drop(jti: string): void {
    const tokens = this.byJti.get(jti);
    if (tokens === undefined) return;
    this.byJti.delete(jti);
    for (const token of typeof tokens === 'string' ? [tokens] : tokens) {
      this.young.delete(token);
      this.old.delete(token);
    }
  }

  private delete(token: string, jti: string): void {
    this.young.delete(token);
    this.old.delete(token);
    this.unindex(token, jti);
  }

  private unindex(token: string, jti: string): void {
    const tokens = this.byJti.get(jti);
    if (tokens === token) this.byJti.delete(jti);
    else if (Array.isArray(tokens)) {
      const rest = tokens.filter((t) => t !== token);
      if (rest.length === 0) this.byJti.delete(jti);
      else this.byJti.set(jti, rest.length === 1 ? rest[0]! : rest);
    }
  }

  private flush(): void {
    this.young = new Map();
    this.old = new Map();
    this.byJti.clear();
    this.revoked.clear();
    // Every verification in flight started before this: none of them may be cached.
    this.revocations++;
    this.forgottenBefore = this.revocations;
  }
}

function isLifecycle(value: unknown): value is Lifecycle {
  return typeof value === 'object' && value !== null && typeof (value as Lifecycle).on === 'function'
    && typeof (value as Lifecycle).off === 'function' && typeof (value as Lifecycle).synced === 'boolean';
}
