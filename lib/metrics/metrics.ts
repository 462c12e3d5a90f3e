// Metrics, through `@opentelemetry/api` only: the application chooses the SDK and the
// exporter, and with no MeterProvider registered nothing is recorded (docs/metrics.md).
//
// The units call the small functions below; nothing else in the library touches
// OpenTelemetry. Every attribute object is built once and frozen, so recording allocates
// nothing, and no attribute ever carries a subject, jti or token.
//
// The API has no proxy for metrics (unlike traces): a meter taken from the global
// provider before the application registers one stays a no-op forever. So the meter is
// taken, and the instruments created, once per registered provider: each recording
// first compares the global provider with the one bound (a property read), and binds
// anew only when it changed.
import { readFileSync } from 'node:fs';
import {
  ValueType, createNoopMeter, metrics,
  type Attributes, type BatchObservableCallback, type Counter, type Histogram, type Meter, type MeterProvider, type ObservableGauge,
} from '@opentelemetry/api';
import type { ErrorCode } from '../errors.js';
import { lifecycles, observe } from './gauges.js';

export { watchCache, type CacheSource } from './gauges.js';

/** The instrumentation scope name: the meter every instrument belongs to. */
export const METER_NAME = 'redis-token-lifecycle';
/** Every instrument's name starts with this namespace (Prometheus: `rtl_…`). */
export const NAMESPACE = 'rtl';

/** Attributes with the same values share one frozen object. */
type Attrs = Readonly<Attributes>;
const attrs = <T extends Attributes>(a: T): Readonly<T> => Object.freeze(a);
const NONE: Attrs = attrs({});

// ---- the instruments ---------------------------------------------------------

interface Instruments {
  /** False for a no-op meter: then nothing is timed and no Redis read is made for gauges. */
  live: boolean;
  issued: Counter;
  verifications: Counter;
  revoked: Counter;
  expired: Counter;
  verifyDuration: Histogram;
  eventLag: Histogram;
  delivered: Counter;
  reconnects: Counter;
  gaps: Counter;
  sessionsStarted: Counter;
  refreshes: Counter;
  sessionsEnded: Counter;
  gauges: ObservableGauge[];
  /** The gauges' batch callback, as registered (so it can be removed). */
  observer: BatchObservableCallback;
  meter: Meter;
}

/** Verification latency buckets, s: a cached answer takes microseconds, a Redis round trip about a millisecond. */
const DURATION_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Event lag buckets, s: milliseconds when healthy, seconds to minutes after an outage. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

function create(meter: Meter): Instruments {
  const counter = (name: string, unit: string, description: string) =>
    meter.createCounter(`${NAMESPACE}.${name}`, { unit, description, valueType: ValueType.INT });
  const gauge = (name: string, unit: string, description: string, valueType = ValueType.INT) =>
    meter.createObservableGauge(`${NAMESPACE}.${name}`, { unit, description, valueType });
  const issued = counter('tokens.issued', '{token}', 'Tokens issued by this process, by client_id (a store\'s default client id and its first 16 others; the rest as "other").');
  const gauges = [
    gauge('journal.length', '{entry}', 'Entries the journal holds, over every bucket of each prefix a running lifecycle reads (as of its last poll).'),
    gauge('group.pending', '{entry}', 'Journal entries delivered to a consumer group and not yet acknowledged, by group (as of the last poll).'),
    gauge('group.dead_letters', '{entry}', 'Entries in a consumer group\'s dead-letter streams, by group (as of the last poll).'),
    gauge('cache.entries', '{token}', 'Tokens held by the verified-token caches of this process.'),
    gauge('cache.memory', 'By', 'Estimated bytes held by the verified-token caches of this process.'),
    gauge('cache.staleness', 's', 'Seconds since the store\'s journal feed last proved it had read everything (the oldest among the stores); a cached answer is given only while this is at most maxStaleness.', ValueType.DOUBLE),
    gauge('lifecycle.synced', '1', '1 while every running lifecycle (by group) is subscribed and caught up with the journal, else 0.'),
  ];
  const instruments: Instruments = {
    live: issued !== NOOP_COUNTER,
    issued,
    verifications: counter('tokens.verifications', '{verification}', 'Calls of verify (and bearerAuth answers from the cache), by outcome: ok or the error code.'),
    revoked: counter('tokens.revoked', '{token}', 'Tokens revoked, by reason: revoke and revokeAll as this process\' store revoked them, external and evicted as its lifecycle delivered them.'),
    expired: counter('tokens.expired', '{token}', 'expired events delivered by this process\' lifecycles.'),
    verifyDuration: meter.createHistogram(`${NAMESPACE}.verify.duration`, {
      unit: 's', description: 'Time verify took, by source: cache (answered from memory) or redis (anything else, refusals included).',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    eventLag: meter.createHistogram(`${NAMESPACE}.event.lag`, {
      unit: 's', description: 'From the event (its journal time; for expired, the token\'s deadline) to its delivery to the listeners, by type and group.',
      advice: { explicitBucketBoundaries: LAG_BUCKETS },
    }),
    delivered: counter('events.delivered', '{event}', 'Lifecycle events handed to the listeners, by type and group.'),
    reconnects: counter('reconnects', '{reconnect}', 'Times a link to Redis came back after it was lost, by component: lifecycle (its subscription; it then catches up from the journal, by group) or feed (a store\'s revocation feed proving freshness again).'),
    gaps: counter('lifecycle.gaps', '{gap}', 'gap events, by reason: trimmed (journal entries dropped unread) or reconnect (keyevents delivery).'),
    sessionsStarted: counter('sessions.started', '{session}', 'Sessions started by this process\' stores.'),
    refreshes: counter('sessions.refreshes', '{refresh}', 'Calls of refresh in this process, by outcome: ok, grace (a repeat within the grace window: the same pair), reuse (theft: the session was ended), or the refusal (invalid, scope, client).'),
    sessionsEnded: counter('sessions.ended', '{session}', 'session_ended events delivered by this process\' lifecycles, by reason (idle, absolute, revoked, reuse, limit, logout).'),
    gauges,
    observer: (result) => observe(result, gauges),
    meter,
  };
  meter.addBatchObservableCallback(instruments.observer, gauges);
  return instruments;
}

const NOOP_METER = createNoopMeter();
const NOOP_COUNTER = NOOP_METER.createCounter('noop');
const NOOP = create(NOOP_METER);

let provider: MeterProvider | undefined;
let bound: Instruments = NOOP;

function version(): string {
  try {
    // lib/metrics/metrics.ts and dist/metrics/metrics.js both sit two levels below package.json.
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** The instruments of the global provider, made when it is first seen. */
function instruments(): Instruments {
  const current = metrics.getMeterProvider();
  if (current !== provider) {
    bound.meter.removeBatchObservableCallback(bound.observer, bound.gauges);
    provider = current;
    bound = create(current.getMeter(METER_NAME, version()));
  }
  return bound;
}

/** True when a real MeterProvider is registered (work done only for metrics can be skipped otherwise). */
export function metricsEnabled(): boolean {
  return instruments().live;
}

// ---- tokens ------------------------------------------------------------------

/** Most client ids a store reports besides its default one; the rest count as "other". */
export const MAX_CLIENT_IDS = 16;
const OTHER_CLIENT = attrs({ client_id: 'other' });

/** The `client_id` attributes of one store: its default, then the first distinct others, then "other". */
export class ClientIds {
  private readonly known = new Map<string, Attrs>();

  constructor(defaultClientId: string) {
    this.known.set(defaultClientId, attrs({ client_id: defaultClientId }));
  }

  of(clientId: string): Attrs {
    let found = this.known.get(clientId);
    if (found === undefined) {
      found = this.known.size > MAX_CLIENT_IDS ? OTHER_CLIENT : attrs({ client_id: clientId });
      if (found !== OTHER_CLIENT) this.known.set(clientId, found);
    }
    return found;
  }
}

export function recordIssued(client: Attrs): void {
  instruments().issued.add(1, client);
}

const CACHE = attrs({ source: 'cache' });
const REDIS = attrs({ source: 'redis' });
const OK = attrs({ outcome: 'ok' });
const OUTCOMES = new Map<string, Attrs>();
for (const code of ['ERR_TOKEN_MALFORMED', 'ERR_TOKEN_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_TOKEN_REVOKED', 'ERR_TOKEN_CLAIMS',
  'ERR_STORE_UNAVAILABLE', 'ERR_CONFIG', 'ERR_DEAD_LETTER'] satisfies ErrorCode[]) {
  OUTCOMES.set(code, attrs({ outcome: code }));
}
const OTHER_ERROR = attrs({ outcome: 'other' });

/**
 * Where a verification starts: a `performance.now()` reading, or -1 when no provider is
 * registered (then the clock is not even read, and the recording below returns at once).
 */
export function verifyStart(): number {
  return instruments().live ? performance.now() : -1;
}

/** A verification answered; `started` from {@link verifyStart}. */
export function recordVerified(fromCache: boolean, started: number): void {
  if (started < 0) return;
  const m = bound;
  m.verifications.add(1, OK);
  m.verifyDuration.record((performance.now() - started) / 1000, fromCache ? CACHE : REDIS);
}

/** A verification refused (or failed): the outcome is its error code. */
export function recordVerifyFailed(err: unknown, started: number): void {
  if (started < 0) return;
  const m = bound;
  const code = (err as { code?: unknown } | null)?.code;
  m.verifications.add(1, (typeof code === 'string' ? OUTCOMES.get(code) : undefined) ?? OTHER_ERROR);
  m.verifyDuration.record((performance.now() - started) / 1000, REDIS);
}

const REASONS = new Map<string, Attrs>(['revoke', 'revokeAll', 'external', 'evicted'].map((reason) => [reason, attrs({ reason })]));
const OTHER_REASON = attrs({ reason: 'other' });

/** `count` tokens revoked for `reason` (revoke / revokeAll by the store; external / evicted by the lifecycle). */
export function recordRevoked(reason: string, count = 1): void {
  if (count > 0) instruments().revoked.add(count, REASONS.get(reason) ?? OTHER_REASON);
}

// ---- lifecycle events --------------------------------------------------------

/** What {@link LifecycleMetrics.event} needs of an event (a `TokenEvent`). */
interface DeliveredEvent {
  type: string;
  at: number;
  reason?: string | undefined;
  claims?: { exp?: unknown };
}

/**
 * One lifecycle's recordings, with its attributes built once (by event type, with its
 * group when it has one), and what its last poll saw, for the gauges.
 */
export class LifecycleMetrics {
  /** Journal entries over every bucket, as of the last poll (undefined before it). */
  length: number | undefined;
  /** The group's pending entries, as of the last poll. */
  pending: number | undefined;
  /** The group's dead letters, as of the last poll. */
  deadLetters: number | undefined;
  synced = false;
  /** `group` alone (none without a group). */
  readonly attributes: Attrs;
  private readonly byType: Map<string, Attrs>;
  private readonly gaps: Map<string, Attrs>;
  private readonly reconnected: Attrs;

  constructor(readonly prefix: string, readonly group: string | undefined) {
    const base = group === undefined ? {} : { group };
    this.attributes = group === undefined ? NONE : attrs({ group });
    this.byType = new Map(['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected', 'other'].map((type) => [type, attrs({ type, ...base })]));
    this.gaps = new Map(['trimmed', 'reconnect'].map((reason) => [reason, attrs({ reason, ...base })]));
    this.reconnected = attrs({ component: 'lifecycle', ...base });
  }

  /** Reported by the gauges while running. */
  running(on: boolean): void {
    if (on) lifecycles.add(this);
    else lifecycles.delete(this);
  }

  /**
   * An event handed to the listeners: counts it, its lag (from its journal time, or for
   * `expired` from the token's deadline; Redis' clock against this host's, so a skew
   * between them shows here), and `expired` / external revocations.
   */
  event(event: DeliveredEvent): void {
    const m = instruments();
    if (!m.live) return;
    const a = this.byType.get(event.type) ?? this.byType.get('other')!;
    m.delivered.add(1, a);
    const exp = event.claims?.exp;
    const from = event.type === 'expired' && typeof exp === 'number' ? exp * 1000 : event.at;
    if (Number.isFinite(from)) m.eventLag.record(Math.max(0, Date.now() - from) / 1000, a);
    if (event.type === 'expired') m.expired.add(1, NONE);
    else if (event.type === 'revoked' && (event.reason === 'external' || event.reason === 'evicted')) m.revoked.add(1, REASONS.get(event.reason)!);
    else if (event.type === 'session_ended') m.sessionsEnded.add(1, ENDED.get(event.reason ?? '') ?? ENDED.get('other')!);
  }

  gap(reason: string): void {
    const a = this.gaps.get(reason);
    if (a !== undefined) instruments().gaps.add(1, a);
  }

  /** The subscription is back after a loss. */
  reconnect(): void {
    instruments().reconnects.add(1, this.reconnected);
  }
}

const STARTED = NONE;
const REFRESH_OUTCOMES = new Map<string, Attrs>(['ok', 'grace', 'reuse', 'invalid', 'scope', 'client', 'other'].map((outcome) => [outcome, attrs({ outcome })]));
const ENDED = new Map<string, Attrs>(['idle', 'absolute', 'revoked', 'reuse', 'limit', 'logout', 'other'].map((reason) => [reason, attrs({ reason })]));

export function recordSessionStarted(): void {
  instruments().sessionsStarted.add(1, STARTED);
}

/** A refresh's outcome: ok, grace, reuse, invalid, scope, client. */
export function recordRefresh(outcome: string): void {
  instruments().refreshes.add(1, REFRESH_OUTCOMES.get(outcome) ?? REFRESH_OUTCOMES.get('other')!);
}

const FEED = attrs({ component: 'feed' });

/** A store's revocation feed proved freshness again after a loss. */
export function recordFeedReconnect(): void {
  instruments().reconnects.add(1, FEED);
}
