// TokenLifecycle: delivers `issued` / `expired` / `revoked` from the journal the
// store's scripts write. Keyevents (expired, del, evicted on token keys; xadd on the
// journal) are only triggers: a sweeper reaps what is due by Redis time, a slow
// poll covers lost notifications, and a cursor per bucket means a reconnect
// resumes exactly where it left off.
import type { Redis } from 'ioredis';
import { AsyncEmitter } from './emitter.js';
import { ConfigError, StoreUnavailableError } from './errors.js';
import { JournalReader, fieldsOf, type StreamEntry } from './journal.js';
import { EVENTS, channel, ensureFlags, masters } from './keyevents.js';
import { KeySchema } from './keys.js';
import { scripts, type RedisClient } from './script.js';
import { KeyeventSubscriber } from './subscriber.js';
import { checkLayout, checkRedis, type TokenClaims } from './store.js';

export type TokenEventType = 'issued' | 'expired' | 'revoked';

/**
 * Why a token was revoked: `revoke` / `revokeAll` by a store; `external` when its key
 * was deleted by another client; `evicted` when Redis evicted it under maxmemory.
 */
export type RevokeReason = 'revoke' | 'revokeAll' | 'external' | 'evicted';

/** One lifecycle event, read from the journal. */
export interface TokenEvent {
  /** `<bucket>:<stream id>`: unique per prefix, increasing within a bucket. */
  id: string;
  type: TokenEventType;
  jti: string;
  sub: string;
  /** The token's JWT payload (never the token itself). */
  claims: TokenClaims;
  /** When the event was journaled, epoch ms by Redis' clock. */
  at: number;
  /** Only on `revoked`. */
  reason?: RevokeReason;
}

/** Events of {@link TokenLifecycle}. Listeners may be async: the next event waits for them. */
export interface LifecycleEvents extends Record<string, unknown> {
  /** A store issued a token. */
  issued: TokenEvent;
  /** A token reached its `exp` (reported within tens of ms by the sweeper). */
  expired: TokenEvent;
  /** A token stopped being live before its `exp`; `reason` says how. */
  revoked: TokenEvent;
  /** A listener threw, or Redis could not be read (the lifecycle keeps retrying). */
  error: Error;
  /** A configuration risk, such as an `allkeys-*` maxmemory policy. */
  warning: string;
  /**
   * `true` once subscribed and caught up with the journal; `false` when a
   * subscription drops or the journal cannot be read (events may be late until `true`).
   */
  sync: boolean;
}

export interface TokenLifecycleOptions {
  /** An ioredis `Redis` or `Cluster`. Subscriptions use their own connections (`duplicate()`); `redis` is never closed. */
  redis: RedisClient;
  /** Must match the store's. @default 'tok:' */
  prefix?: string;
  /** Must match the store's. @default 16 */
  buckets?: number;
  /** Safety-net poll of the journal and the due index, in ms. @default 1000 */
  pollInterval?: number;
  /** Must match the store's: the journal length the sweeper trims to. @default 100000 */
  journalLength?: number;
  /** Reap due tokens (the sweeper). Turn off only if another process sweeps. @default true */
  sweep?: boolean;
}

/** Defaults of {@link TokenLifecycleOptions}. */
export const lifecycleDefaults = {
  /** @default 1000 */
  pollInterval: 1000,
  /** @default true */
  sweep: true,
} as const;

/** Entries read per bucket per round trip. */
const READ_COUNT = 500;
/** Due entries reaped per bucket per script call (short scripts keep Redis responsive). */
const SWEEP_LIMIT = 500;
/** Closest two sweeps of the same listener may follow each other, in ms. */
const SWEEP_SPACING = 20;
const RETRY_DELAY = 200;
/** Due entries looked at per script call when rechecking after a reconnect. */
const RECHECK_COUNT = 1000;

type State = 'idle' | 'starting' | 'running' | 'stopping';

/**
 * Turns the store's journal into `issued` / `expired` / `revoked` events. Every
 * running lifecycle gets every event from its `start()`, in order per token, and
 * after a reconnect resumes from the last event it delivered: nothing is lost
 * or delivered twice while it runs.
 *
 * @example
 * ```ts
 * const lifecycle = new TokenLifecycle({ redis, prefix: 'tok:' });
 * lifecycle.on('expired', async (e) => closeSessionsOf(e.sub, e.jti));
 * lifecycle.on('revoked', (e) => audit.write({ type: e.type, reason: e.reason, jti: e.jti, sub: e.sub }));
 * lifecycle.on('error', (err) => log.warn(err));
 * await lifecycle.start();
 * // …
 * await lifecycle.stop();
 * ```
 */
export class TokenLifecycle extends AsyncEmitter<LifecycleEvents> {
  private readonly redis: RedisClient;
  private readonly keys: KeySchema;
  private readonly reader: JournalReader;
  private readonly pollInterval: number;
  private readonly sweeping: boolean;
  private readonly allBuckets: number[];
  private readonly db: number;
  private readonly journalPerBucket: number;
  private generation = 0;

  private state: State = 'idle';
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private subscriber: KeyeventSubscriber | undefined;
  private isSynced = false;
  private cursors: string[] = [];
  private pollTimer: NodeJS.Timeout | undefined;

  // Journal reading: one pump at a time; triggers while it runs ask for another round.
  private pumping: Promise<void> | undefined;
  private readAll = false;
  private readonly dirty = new Set<number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private failing = false;
  private delivering: Promise<void> = Promise.resolve();

  // Sweeping: the next deadline of each bucket in local ms (Infinity: none known).
  private nextDue: number[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;
  private sweepRunning: Promise<void> | undefined;
  private clockOffset = 0;

  // Keyevent-triggered reaps, batched per bucket and reason until the next tick.
  private reapQueue = new Map<string, { bucket: number; reason: string; jtis: Set<string> }>();
  private reapScheduled = false;

  constructor(options: TokenLifecycleOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
    this.redis = checkRedis(options.redis);
    const layout = checkLayout({ prefix: options.prefix, buckets: options.buckets, journalLength: options.journalLength });
    this.journalPerBucket = Math.ceil(layout.journalLength / layout.buckets);
    this.keys = new KeySchema(layout.prefix, layout.buckets);
    this.reader = new JournalReader(this.redis, this.keys);
    const pollInterval = options.pollInterval ?? lifecycleDefaults.pollInterval;
    if (!Number.isInteger(pollInterval) || pollInterval < 10) throw new ConfigError('pollInterval', 'a whole number of milliseconds >= 10');
    this.pollInterval = pollInterval;
    if (options.sweep !== undefined && typeof options.sweep !== 'boolean') throw new ConfigError('sweep', 'a boolean');
    this.sweeping = options.sweep ?? lifecycleDefaults.sweep;
    this.allBuckets = Array.from({ length: layout.buckets }, (_, b) => b);
    this.db = this.redis.isCluster ? 0 : ((this.redis as Redis).options.db ?? 0);
  }

  /** True between a successful `start()` and `stop()`. */
  get running(): boolean {
    return this.state === 'running';
  }

  /** True while subscribed and caught up with the journal (see the `sync` event). */
  get synced(): boolean {
    return this.isSynced;
  }

  private setSynced(value: boolean): void {
    if (value === this.isSynced) return;
    this.isSynced = value;
    this.emitSync('sync', value);
  }

  /**
   * Sets `notify-keyspace-events`, subscribes, takes the journal's current end as
   * the starting point and reaps what is already overdue. Resolves once subscribed
   * and caught up; rejects (and cleans up) if Redis refuses.
   */
  start(): Promise<void> {
    if (this.state === 'stopping') return Promise.reject(new Error('TokenLifecycle is stopping'));
    this.starting ??= this.doStart().catch(async (err) => {
      await this.stop();
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.state = 'starting';
    this.stopping = undefined;
    const generation = ++this.generation;
    await ensureFlags(this.redis);
    await this.checkEvictionPolicy();
    this.subscriber = new KeyeventSubscriber(this.redis, EVENTS.map((e) => channel(this.db, e)), {
      message: (event, key) => this.onKeyevent(event, key),
      lost: () => this.setSynced(false),
      resumed: () => this.recover(),
    });
    await this.subscriber.start();
    this.cursors = await this.reader.tails();
    this.nextDue = this.allBuckets.map(() => Infinity);
    this.state = 'running';
    if (this.sweeping) await this.sweep(this.allBuckets);
    this.requestRead();
    await this.pumping;
    if (generation !== this.generation || this.state !== 'running') return;
    this.pollTimer = setInterval(() => this.poll(), this.pollInterval);
  }

  /**
   * Stops taking events, waits for the event being handled, and closes the
   * subscriber connections. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopping';
      clearInterval(this.pollTimer);
      clearTimeout(this.sweepTimer);
      clearTimeout(this.retryTimer);
      this.sweepAt = Infinity;
      await this.delivering;
      this.subscriber?.stop();
      this.subscriber = undefined;
      this.setSynced(false);
      this.starting = undefined;
      this.state = 'idle';
    })();
    return this.stopping;
  }

  private recover(): void {
    if (this.state !== 'running') return;
    ensureFlags(this.redis).catch((err) => this.report(err));
    this.requestRead();
    if (this.sweeping) {
      this.requestSweep(this.allBuckets);
      this.recheck().catch((err) => this.report(err));
    }
  }

  /** Finds tokens deleted while notifications were missed (see recheck-3.lua). */
  private async recheck(): Promise<void> {
    await Promise.all(this.allBuckets.map(async (b) => {
      let cursor = '0';
      do {
        if (this.state !== 'running') return;
        [cursor] = (await scripts.recheck.run(this.redis, [this.keys.due(b), this.keys.claims(b), this.keys.log(b)],
          [this.keys.bases[b]!, this.journalPerBucket, cursor, RECHECK_COUNT])) as [string, number];
      } while (cursor !== '0');
    }));
  }

  private onKeyevent(event: string, key: string): void {
    if (this.state !== 'running') return;
    const parsed = this.keys.parse(key);
    if (!parsed) return;
    if (parsed.kind === 'log') {
      this.requestRead(parsed.bucket);
    } else if (event !== 'xadd') {
      this.queueReap(parsed.bucket, parsed.jti, event === 'evicted' ? 'evicted' : 'external');
    }
  }

  private poll(): void {
    this.requestRead();
    if (this.sweeping) this.requestSweep(this.allBuckets);
  }

  // ---- journal -> listeners -------------------------------------------------

  private requestRead(bucket?: number): void {
    if (bucket === undefined) this.readAll = true;
    else this.dirty.add(bucket);
    if (!this.pumping && this.state === 'running') this.pumping = this.pump(this.generation).finally(() => { this.pumping = undefined; });
  }

  /** Reads and delivers until no bucket has news. Never runs twice at once. */
  private async pump(generation: number): Promise<void> {
    const live = () => this.state === 'running' && generation === this.generation;
    while (live() && (this.readAll || this.dirty.size > 0)) {
      const buckets = this.readAll ? this.allBuckets : [...this.dirty];
      this.readAll = false;
      this.dirty.clear();
      let batches: Map<number, StreamEntry[]>;
      try {
        batches = await this.reader.read(buckets, this.cursors, READ_COUNT);
        this.failing = false;
      } catch (err) {
        for (const b of buckets) this.dirty.add(b);
        this.readFailed(err);
        return;
      }
      for (const [bucket, entries] of batches) {
        for (const [id, fields] of entries) {
          if (!live()) return;
          const done = this.deliver(bucket, id, fields);
          this.delivering = done;
          await done;
          this.cursors[bucket] = id;
        }
        if (entries.length === READ_COUNT) this.dirty.add(bucket);
      }
    }
    // Caught up, and notifications flowing: nothing can be missed from here on.
    if (live() && this.subscriber?.connected) this.setSynced(true);
  }

  private readFailed(err: unknown): void {
    this.setSynced(false);
    if (!this.failing) {
      this.failing = true;
      this.report(new StoreUnavailableError(`cannot read the journal: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.requestRead(), RETRY_DELAY);
  }

  private async deliver(bucket: number, id: string, fields: string[]): Promise<void> {
    const f = fieldsOf(fields);
    const type = f.type as TokenEventType;
    let claims = {} as TokenClaims;
    try {
      if (f.claims) claims = JSON.parse(f.claims) as TokenClaims;
    } catch {
      // A journal entry with unreadable claims is still an event worth reporting.
    }
    const event: TokenEvent = { id: `${bucket}:${id}`, type, jti: f.jti ?? '', sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at: Number(f.at) };
    if (f.reason) event.reason = f.reason as RevokeReason;
    if (type === 'issued' && this.sweeping && typeof claims.exp === 'number') this.expectDeadline(bucket, claims.exp * 1000);
    try {
      await this.emitAsync(type, event);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (!this.emitSync('error', error)) process.emitWarning(error, { code: 'REDIS_TOKEN_LIFECYCLE' });
  }

  private async checkEvictionPolicy(): Promise<void> {
    try {
      const [, policy] = (await (masters(this.redis)[0]!).config('GET', 'maxmemory-policy')) as string[];
      if (policy?.startsWith('allkeys-')) {
        this.emitSync('warning', `maxmemory-policy is ${policy}: Redis may evict token indexes and the journal, losing events. Use volatile-lru (or noeviction).`);
      }
    } catch {
      // CONFIG refused: ensureFlags already said what matters.
    }
  }

  // ---- reaping ---------------------------------------------------------------

  private queueReap(bucket: number, jti: string, reason: string): void {
    const id = `${bucket}:${reason}`;
    let entry = this.reapQueue.get(id);
    if (!entry) this.reapQueue.set(id, (entry = { bucket, reason, jtis: new Set() }));
    entry.jtis.add(jti);
    if (this.reapScheduled) return;
    this.reapScheduled = true;
    setImmediate(() => {
      this.reapScheduled = false;
      const batch = [...this.reapQueue.values()];
      this.reapQueue.clear();
      for (const { bucket: b, reason: r, jtis } of batch) {
        scripts.reap.run(this.redis, [this.keys.due(b), this.keys.claims(b), this.keys.log(b)],
          [this.keys.bases[b]!, this.journalPerBucket, r, ...jtis]).catch((err) => {
          // The sweeper reaps these at their deadline anyway; only the reason may be lost.
          this.report(err);
        });
      }
    });
  }

  private expectDeadline(bucket: number, deadline: number): void {
    const local = deadline - this.clockOffset;
    if (local < this.nextDue[bucket]!) {
      this.nextDue[bucket] = local;
      this.scheduleSweep();
    }
  }

  private scheduleSweep(): void {
    if (this.state !== 'running') return;
    const at = Math.min(...this.nextDue);
    if (!Number.isFinite(at) || at >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(() => {
      this.sweepAt = Infinity;
      const now = Date.now();
      const due = this.allBuckets.filter((b) => this.nextDue[b]! <= now + 1);
      if (due.length > 0) this.requestSweep(due);
      else this.scheduleSweep();
    }, Math.max(SWEEP_SPACING, at - Date.now()));
  }

  private requestSweep(buckets: number[]): void {
    if (this.state !== 'running' || buckets.length === 0) return;
    if (this.sweepRunning) {
      for (const b of buckets) this.nextDue[b] = Math.min(this.nextDue[b]!, Date.now());
      return;
    }
    this.sweepRunning = this.sweep(buckets).finally(() => {
      this.sweepRunning = undefined;
      this.scheduleSweep();
    });
  }

  private async sweep(buckets: number[]): Promise<void> {
    await Promise.all(buckets.map(async (b) => {
      const expected = this.nextDue[b];
      try {
        const before = Date.now();
        const [, nextIn, more, now] = (await scripts.sweep.run(this.redis,
          [this.keys.due(b), this.keys.claims(b), this.keys.log(b)],
          [this.keys.bases[b]!, this.journalPerBucket, SWEEP_LIMIT])) as number[];
        const after = Date.now();
        this.clockOffset = now! - (before + after) / 2;
        const next = more ? after : nextIn! < 0 ? Infinity : after + nextIn!;
        // A deadline learned while this sweep ran (an `issued` event) must survive it.
        this.nextDue[b] = this.nextDue[b] === expected ? next : Math.min(this.nextDue[b]!, next);
      } catch (err) {
        this.nextDue[b] = Date.now() + RETRY_DELAY;
        if (!this.failing) this.report(err);
      }
    }));
  }
}
