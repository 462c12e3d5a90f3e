// TokenLifecycle: delivers `issued` / `expired` / `revoked` from the journal the store's scripts
// write. Keyevents (expired, del, evicted on token keys) and the journal's wake channel are only triggers:
// a sweeper reaps what is due by Redis time, a slow poll covers lost notifications, and the feed
// (a cursor per bucket, or a consumer group) means a reconnect resumes where it left off.
import type { Redis } from 'ioredis';
import { DeadLetterError, RedisTokenError, StoreUnavailableError } from '../errors.js';
import type { KeySchema } from '../redis/keys.js';
import type { RedisClient } from '../redis/script.js';
import type { TokenEvent } from '../types.js';
import { AsyncEmitter } from './emitter.js';
import { journalEvent } from './event.js';
import { feedFor, type Feed } from './journal.js';
import { JournalReader, readers } from './journal-reader.js';
import { JOURNAL_EVENTS, JOURNAL_FLAGS, READER_FLAGS, channel, ensureFlags } from './keyevents.js';
import { KEYEVENT_EVENTS, KEYEVENT_FLAGS, PlainKeyevents, prepareNotifications, probeKey, probeNotifications } from './keyevents-mode.js';
import { lifecycleSettings, startSettings, type GapEvent, type LifecycleEvents, type StartOptions, type TokenLifecycleOptions } from './options.js';
import { StartAborted, settle, until } from './settle.js';
import { KeyeventSubscriber } from './subscriber.js';
import { Sweeper } from './sweeper.js';
import { LifecycleMetrics, metricsEnabled } from '../metrics/metrics.js';
export { journalEvent } from './event.js';
export { lifecycleDefaults, type GapEvent, type LifecycleEvents, type StartOptions, type TokenLifecycleOptions } from './options.js';

type State = 'idle' | 'starting' | 'running' | 'stopping';

/**
 * Turns the store's journal into `issued` / `expired` / `revoked` events. Every
 * running lifecycle gets every event from its `start()`, in order per token, and
 * after a reconnect resumes from the last event it delivered: nothing is lost
 * or delivered twice while it runs. With `group`, each event goes to one member
 * of the group instead, and is redelivered if that member fails. See docs/lifecycle.md
 * and, for what is guaranteed, docs/guarantees.md.
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
  /** A Redis failure was reported, and Redis has not answered since. */
  private failing = false;
  private reader: JournalReader | undefined;
  private readonly plain: PlainKeyevents;
  private readonly metrics: LifecycleMetrics;

  constructor(options: TokenLifecycleOptions) {
    super();
    const o = lifecycleSettings(options);
    ({ redis: this.redis, keys: this.keys, retention: this.retention, pollInterval: this.pollInterval, stopTimeout: this.stopTimeout,
      startTimeout: this.startTimeout, configure: this.configure, claimAfterMs: this.claimAfterMs, sweep: this.sweeping,
      delivery: this.delivery, group: this.groupName } = o);
    this.db = this.redis.isCluster ? 0 : ((this.redis as Redis).options.db ?? 0);
    this.letters = o.delivery === 'keyevents' ? KEYEVENT_FLAGS : o.sweep ? JOURNAL_FLAGS : READER_FLAGS;
    this.metrics = new LifecycleMetrics(this.keys.prefix, o.group);
    this.plain = new PlainKeyevents(this.redis, this.keys, (e) => this.deliver(e), (err) => this.report(err));
    if (o.delivery === 'keyevents') return;
    this.feed = feedFor(this.redis, this.keys, o, (bucket, id, deliveries, fields) => this.report(new DeadLetterError(journalEvent(bucket, id, fields, this.reader?.lookup), deliveries)));
    this.reader = new JournalReader(this.feed, this.redis, this.keys, {
      generation: () => this.generation,
      running: () => this.state === 'running',
      subscribed: () => this.subscriber?.connected === true,
      setSynced: (value) => this.setSynced(value),
      emit: (event) => this.deliver(event),
      gap: (event) => this.gap(event),
      report: (err) => this.report(err),
      reportRedis: (err) => this.reportRedis(err),
      answered: () => {
        const failed = this.failing;
        this.failing = false;
        return failed;
      },
      expect: (bucket, deadline) => this.sweeper?.expect(bucket, deadline),
      ended: (jti) => this.sweeper?.journaled(jti),
      measuring: metricsEnabled,
      stats: (length, pending, deadLetters) => Object.assign(this.metrics, { length, pending, deadLetters }),
    }, this.groupName === undefined ? undefined : this.claimAfterMs);
    if (this.groupName === undefined) readers.set(this, this.reader);
  }

  /** The key prefix this lifecycle reads. */
  get prefix(): string { return this.keys.prefix; }

  /** The bucket count of its prefix. */
  get buckets(): number { return this.keys.buckets; }

  /** `journal` or `keyevents`. */
  get deliveryMode(): 'journal' | 'keyevents' { return this.delivery; }

  /** The consumer group, when there is one. */
  get group(): string | undefined { return this.groupName; }

  /** True between a successful `start()` and `stop()`. */
  get running(): boolean { return this.state === 'running'; }

  /** True while subscribed and caught up with the journal (see the `sync` event). */
  get synced(): boolean { return this.isSynced; }

  private setSynced(value: boolean): void {
    if (value === this.isSynced) return;
    this.isSynced = value;
    this.metrics.synced = value;
    this.emitSync('sync', value);
  }

  private deliver(event: TokenEvent): Promise<void> | undefined {
    this.metrics.event(event);
    return this.emitAsync(event.type, event);
  }

  private gap(event: GapEvent): void {
    this.metrics.gap(event.reason);
    this.emitSync('gap', event);
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
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      ({ timeout, signal } = startSettings(options, this.startTimeout));
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.starting = this.startWithin(timeout, signal);
    return this.starting;
  }

  private async startWithin(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    const started = this.doStart();
    const generation = this.generation;
    let timedOut = false;
    try {
      await settle(started, {
        timeout,
        signal,
        onTimeout: () => {
          timedOut = true;
          return new StoreUnavailableError(`TokenLifecycle.start() timed out after ${timeout} ms: Redis did not answer (connection ${this.redis.status})`);
        },
        abandon: (reject) => { this.abandonStart = () => reject(new StartAborted('TokenLifecycle.stop() was called before start() completed')); },
      });
    } catch (err) {
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
    this.configRefused = await prepareNotifications(this.redis, letters, this.configure, this.pollInterval, (warning) => this.emitSync('warning', warning));
    check();
    const channels = (journal ? (this.sweeping ? JOURNAL_EVENTS : []) : KEYEVENT_EVENTS).map((e) => channel(this.db, e));
    if (journal) channels.push(this.keys.wake());
    this.subscriber = new KeyeventSubscriber(this.redis, channels, {
      message: (event, key) => this.onKeyevent(event, key),
      lost: () => this.setSynced(false),
      resumed: () => this.recover(),
    }, { configure: this.configure });
    await this.subscriber.start();
    check();
    if (this.configRefused) await probeNotifications(this.redis, this.keys, letters, this.probes);
    check();
    this.state = 'running';
    this.metrics.running(true);
    if (!journal) {
      this.setSynced(true);
      return;
    }
    await this.feed!.init();
    check();
    await this.reader!.checkGaps();
    check();
    if (this.sweeping) {
      this.sweeper = new Sweeper(this.redis, this.keys, this.retention, (err) => this.reportRedis(err), () => this.reader?.nextRead() ?? Promise.resolve());
      await this.sweeper.start();
      check();
      // Token keys deleted while no lifecycle ran are still revocations if their deadline
      // has not passed: one pass over the due indexes finds them (in the background).
      this.sweeper.recheck().catch((err) => this.reportRedis(err));
    }
    this.reader!.request();
    await this.reader!.pumping;
    check();
    if (this.state !== 'running') return;
    this.pollTimer = setInterval(() => this.poll(), this.pollInterval);
    // Caught up before resolving: a first read that failed (retried) or a subscription that dropped meanwhile is waited out.
    await until(() => this.isSynced, check);
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
      this.reader?.pause();
      this.sweeper?.stop();
      this.sweeper = undefined;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.reader?.delivering ?? this.plain.delivering, new Promise((resolve) => { timer = setTimeout(resolve, this.stopTimeout); })]);
      clearTimeout(timer);
      this.reader?.pause();
      this.subscriber?.stop();
      this.subscriber = undefined;
      this.setSynced(false);
      this.metrics.running(false);
      this.starting = undefined;
      this.state = 'idle';
    })();
    return this.stopping;
  }

  /** Same as {@link stop}: safe to call more than once. `await using lifecycle = …` calls it too. */
  close(): Promise<void> { return this.stop(); }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  private recover(): void {
    if (this.state !== 'running') return;
    if (this.configure && !this.configRefused) ensureFlags(this.redis, this.letters).catch((err) => this.report(err));
    this.metrics.reconnect();
    if (this.delivery === 'keyevents') {
      this.gap({ reason: 'reconnect' });
      this.setSynced(true);
      return;
    }
    this.feed?.outage();
    this.reader?.request();
    this.reader?.checkGaps().catch((err) => this.reportRedis(err));
    if (this.sweeper) {
      this.sweeper.sweepAll();
      this.sweeper.recheck().catch((err) => this.reportRedis(err));
    }
  }

  private poll(): void {
    this.reader?.request();
    this.sweeper?.sweepAll();
    this.reader?.checkGaps().catch((err) => this.reportRedis(err));
  }

  private onKeyevent(event: string, key: string): void {
    const probe = this.probes.get(`${event} ${key}`);
    if (probe) return probe();
    if (this.state !== 'running') return;
    if (this.delivery === 'keyevents') {
      this.plain.deliver(event, key);
      return;
    }
    const parsed = this.keys.parse(key);
    if (!parsed) return;
    if (parsed.kind === 'log') {
      if (event === 'xadd') this.reader?.request(parsed.bucket);
    } else if (event !== 'xadd') {
      this.sweeper?.reap(parsed.bucket, parsed.jti, event === 'evicted' ? 'evicted' : 'external', event !== 'expired');
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
