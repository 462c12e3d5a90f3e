// TokenLifecycle: delivers `issued` / `expired` / `revoked` from the journal the
// store's scripts write. Keyevents (expired, del, evicted on token keys; xadd on the
// journal) are only triggers: a sweeper reaps what is due by Redis time, a slow
// poll covers lost notifications, and the feed (a cursor per bucket, or a consumer
// group) means a reconnect resumes exactly where it left off.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AsyncEmitter } from './emitter.js';
import { ConfigError, DeadLetterError, RedisTokenError, StoreUnavailableError } from '../errors.js';
import { BroadcastFeed, GroupFeed, type Feed, type StreamEntry } from './journal.js';
import { compareIds, fieldsOf, streamInfo } from '../redis/streams.js';
import { channel, ensureFlags, keyspaceChannel, masters, missingFlagsOn, type Keyevent } from './keyevents.js';
import { secondOf, type KeySchema } from '../redis/keys.js';
import { checkLayout, checkRedis, type Retention } from '../redis/layout.js';
import { scripts, type RedisClient } from '../redis/script.js';
import type { RevokeReason, TokenClaims, TokenEvent, TokenEventType } from '../types.js';
import { KeyeventSubscriber } from './subscriber.js';
import { Sweeper } from './sweeper.js';

/** A journal entry as a lifecycle delivers it (also used by the CLI's replay). */
export function journalEvent(bucket: number, id: string, fields: string[]): TokenEvent {
  const f = fieldsOf(fields);
  let claims = {} as TokenClaims;
  try {
    if (f.claims) claims = JSON.parse(f.claims) as TokenClaims;
  } catch {
    // A journal entry with unreadable claims is still an event worth reporting.
  }
  const event: TokenEvent = { id: `${bucket}:${id}`, type: f.type as TokenEventType, jti: f.jti ?? '', sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at: Number(f.at) };
  if (f.reason) event.reason = f.reason as RevokeReason;
  return event;
}

/** Events may have been missed: which, when it is known. */
export interface GapEvent {
  /** `trimmed`: the journal dropped entries before they were read; `reconnect`: `keyevents` delivery was disconnected. */
  reason: 'trimmed' | 'reconnect';
  /** For `trimmed`: the bucket whose journal dropped entries. */
  bucket?: number;
  /** For `trimmed`: the lost events lie after this event id (the last one delivered; `<bucket>:0-0` for none)… */
  after?: string;
  /** …and before this one, the oldest still in the journal (delivered next). */
  before?: string;
  /** For `trimmed`: how many events were lost. */
  lost?: number;
}

/**
 * Events of {@link TokenLifecycle}, by name. Listeners may be async: the next event waits
 * for them. Only these names exist: `lifecycle.on('expird', …)` does not compile.
 */
export interface LifecycleEvents {
  /** A store issued a token. */
  issued: TokenEvent;
  /** A token reached its `exp` (reported within tens of ms by the sweeper). */
  expired: TokenEvent;
  /** A token stopped being live before its `exp`; `reason` says how. */
  revoked: TokenEvent;
  /** A listener threw, an event was dead-lettered (`DeadLetterError`), or Redis could not be read (retried). */
  error: Error;
  /** Events were lost or may have been missed; see {@link GapEvent}. */
  gap: GapEvent;
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
  /** Must match the store's: the journal retention the sweeper trims to. @default { entries: 100000 } */
  retention?: Retention;
  /**
   * `journal` (default): events from the store's journal, none lost while running.
   * `keyevents`: callbacks straight from notifications, for keys `<prefix><id>` written by
   * any client (e.g. `SETEX <prefix><id> 60 <value>`); at most once, `gap` after each reconnect.
   * @default 'journal'
   */
  delivery?: 'journal' | 'keyevents';
  /** Consumer group: each event goes to one member of the group, acknowledged when its handlers resolve. */
  group?: string;
  /** This member's name in the group. Keep it stable across restarts to get back its unacknowledged events at once. @default `<hostname>-<pid>-<random>` */
  consumer?: string;
  /** Group: an event not acknowledged for this long (handler threw, process died) is redelivered to a live member. @default 5000 */
  claimAfterMs?: number;
  /** Group: after this many deliveries an event goes to the dead-letter stream and `error`. @default 5 */
  maxDeliveries?: number;
  /** Safety-net poll of the journal and the due index, in ms. @default 1000 */
  pollInterval?: number;
  /** Reap due tokens (the sweeper). Turn off only if another process sweeps. @default true */
  sweep?: boolean;
  /** How long `stop()` waits for the event being handled, in ms. @default 10000 */
  stopTimeout?: number;
  /**
   * How long `start()` may take, in ms, unless its own `timeout` says otherwise. When Redis
   * does not answer in time (down, unreachable, paused), `start()` stops the lifecycle,
   * emits `error` and rejects with `StoreUnavailableError`. @default 10000
   */
  startTimeout?: number;
  /**
   * Merge the letters it needs into `notify-keyspace-events` with `CONFIG SET` (and, where
   * CONFIG is refused, write probe keys to check they arrive). `false`: never write a setting
   * or a probe; only read the setting, and where letters are missing (or CONFIG is refused)
   * emit a `warning` and rely on the poll (`pollInterval`) instead of notifications.
   * With `sweep: false` as well, a journal lifecycle writes nothing to Redis. @default true
   */
  configure?: boolean;
}

/** Options of {@link TokenLifecycle.start}. */
export interface StartOptions {
  /** Give up after this many ms (see `startTimeout`). @default the lifecycle's `startTimeout` */
  timeout?: number;
  /** Give up when this signal aborts: `start()` stops the lifecycle and rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Defaults of {@link TokenLifecycleOptions}. */
export const lifecycleDefaults = {
  /** @default 'journal' */
  delivery: 'journal',
  /** @default 5000 */
  claimAfterMs: 5000,
  /** @default 5 */
  maxDeliveries: 5,
  /** @default 1000 */
  pollInterval: 1000,
  /** @default true */
  sweep: true,
  /** @default 10000 */
  stopTimeout: 10_000,
  /** @default 10000 */
  startTimeout: 10_000,
  /** @default true */
  configure: true,
} as const;

/** Entries read per bucket per round trip. */
const READ_COUNT = 500;
const RETRY_DELAY = 200;
/**
 * Letters: K keyspace channels (xadd on our journal keys), E keyevent channels, g del,
 * x expired, e evicted, t xadd; `$` set for keyevents delivery.
 */
const JOURNAL_FLAGS = 'KEgxet';
/** A journal lifecycle that does not sweep only needs to hear its journal keys' xadd. */
const READER_FLAGS = 'Kt';
const KEYEVENT_FLAGS = 'E$gxe';
/** Keyevents on token keys. The journal's xadd comes on each journal key's keyspace channel,
 * so a lifecycle hears its own prefix's writes, not every stream write of the database. */
const JOURNAL_EVENTS: readonly Keyevent[] = ['expired', 'del', 'evicted'];
const KEYEVENT_EVENTS: readonly Keyevent[] = ['set', ...JOURNAL_EVENTS];
/** How long the probe waits for its own notifications where CONFIG is refused. */
const PROBE_TIMEOUT = 2000;

type State = 'idle' | 'starting' | 'running' | 'stopping';

/** `start()` was overtaken by `stop()` (or by a newer start after it). */
class StartAborted extends Error {
  override name = 'AbortError';
}

function positiveInt(option: string, value: unknown, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min) throw new ConfigError(option, `a whole number >= ${min}`);
  return v as number;
}

/**
 * Turns the store's journal into `issued` / `expired` / `revoked` events. Every
 * running lifecycle gets every event from its `start()`, in order per token, and
 * after a reconnect resumes from the last event it delivered: nothing is lost
 * or delivered twice while it runs. With `group`, each event goes to one member
 * of the group instead, and is redelivered if that member fails.
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
  private readonly retention: string;
  private readonly delivery: 'journal' | 'keyevents';
  private readonly feed: Feed | undefined;
  private readonly pollInterval: number;
  private readonly sweeping: boolean;
  private readonly stopTimeout: number;
  private readonly startTimeout: number;
  private readonly configure: boolean;
  /** The notify-keyspace-events letters this lifecycle needs. */
  private readonly letters: string;
  private readonly claimAfterMs: number;
  private readonly allBuckets: number[];
  private readonly db: number;
  private readonly groupName: string | undefined;
  private generation = 0;

  private state: State = 'idle';
  private starting: Promise<void> | undefined;
  /** Ends a start() under way at once (stop() calls it): its step may wait on Redis for long. */
  private abandonStart: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private subscriber: KeyeventSubscriber | undefined;
  private sweeper: Sweeper | undefined;
  private isSynced = false;
  private configRefused = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private probes = new Map<string, () => void>();

  // Journal reading: one pump at a time; triggers while it runs ask for another round.
  private pumping: Promise<void> | undefined;
  private readAll = false;
  private readonly dirty = new Set<number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private failing = false;
  private delivering: Promise<void> = Promise.resolve();
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly gapsReported: string[] = [];
  private keyeventSeq = 0;

  constructor(options: TokenLifecycleOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
    this.redis = checkRedis(options.redis);
    ({ keys: this.keys, retention: this.retention } = checkLayout(options));
    this.allBuckets = Array.from({ length: this.keys.buckets }, (_, b) => b);
    this.db = this.redis.isCluster ? 0 : ((this.redis as Redis).options.db ?? 0);
    this.pollInterval = positiveInt('pollInterval', options.pollInterval, lifecycleDefaults.pollInterval, 10);
    this.stopTimeout = positiveInt('stopTimeout', options.stopTimeout, lifecycleDefaults.stopTimeout, 0);
    this.startTimeout = positiveInt('startTimeout', options.startTimeout, lifecycleDefaults.startTimeout);
    if (options.configure !== undefined && typeof options.configure !== 'boolean') throw new ConfigError('configure', 'a boolean');
    this.configure = options.configure ?? lifecycleDefaults.configure;
    this.claimAfterMs = positiveInt('claimAfterMs', options.claimAfterMs, lifecycleDefaults.claimAfterMs, 100);
    const maxDeliveries = positiveInt('maxDeliveries', options.maxDeliveries, lifecycleDefaults.maxDeliveries);
    if (options.sweep !== undefined && typeof options.sweep !== 'boolean') throw new ConfigError('sweep', 'a boolean');
    this.sweeping = options.sweep ?? lifecycleDefaults.sweep;
    const delivery = options.delivery ?? lifecycleDefaults.delivery;
    if (delivery !== 'journal' && delivery !== 'keyevents') throw new ConfigError('delivery', "'journal' or 'keyevents'");
    this.delivery = delivery;
    this.letters = delivery === 'keyevents' ? KEYEVENT_FLAGS : this.sweeping ? JOURNAL_FLAGS : READER_FLAGS;
    if (options.group !== undefined && (typeof options.group !== 'string' || !/^[\w.:-]{1,64}$/.test(options.group))) {
      throw new ConfigError('group', 'a name of 1 to 64 letters, digits, or . _ : -');
    }
    if (options.consumer !== undefined && (typeof options.consumer !== 'string' || options.consumer.length === 0 || options.consumer.length > 128)) {
      throw new ConfigError('consumer', 'a non-empty string of at most 128 characters');
    }
    if (options.group !== undefined && delivery === 'keyevents') throw new ConfigError('group', "no group with delivery 'keyevents' (notifications cannot be shared out)");
    this.groupName = options.group;
    if (delivery === 'keyevents') return;
    this.feed = options.group === undefined
      ? new BroadcastFeed(this.redis, this.keys)
      : new GroupFeed(this.redis, this.keys, {
        group: options.group,
        consumer: options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
        claimAfterMs: this.claimAfterMs,
        maxDeliveries,
        onDeadLetter: (bucket, id, deliveries, fields) => this.report(new DeadLetterError(journalEvent(bucket, id, fields), deliveries)),
      });
  }

  /** The key prefix this lifecycle reads. */
  get prefix(): string {
    return this.keys.prefix;
  }

  /** The bucket count of its prefix. */
  get buckets(): number {
    return this.keys.buckets;
  }

  /** `journal` or `keyevents`. */
  get deliveryMode(): 'journal' | 'keyevents' {
    return this.delivery;
  }

  /** The consumer group, when there is one. */
  get group(): string | undefined {
    return this.groupName;
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
   * Sets `notify-keyspace-events` (or, where CONFIG is refused, checks that the
   * notifications arrive), subscribes, sets the starting point and reaps what is
   * already overdue. Resolves once subscribed and caught up.
   *
   * It settles within `timeout` (the `startTimeout` option, 10 s by default): when Redis
   * does not answer in time, or refuses, it stops the lifecycle, emits `error`, and rejects
   * with `StoreUnavailableError` (a `ConfigError` when a setting is wrong). When `signal`
   * aborts it stops the lifecycle and rejects with `signal.reason`, without `error`. When
   * `stop()` is called meanwhile it rejects with an `AbortError`. A call while a start is
   * under way returns that start's promise (its options apply).
   *
   * @example
   * ```ts
   * redis.on('error', (err) => log.warn(err)); // ioredis reports its reconnects here
   * lifecycle.on('error', (err) => log.warn(err));
   * await lifecycle.start({ timeout: 5000 }); // rejects with ERR_STORE_UNAVAILABLE if Redis is down
   * ```
   */
  start(options: StartOptions = {}): Promise<void> {
    if (this.state === 'stopping') return Promise.reject(new Error('TokenLifecycle is stopping'));
    if (this.starting) return this.starting;
    if (typeof options !== 'object' || options === null) return Promise.reject(new ConfigError('start(options)', 'an object { timeout?, signal? }'));
    let timeout: number;
    try {
      timeout = positiveInt('timeout', options.timeout, this.startTimeout);
    } catch (err) {
      return Promise.reject(err);
    }
    const { signal } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) return Promise.reject(new ConfigError('signal', 'an AbortSignal'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.starting = this.startWithin(timeout, signal);
    return this.starting;
  }

  private async startWithin(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    const started = this.doStart();
    const generation = this.generation;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let timedOut = false;
    const interrupted = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new StoreUnavailableError(`TokenLifecycle.start() timed out after ${timeout} ms: Redis did not answer (connection ${this.redis.status})`));
      }, timeout);
      if (signal) {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.abandonStart = () => reject(new StartAborted('TokenLifecycle.stop() was called before start() completed'));
    });
    try {
      await Promise.race([started, interrupted]);
    } catch (err) {
      // Left behind, it settles when Redis answers (or never); stop() makes it a no-op.
      started.catch(() => {});
      const aborted = !timedOut && signal?.aborted === true && err === signal.reason;
      if (err instanceof StartAborted) throw err;
      if (!timedOut && !aborted && generation !== this.generation) throw new StartAborted('TokenLifecycle.stop() was called before start() completed', { cause: err });
      const error = aborted || timedOut || err instanceof RedisTokenError ? err
        : new StoreUnavailableError(`TokenLifecycle.start() failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      await this.stop();
      // The rejection reaches the caller: no process warning when nobody listens for `error`.
      if (!aborted) this.emitSync('error', error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      this.abandonStart = undefined;
    }
  }

  private async doStart(): Promise<void> {
    this.state = 'starting';
    this.stopping = undefined;
    const generation = ++this.generation;
    // After every wait: a stop() (or a timed-out start) meanwhile means give up, leaving nothing behind.
    const check = () => {
      if (generation !== this.generation) throw new StartAborted('TokenLifecycle was stopped while starting');
    };
    const journal = this.delivery === 'journal';
    const letters = this.letters;
    if (this.configure) {
      try {
        await ensureFlags(this.redis, letters);
        this.configRefused = false;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        this.configRefused = true; // managed Redis: the probe below tells whether the letters are preset
      }
    } else {
      // Read-only: say what is missing, and let the poll deliver.
      const missing = await missingFlagsOn(this.redis, letters);
      if (missing === undefined || missing) {
        this.emitSync('warning', `notify-keyspace-events ${missing === undefined ? 'cannot be read (CONFIG is refused)' : `lacks "${missing}"`} and configure is false: events come with the poll, every ${this.pollInterval} ms, rather than at once`);
      }
    }
    check();
    await this.checkEvictionPolicy();
    check();
    const channels = (journal ? (this.sweeping ? JOURNAL_EVENTS : []) : KEYEVENT_EVENTS).map((e) => channel(this.db, e));
    if (journal) {
      for (let b = 0; b < this.keys.buckets; b++) channels.push(keyspaceChannel(this.db, this.keys.log(b)), keyspaceChannel(this.db, this.probeKey(b)));
    }
    this.subscriber = new KeyeventSubscriber(this.redis, channels, {
      message: (event, key) => this.onKeyevent(event, key),
      lost: () => this.setSynced(false),
      resumed: () => this.recover(),
    }, { configure: this.configure });
    await this.subscriber.start();
    check();
    if (this.configRefused) await this.probe(letters);
    check();
    this.state = 'running';
    if (!journal) {
      this.setSynced(true);
      return;
    }
    await this.feed!.init();
    check();
    await this.checkGaps();
    check();
    if (this.sweeping) {
      this.sweeper = new Sweeper(this.redis, this.keys, this.retention, (err) => this.reportRedis(err));
      await this.sweeper.start();
      check();
      // Token keys deleted while no lifecycle ran are still revocations if their deadline
      // has not passed: one pass over the due indexes finds them (in the background).
      this.sweeper.recheck().catch((err) => this.reportRedis(err));
    }
    this.requestRead();
    await this.pumping;
    check();
    if (this.state !== 'running') return;
    this.pollTimer = setInterval(() => this.poll(), this.pollInterval);
  }

  /**
   * Stops taking events, waits (up to `stopTimeout`) for the event being handled,
   * and closes the subscriber connections. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopping';
      this.generation++; // a start() under way gives up at its next step…
      this.abandonStart?.(); // …and its promise rejects now
      clearInterval(this.pollTimer);
      clearTimeout(this.retryTimer);
      this.sweeper?.stop();
      this.sweeper = undefined;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.delivering, new Promise((resolve) => { timer = setTimeout(resolve, this.stopTimeout); })]);
      clearTimeout(timer);
      clearInterval(this.keepAlive);
      this.subscriber?.stop();
      this.subscriber = undefined;
      this.setSynced(false);
      this.starting = undefined;
      this.state = 'idle';
    })();
    return this.stopping;
  }

  /** Same as {@link stop}: safe to call more than once. */
  close(): Promise<void> {
    return this.stop();
  }

  /** `await using lifecycle = new TokenLifecycle(…)` stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  private recover(): void {
    if (this.state !== 'running') return;
    if (this.configure && !this.configRefused) ensureFlags(this.redis, this.letters).catch((err) => this.report(err));
    if (this.delivery === 'keyevents') {
      this.emitSync('gap', { reason: 'reconnect' });
      this.setSynced(true);
      return;
    }
    this.feed?.outage();
    this.requestRead();
    this.checkGaps().catch((err) => this.reportRedis(err));
    if (this.sweeper) {
      this.sweeper.sweepAll();
      this.sweeper.recheck().catch((err) => this.reportRedis(err));
    }
  }

  private poll(): void {
    this.requestRead();
    this.sweeper?.sweepAll();
    this.checkGaps().catch((err) => this.reportRedis(err));
  }

  private onKeyevent(event: string, key: string): void {
    const probe = this.probes.get(`${event} ${key}`);
    if (probe) return probe();
    if (this.state !== 'running') return;
    if (this.delivery === 'keyevents') return this.onPlainKeyevent(event, key);
    const parsed = this.keys.parse(key);
    if (!parsed) return;
    if (parsed.kind === 'log') {
      if (event === 'xadd') this.requestRead(parsed.bucket);
    } else if (event !== 'xadd') {
      this.sweeper?.reap(parsed.bucket, parsed.jti, event === 'evicted' ? 'evicted' : 'external', event !== 'expired');
    }
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
    const feed = this.feed!;
    while (live() && (this.readAll || this.dirty.size > 0)) {
      const buckets = this.readAll ? this.allBuckets : [...this.dirty];
      this.readAll = false;
      this.dirty.clear();
      let batches: Map<number, StreamEntry[]>;
      const readAt = Date.now();
      try {
        batches = await feed.read(buckets, READ_COUNT);
        if (this.failing) feed.outage();
        this.failing = false;
      } catch (err) {
        for (const b of buckets) this.dirty.add(b);
        this.readFailed(err);
        return;
      }
      for (const [bucket, entries] of batches) {
        for (const [id, fields] of entries) {
          if (!live()) return;
          const done = this.deliver(feed, bucket, id, fields, readAt);
          this.delivering = done;
          await done;
        }
        if (entries.length >= READ_COUNT) this.dirty.add(bucket);
      }
    }
    // Caught up, and notifications flowing: nothing can be missed from here on.
    if (live() && this.subscriber?.connected) this.setSynced(true);
  }

  private readFailed(err: unknown): void {
    this.setSynced(false);
    this.reportRedis(err);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.requestRead(), RETRY_DELAY);
  }


  private async deliver(feed: Feed, bucket: number, id: string, fields: string[], readAt: number): Promise<void> {
    // A group member's entry that waited in its batch may have been taken over meanwhile:
    // then the member that took it delivers it, not this one. (Unknown: left pending, redelivered.)
    if (!(await feed.mine(bucket, id, readAt).catch((err) => { this.reportRedis(err); return false; }))) return;
    const event = journalEvent(bucket, id, fields);
    if (event.type === 'issued' && typeof event.claims.exp === 'number') this.sweeper?.expect(bucket, event.claims.exp * 1000);
    // A long handler keeps its group entry: no other member takes it over meanwhile.
    // Cleared by stop() too, so a handler that never settles does not hold its entry
    // (or the process) forever.
    const keepAlive = this.groupName === undefined ? undefined
      : setInterval(() => { feed.busy(bucket, id).catch(() => {}); }, Math.max(50, Math.floor(this.claimAfterMs / 3))).unref();
    this.keepAlive = keepAlive;
    let ok = true;
    try {
      await this.emitAsync(event.type, event);
    } catch (err) {
      ok = false;
      this.report(err);
    } finally {
      clearInterval(keepAlive);
    }
    try {
      await (ok ? feed.handled(bucket, id) : feed.failed(bucket, id));
    } catch (err) {
      // An unacknowledged group entry is delivered again after claimAfterMs.
      this.reportRedis(err);
    }
  }

  /**
   * Reports journal entries trimmed before this reader got to them, once per range:
   * when the oldest retained entry is past the reader's position and the stream has
   * had more entries after that position than it still holds.
   */
  private async checkGaps(): Promise<void> {
    if (!this.feed || this.state !== 'running') return;
    const [progress, infos] = await Promise.all([
      this.feed.progress(),
      Promise.all(this.allBuckets.map((b) => streamInfo(this.redis, this.keys.log(b)))),
    ]);
    for (const b of this.allBuckets) {
      const info = infos[b];
      const { position, read } = progress[b]!;
      if (!info || read === undefined) continue;
      const first = String(info['recorded-first-entry-id'] ?? '0-0');
      const lost = Number(info['entries-added']) - read - Number(info.length);
      if (lost <= 0 || compareIds(first, position) <= 0 || this.gapsReported[b] === first) continue;
      this.gapsReported[b] = first;
      this.emitSync('gap', { reason: 'trimmed', bucket: b, after: `${b}:${position}`, before: `${b}:${first}`, lost });
    }
  }

  // ---- delivery: 'keyevents' --------------------------------------------------

  /** The plain recipe: a callback per notification, at most once. Values are read on `set` only. */
  private onPlainKeyevent(event: string, key: string): void {
    if (!key.startsWith(this.keys.prefix)) return;
    // A store's own keys (`<prefix>{…}`): only its token keys are tokens.
    const ours = key.startsWith('{', this.keys.prefix.length) ? this.keys.parse(key) : undefined;
    if (key.startsWith('{', this.keys.prefix.length) && ours?.kind !== 'token') return;
    const jti = ours?.kind === 'token' ? ours.jti : key.slice(this.keys.prefix.length);
    const type: TokenEventType = event === 'set' ? 'issued' : event === 'expired' ? 'expired' : 'revoked';
    const id = `ke:${Date.now()}-${++this.keyeventSeq}`;
    const second = ours ? secondOf(jti) : undefined;
    const value: Promise<string | null> = event !== 'set' ? Promise.resolve(null)
      : !ours ? this.redis.get(key)
      : second === undefined ? Promise.resolve(null)
      : scripts.claims.run(this.redis, [this.keys.window(ours.bucket, second)], [this.keys.bases[ours.bucket]!, jti]) as Promise<string | null>;
    // Chained: events are delivered one at a time and in order, as in journal delivery.
    this.delivering = this.delivering.then(async () => {
      let claims = {} as TokenClaims;
      try {
        const parsed: unknown = JSON.parse((await value) ?? '{}');
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) claims = parsed as TokenClaims;
      } catch {
        // Not JSON: a plain value says nothing about claims.
      }
      const e: TokenEvent = { id, type, jti, sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at: Date.now() };
      if (type === 'revoked') e.reason = event === 'evicted' ? 'evicted' : 'external';
      try {
        await this.emitAsync(type, e);
      } catch (err) {
        this.report(err);
      }
    });
  }

  // ---- Redis settings ---------------------------------------------------------

  /**
   * Where CONFIG is refused: write probe keys under the prefix (one per bucket, so
   * every master that owns a bucket is covered) and wait for their notifications.
   */
  private async probe(letters: string): Promise<void> {
    const wanted: [string, string][] = [];
    // Fixed names: their keyspace channels are subscribed with the journal keys'.
    const keys = this.keys.bases.map((_, b) => this.probeKey(b));
    for (const key of keys) {
      wanted.push(['xadd', key]);
      // A lifecycle that does not sweep needs (and subscribes to) the journal's xadd only.
      if (letters.includes('g')) wanted.push(['del', key]);
      if (letters.includes('x')) wanted.push(['expired', `${key}:x`]);
      if (letters.includes('$')) wanted.push(['set', `${key}:x`]);
    }
    const seen = new Set<string>();
    let missing = new Set<string>(wanted.map(([event]) => event));
    const all = new Promise<void>((resolve) => {
      for (const [event, key] of wanted) {
        this.probes.set(`${event} ${key}`, () => {
          seen.add(event);
          this.probes.delete(`${event} ${key}`);
          if (this.probes.size === 0) resolve();
        });
      }
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.all(keys.map(async (key) => {
        await this.redis.xadd(key, '*', 'probe', '1');
        await this.redis.del(key);
        await this.redis.set(`${key}:x`, '1', 'PX', 1);
        await new Promise((r) => setTimeout(r, 5));
        await this.redis.exists(`${key}:x`); // makes Redis expire it now
      }));
      await Promise.race([all, new Promise((resolve) => { timer = setTimeout(resolve, PROBE_TIMEOUT); })]);
      missing = new Set([...this.probes.keys()].map((k) => k.split(' ')[0]!));
    } finally {
      clearTimeout(timer);
      this.probes.clear();
    }
    if (missing.size > 0) {
      const letter: Record<string, string> = { xadd: letters.includes('K') ? 'Kt' : 't', del: 'g', expired: 'x', set: '$' };
      const lacking = seen.size === 0 ? letters : [...missing].map((e) => letter[e]).join('');
      throw new ConfigError('notify-keyspace-events',
        `the letters "${letters}" on every master (missing: "${lacking}"): CONFIG is refused here and the probe under "${this.keys.prefix}" did not receive those notifications. Set them in redis.conf or your provider's console, e.g. notify-keyspace-events ${letters}`);
    }
  }

  /** The key the probe writes in bucket `b` (never a token key or a journal). */
  private probeKey(b: number): string {
    return `${this.keys.bases[b]}probe`;
  }

  private async checkEvictionPolicy(): Promise<void> {
    try {
      const [, policy] = (await masters(this.redis)[0]!.config('GET', 'maxmemory-policy')) as string[];
      if (policy?.startsWith('allkeys-')) {
        this.emitSync('warning', `maxmemory-policy is ${policy}: Redis may evict token indexes and the journal, losing events. Use volatile-lru (or noeviction).`);
      }
    } catch {
      // CONFIG refused: the policy cannot be read; the README says which to choose.
    }
  }

  // ---- errors -----------------------------------------------------------------

  private report(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (!this.emitSync('error', error)) process.emitWarning(error, { code: 'REDIS_TOKEN_LIFECYCLE' });
  }

  /** Redis failures are reported once per outage, not once per retry. */
  private reportRedis(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.report(new StoreUnavailableError(`Redis is unavailable to the lifecycle: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
  }
}
