// What a TokenLifecycle accepts and emits: its options and defaults, `start()`'s
// options, and the typed map of its events.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../errors.js';
import type { KeySchema } from '../redis/keys.js';
import { checkLayout, checkRedis, type Retention } from '../redis/layout.js';
import type { RedisClient } from '../redis/script.js';
import type { SessionEndReason, SessionEvent, TokenEvent } from '../types.js';

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
  /** A store issued a token with `issue` (a session's tokens come with `session_started` and `refreshed`). */
  issued: TokenEvent;
  /** A token reached its `exp` (reported within tens of ms by the sweeper). */
  expired: TokenEvent;
  /** A token stopped being live before its `exp`; `reason` says how. */
  revoked: TokenEvent;
  /** A session started; `jti` and `claims` are its first access token's (which has no `issued` event of its own). */
  session_started: SessionEvent;
  /** A session's refresh token rotated; `jti` and `claims` are the new access token's (no `issued` of its own). */
  refreshed: SessionEvent;
  /** A session ended; `reason` says why (a {@link SessionEndReason}). Its access tokens are `revoked` with reason `session`. */
  session_ended: SessionEvent;
  /** A used refresh token came back after the grace window: its session ends (`session_ended`, reason `reuse`). */
  reuse_detected: SessionEvent;
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

export function positiveInt(option: string, value: unknown, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min) throw new ConfigError(option, `a whole number >= ${min}`);
  return v as number;
}

/** A lifecycle's options, checked once, with their defaults filled in. */
export interface LifecycleSettings {
  redis: RedisClient;
  keys: KeySchema;
  /** As the scripts take it (see layout.ts). */
  retention: string;
  delivery: 'journal' | 'keyevents';
  group: string | undefined;
  consumer: string;
  claimAfterMs: number;
  maxDeliveries: number;
  pollInterval: number;
  sweep: boolean;
  stopTimeout: number;
  startTimeout: number;
  configure: boolean;
}

/** Checks every option once, naming the one at fault. */
export function lifecycleSettings(options: TokenLifecycleOptions): LifecycleSettings {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
  const redis = checkRedis(options.redis);
  const { keys, retention } = checkLayout(options);
  const flag = (name: 'configure' | 'sweep') => {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') throw new ConfigError(name, 'a boolean');
    return options[name] ?? lifecycleDefaults[name];
  };
  const delivery = options.delivery ?? lifecycleDefaults.delivery;
  if (delivery !== 'journal' && delivery !== 'keyevents') throw new ConfigError('delivery', "'journal' or 'keyevents'");
  if (options.group !== undefined && (typeof options.group !== 'string' || !/^[\w.:-]{1,64}$/.test(options.group))) {
    throw new ConfigError('group', 'a name of 1 to 64 letters, digits, or . _ : -');
  }
  if (options.consumer !== undefined && (typeof options.consumer !== 'string' || options.consumer.length === 0 || options.consumer.length > 128)) {
    throw new ConfigError('consumer', 'a non-empty string of at most 128 characters');
  }
  if (options.group !== undefined && delivery === 'keyevents') throw new ConfigError('group', "no group with delivery 'keyevents' (notifications cannot be shared out)");
  return {
    redis,
    keys,
    retention,
    delivery,
    group: options.group,
    consumer: options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    claimAfterMs: positiveInt('claimAfterMs', options.claimAfterMs, lifecycleDefaults.claimAfterMs, 100),
    maxDeliveries: positiveInt('maxDeliveries', options.maxDeliveries, lifecycleDefaults.maxDeliveries),
    pollInterval: positiveInt('pollInterval', options.pollInterval, lifecycleDefaults.pollInterval, 10),
    sweep: flag('sweep'),
    stopTimeout: positiveInt('stopTimeout', options.stopTimeout, lifecycleDefaults.stopTimeout, 0),
    startTimeout: positiveInt('startTimeout', options.startTimeout, lifecycleDefaults.startTimeout),
    configure: flag('configure'),
  };
}

/** `start()`'s options, checked, with the lifecycle's `startTimeout` as the default timeout. */
export function startSettings(options: unknown, startTimeout: number): { timeout: number; signal: AbortSignal | undefined } {
  if (typeof options !== 'object' || options === null) throw new ConfigError('start(options)', 'an object { timeout?, signal? }');
  const { timeout, signal } = options as StartOptions;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ConfigError('signal', 'an AbortSignal');
  return { timeout: positiveInt('timeout', timeout, startTimeout), signal };
}
