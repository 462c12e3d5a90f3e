// The verified-token cache, on by default: a token this process fully verified
// (signature, claims, live in Redis) is answered again from memory, without
// cryptography or Redis, until its `exp`, unless its revocation arrives first.
//
// It never fails open. Revocations come from the store's own feed of the journal
// (revocation-feed.ts), which proves how fresh it is: an answer is given from memory
// only while that proof is at most `maxStaleness` old. Past that (a stalled or broken
// link, a feed that fell behind) the cache is dropped and `verify` asks Redis, which
// fails closed. `revoke` and `revokeAll` of this process evict before they resolve.
import { ConfigError } from '../errors.js';
import type { TokenInfo } from '../types.js';
import type { FeedTarget } from './revocation-feed.js';
import type { SharedLifecycle } from './shared-feed.js';
import { watchCache, type CacheSource } from '../metrics/metrics.js';

/** The `cache` option of a `TokenStore`. Defaults are in {@link cacheDefaults}. */
export interface TokenCacheOptions {
  /** Most tokens held; the least recently used go first (two generations of half this each). @default 10000 */
  maxEntries?: number;
  /** Most memory held, in bytes, estimated per entry from the token's length. @default 33554432 (32 MiB) */
  maxBytes?: number;
  /**
   * The longest time, in ms, a revocation journaled anywhere can go unseen by this
   * process' cache: a cached answer is given only while the store's journal feed has
   * proved, within this bound, that it has read everything. @default 1000
   */
  maxStaleness?: number;
  /**
   * A running `TokenLifecycle` (journal delivery, no consumer group, on the store's prefix)
   * to take revocations from, instead of a connection of the store's own. Its handlers
   * never delay a revocation; while it is stopped or behind, the cache asks Redis. See
   * docs/cache.md. @default undefined (the store follows the journal itself)
   */
  lifecycle?: SharedLifecycle;
}

/** Defaults of {@link TokenCacheOptions}. */
export const cacheDefaults = {
  /** @default 10000 */
  maxEntries: 10_000,
  /** @default 33554432 (32 MiB) */
  maxBytes: 32 * 1024 * 1024,
  /** @default 1000 */
  maxStaleness: 1000,
} as const;

/** What the cache hands back: the `TokenInfo` of the verification it remembers. */
export type CachedToken = TokenInfo<Record<string, unknown>>;

interface Entry extends CachedToken {
  bytes: number;
}

/** How long a revocation is remembered for verifications still in flight, ms (far above any Redis timeout). */
const REVOKED_MEMORY = 10 * 60_000;
const MAX_ENTRIES = 10_000_000;
/** Bytes an entry costs besides its token string and claims: Map slots, the entry object, the jti index. */
const ENTRY_OVERHEAD = 256;

/** What the cache needs to know of the feed: whether it is fresh now. */
export interface Freshness {
  fresh(now: number): boolean;
  /** Local ms of the last proof (-Infinity: none since it started), for the metrics. */
  readonly provenAt?: number;
  start(): void;
}

/** Freezes an object and every object in it (claims are plain JSON: no cycles). */
function deepFreeze(value: object): void {
  Object.freeze(value);
  for (const key in value) {
    const inner = (value as Record<string, unknown>)[key];
    if (typeof inner === 'object' && inner !== null && !Object.isFrozen(inner)) deepFreeze(inner);
  }
}

function limit(option: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new ConfigError(option, `an integer from ${min} to ${max}`);
  return v as number;
}

/** Validates the `cache` option; undefined for `cache: false`. */
/** The checked `cache` option. */
export type CacheSettings = Required<Omit<TokenCacheOptions, 'lifecycle'>> & { lifecycle?: SharedLifecycle };

export function cacheOptions(option: unknown): CacheSettings | undefined {
  if (option === false) return undefined;
  if (option === undefined || option === true) return { ...cacheDefaults };
  if (typeof option !== 'object' || option === null) throw new ConfigError('cache', 'false, or an object { maxEntries?, maxBytes?, maxStaleness?, lifecycle? }');
  const o = option as TokenCacheOptions;
  return {
    lifecycle: o.lifecycle,
    maxEntries: limit('cache.maxEntries', o.maxEntries, cacheDefaults.maxEntries, 1, MAX_ENTRIES),
    maxBytes: limit('cache.maxBytes', o.maxBytes, cacheDefaults.maxBytes, 4096, Number.MAX_SAFE_INTEGER),
    maxStaleness: limit('cache.maxStaleness', o.maxStaleness, cacheDefaults.maxStaleness, 20, 60_000),
  };
}

/**
 * @internal The store's cache. Entries are keyed by the whole token string, never by
 * `jti`: only the exact string that was verified is ever answered from here.
 */
export class TokenCache implements FeedTarget, CacheSource {
  private feed: Freshness | undefined;
  private unwatch: (() => void) | undefined;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  // Two generations instead of a strict LRU list: V8 Maps keep deleted slots until they
  // rehash, so evicting from the front of one big Map gets slower with every eviction.
  // New and recently used tokens go to `young`; when it holds half the budget (entries
  // or bytes) it becomes `old` and the previous `old` is dropped whole. A hit in `old`
  // moves the token back.
  private young = new Map<string, Entry>();
  private old = new Map<string, Entry>();
  private youngBytes = 0;
  private oldBytes = 0;
  private readonly generation: number;
  private readonly generationBytes: number;
  /** jti → its cached token strings (one, nearly always). */
  private readonly byJti = new Map<string, string | string[]>();
  /** Counts revocations; a verification remembers it when it asks Redis. */
  private revocations = 0;
  /** jti or subject → the revocation count when it was last revoked (for verifications in flight). */
  private readonly revokedAt = new Map<string, number>();
  /**
   * The revocations remembered, oldest first: ids and local times from `head` on; the
   * count of `ids[i]` is `firstCount + i`. A queue, not the Map's order: a Map whose
   * oldest entries keep being deleted is walked over their holes on every lookup of its first.
   */
  private ids: string[] = [];
  private times: number[] = [];
  private head = 0;
  private firstCount = 1;
  /** Verifications that started before this count can no longer be judged: they are not cached. */
  private forgottenBefore = 0;
  /**
   * Verifications asking Redis now (a `mark` not yet `settled`). With none, a revocation
   * need not be remembered: a verification that starts after it asks Redis after it too.
   * A storm of revocations with no verification in flight then costs no bookkeeping.
   */
  private inFlight = 0;

  constructor(options: CacheSettings) {
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes;
    this.generation = Math.ceil(this.maxEntries / 2);
    this.generationBytes = Math.ceil(this.maxBytes / 2);
  }

  /** The feed whose freshness gates every answer (set once, by the store). */
  attach(feed: Freshness): void {
    this.feed = feed;
    this.unwatch = watchCache(this);
  }

  /** The store closed: no longer reported by the metrics. */
  detach(): void {
    this.unwatch?.();
  }

  /** Seconds since the feed last proved it read everything; undefined while it has not (for the metrics). */
  staleness(now: number): number | undefined {
    const provenAt = this.feed?.provenAt ?? -Infinity;
    return provenAt === -Infinity ? undefined : Math.max(0, now - provenAt) / 1000;
  }

  /** Number of tokens held. */
  get size(): number {
    return this.young.size + this.old.size;
  }

  /** Estimated bytes held (never above `maxBytes`). */
  get bytes(): number {
    return this.youngBytes + this.oldBytes;
  }

  /** The remembered verification of exactly this token string, if it is still good. */
  get(token: string): CachedToken | undefined {
    let hit = this.young.get(token);
    if (hit === undefined) {
      hit = this.old.get(token);
      if (hit === undefined) return undefined;
    }
    const now = Date.now();
    if (!this.feed!.fresh(now)) {
      this.flush();
      return undefined;
    }
    if (now >= hit.expiresAt) {
      this.delete(token, hit.jti);
      return undefined;
    }
    if (this.old.get(token) === hit) {
      this.old.delete(token);
      this.oldBytes -= hit.bytes;
      this.keep(token, hit);
    }
    // A fresh object each time, so callers cannot share state through it.
    return { jti: hit.jti, sub: hit.sub, expiresAt: hit.expiresAt, claims: hit.claims };
  }

  /**
   * Taken just before asking Redis whether the token is live; handed back to {@link add},
   * and to {@link settled} once the verification is over, whatever its outcome. -1: do not cache.
   */
  mark(): number {
    const feed = this.feed!;
    feed.start();
    if (!feed.fresh(Date.now())) return -1;
    this.inFlight++;
    return this.revocations;
  }

  /** The verification that took `mark` is over (added, refused or failed). */
  settled(mark: number): void {
    if (mark >= 0 && this.inFlight > 0) this.inFlight--;
  }

  /**
   * Remembers a verification that found the token live in Redis, unless the feed was
   * not fresh, the cache was dropped since `mark`, or this jti or subject was revoked
   * since. Freezes `info.claims`: every later hit hands out the same object.
   */
  add(token: string, info: CachedToken, mark: number): void {
    if (mark < 0 || mark < this.forgottenBefore || !this.feed!.fresh(Date.now())) return;
    if ((this.revokedAt.get(info.jti) ?? -1) > mark || (this.revokedAt.get(`\0${info.sub}`) ?? -1) > mark) return;
    if (this.young.has(token) || this.old.has(token)) return;
    const bytes = ENTRY_OVERHEAD + 2 * token.length;
    if (bytes > this.generationBytes) return;
    deepFreeze(info.claims);
    const tokens = this.byJti.get(info.jti);
    this.byJti.set(info.jti, tokens === undefined ? token : typeof tokens === 'string' ? [tokens, token] : [...tokens, token]);
    this.keep(token, { jti: info.jti, sub: info.sub, expiresAt: info.expiresAt, claims: info.claims, bytes });
  }

  /** Puts a token in the young generation; a full young generation retires the old one. */
  private keep(token: string, entry: Entry): void {
    this.young.set(token, entry);
    this.youngBytes += entry.bytes;
    if (this.young.size < this.generation && this.youngBytes < this.generationBytes) return;
    for (const [dropped, { jti }] of this.old) this.unindex(dropped, jti);
    this.old = this.young;
    this.oldBytes = this.youngBytes;
    this.young = new Map();
    this.youngBytes = 0;
  }

  /** A token was revoked (by this process or, through the feed, by any). */
  revoked(jti: string): void {
    this.remember(jti);
    this.dropJti(jti);
  }

  /** Every token of a subject was revoked by this process (`revokeAll`). */
  /** Every token of `sub` is revoked, except those of session `except` ('' none). */
  revokedSubject(sub: string, except = ''): void {
    this.remember(`\0${sub}`);
    for (const generation of [this.young, this.old]) {
      for (const [token, entry] of generation) {
        if (entry.sub === sub && (except === '' || (entry.claims as { sid?: unknown }).sid !== except)) this.delete(token, entry.jti);
      }
    }
  }

  expired(jti: string): void {
    this.dropJti(jti);
  }

  private remember(id: string): void {
    ++this.revocations;
    if (this.inFlight === 0) return;
    const now = Date.now();
    this.revokedAt.set(id, this.revocations);
    this.ids.push(id);
    this.times.push(now);
    // Forget old revocations; verifications begun before them are then simply not cached.
    const { ids, times } = this;
    while (this.head < ids.length && (now - times[this.head]! >= REVOKED_MEMORY || this.revokedAt.size > this.maxEntries * 4)) {
      const count = this.firstCount + this.head;
      const old = ids[this.head++]!;
      if (this.revokedAt.get(old) === count) this.revokedAt.delete(old);
      this.forgottenBefore = count;
    }
    if (this.head >= 4096 && this.head * 2 >= ids.length) {
      this.ids = ids.slice(this.head);
      this.times = times.slice(this.head);
      this.firstCount += this.head;
      this.head = 0;
    }
  }

  private dropJti(jti: string): void {
    const tokens = this.byJti.get(jti);
    if (tokens === undefined) return;
    for (const token of typeof tokens === 'string' ? [tokens] : [...tokens]) this.delete(token, jti);
  }

  private delete(token: string, jti: string): void {
    const young = this.young.get(token);
    if (young !== undefined) {
      this.young.delete(token);
      this.youngBytes -= young.bytes;
    }
    const old = this.old.get(token);
    if (old !== undefined) {
      this.old.delete(token);
      this.oldBytes -= old.bytes;
    }
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

  /** Forgets everything; no verification in flight may be cached either. */
  flush(): void {
    if (this.size > 0) {
      this.young = new Map();
      this.old = new Map();
      this.youngBytes = 0;
      this.oldBytes = 0;
      this.byJti.clear();
    }
    this.revokedAt.clear();
    this.ids = [];
    this.times = [];
    this.head = 0;
    this.revocations++;
    this.forgottenBefore = this.revocations;
    this.firstCount = this.revocations + 1;
  }
}
