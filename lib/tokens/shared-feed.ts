// The cache's revocation feed taken from a TokenLifecycle the application already runs
// (`cache: { lifecycle }`), instead of a connection of the store's own (revocation-feed.ts).
//
// The lifecycle's reader shows every read to this feed before any handler runs, so a
// revocation reaches the cache before the event is delivered, whatever the handlers do.
// Freshness is proved as the own feed proves it, by two things at once:
//   * a read of every bucket that came back with nothing more to read: everything
//     journaled before it was sent has been seen. This feed asks the lifecycle for one
//     every maxStaleness / 4; a handler that runs long delays it, and the cache then asks
//     Redis until the lifecycle catches up;
//   * the epoch keys, read on the store's own client at the same pace: a flushed database
//     or a journal that is gone drops the cache (the lifecycle's reads would not tell).
// A lifecycle that stops, starts again (it may have skipped entries), or reports a gap
// drops the cache too. Broadcast journal lifecycles only: a group member sees a share.
import { randomBytes } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { ConfigError } from '../errors.js';
import { READ_COUNT, readers, type JournalReader, type ReadTap } from '../events/journal-reader.js';
import type { KeySchema } from '../redis/keys.js';
import type { RedisClient } from '../redis/script.js';
import { endOf } from '../redis/streams.js';
import { RevocationFeed, type FeedTarget } from './revocation-feed.js';

/** What the store needs of the lifecycle it shares (a `TokenLifecycle`). */
export interface SharedLifecycle {
  readonly prefix: string;
  readonly buckets: number;
  readonly group: string | undefined;
  readonly deliveryMode: 'journal' | 'keyevents';
  on(name: 'gap', listener: () => void): unknown;
  off(name: 'gap', listener: () => void): unknown;
}

/** The lifecycle's reader, if it can be shared with a store on `keys`; else a ConfigError. */
export function sharedReader(lifecycle: unknown, keys: KeySchema): JournalReader {
  const l = lifecycle as SharedLifecycle;
  const reader = typeof lifecycle === 'object' && lifecycle !== null ? readers.get(lifecycle) : undefined;
  if (reader === undefined || l.group !== undefined || l.deliveryMode !== 'journal') {
    throw new ConfigError('cache.lifecycle', 'a TokenLifecycle with journal delivery and no consumer group (a group member reads a share of the journal)');
  }
  if (l.prefix !== keys.prefix || l.buckets !== keys.buckets) throw new ConfigError('cache.lifecycle', `a lifecycle on the store's prefix and buckets (${keys.prefix}, ${keys.buckets})`);
  return reader;
}

export class SharedFeed {
  private readProvenAt = -Infinity;
  private epochProvenAt = -Infinity;
  private generation: number | undefined;
  private epochs: (string | null)[] | undefined;
  private journals = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  /** A read returned a full batch: entries may have been trimmed unread. Forget all once caught up. */
  private gapSuspected = false;
  private readonly epochKeys: string[];
  private readonly logs: string[];
  private readonly onGap = () => this.lost();

  constructor(
    private readonly redis: RedisClient,
    keys: KeySchema,
    private readonly target: FeedTarget,
    private readonly maxStaleness: number,
    private readonly lifecycle: SharedLifecycle,
    private readonly reader: JournalReader,
  ) {
    this.epochKeys = keys.bases.map((_, b) => keys.epoch(b));
    this.logs = keys.bases.map((_, b) => keys.log(b));
  }

  /** Local ms of the older of the two proofs. */
  get provenAt(): number {
    return Math.min(this.readProvenAt, this.epochProvenAt);
  }

  fresh(now: number): boolean {
    return now - this.provenAt <= this.maxStaleness;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.reader.taps.add(this.tap);
    this.lifecycle.on('gap', this.onGap);
    const every = Math.max(5, Math.floor(this.maxStaleness / 4));
    this.timer = setInterval(() => this.round(), every).unref();
    this.round();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.reader.taps.delete(this.tap);
    this.lifecycle.off('gap', this.onGap);
    this.lost();
  }

  private readonly tap: ReadTap = (readAt, batches, complete, generation) => {
    if (generation !== this.generation) {
      // Started (again): entries before its cursor were never read here.
      if (this.generation !== undefined) this.lost();
      this.generation = generation;
    }
    for (const entries of batches.values()) {
      if (entries.length >= READ_COUNT) this.gapSuspected = true;
      for (const [, fields] of entries) {
        const end = endOf(fields);
        if (end === undefined) continue;
        if (end[0] === 'revoked') this.target.revoked(end[1]);
        else this.target.expired(end[1]);
      }
    }
    if (!complete) return;
    if (this.gapSuspected) {
      this.gapSuspected = false;
      this.target.flush();
    }
    this.readProvenAt = readAt;
  };

  /** Asks the lifecycle for a read of every bucket, and checks the epoch keys. */
  private round(): void {
    this.reader.request();
    if (this.checking) return;
    this.checking = true;
    this.checkEpochs().catch(() => {}).finally(() => { this.checking = false; });
  }

  private async checkEpochs(): Promise<void> {
    const sentAt = Date.now();
    const cluster = (this.redis as { isCluster?: boolean }).isCluster === true;
    if (this.epochs === undefined) {
      const mine = randomBytes(9).toString('base64url');
      await Promise.all(this.epochKeys.map((key) => this.redis.set(key, mine, 'NX')));
    }
    const [epochs, journals] = await Promise.all([
      cluster ? Promise.all(this.epochKeys.map((key) => this.redis.get(key))) : this.redis.mget(...this.epochKeys),
      cluster ? Promise.all(this.logs.map((log) => (this.redis as Cluster).exists(log))).then((n) => n.reduce((a, b) => a + b, 0)) : this.redis.exists(...this.logs),
    ]);
    if (this.epochs === undefined) {
      this.epochs = epochs;
      this.journals = journals;
    } else if (epochs.some((epoch, b) => epoch !== this.epochs![b]) || journals < this.journals) {
      this.lost();
      this.epochs = undefined;
      return;
    }
    this.journals = journals;
    this.epochProvenAt = sentAt;
  }

  private lost(): void {
    this.readProvenAt = -Infinity;
    this.epochProvenAt = -Infinity;
    this.target.flush();
  }
}

/** The feed of a store's cache: the lifecycle it shares (`cache.lifecycle`), or a connection of its own. */
export type CacheFeed = RevocationFeed | SharedFeed;

export function cacheFeed(redis: RedisClient, keys: KeySchema, target: FeedTarget, options: { maxStaleness: number; keptPerBucket: number; lifecycle: unknown }): CacheFeed {
  if (options.lifecycle === undefined) return new RevocationFeed(redis, keys, target, options);
  const lifecycle = options.lifecycle as SharedLifecycle;
  return new SharedFeed(redis, keys, target, options.maxStaleness, lifecycle, sharedReader(lifecycle, keys));
}
