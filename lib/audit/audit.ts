// Audit logging: every lifecycle event as one JSON line (or one object for a
// pino-like logger), with the facts an audit trail needs and nothing more: never
// the token, and no claim beyond client_id and scope unless asked for.
import { ConfigError } from '../errors.js';
import type { SessionDevice, SessionEventType, TokenEvent, TokenEventType } from '../types.js';

/** Where audit records go: a function, a Node writable stream, or a pino-like logger. */
export type AuditSink =
  | ((line: string) => void | Promise<void>)
  | AuditStream
  | AuditLogger;

/** What {@link auditLog} needs of a Node writable stream (`process.stdout`, `fs.createWriteStream`, …). */
export interface AuditStream {
  write(chunk: string): boolean;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** What {@link auditLog} needs of a logger: pino, bunyan, winston and the like. */
export interface AuditLogger {
  info(record: Record<string, unknown>): unknown;
}

/** What {@link auditLog} subscribes to: a `TokenLifecycle` (or anything with the same `on`/`off`). */
export interface AuditSource {
  on(name: TokenEventType | SessionEventType, listener: (event: TokenEvent) => unknown): unknown;
  off(name: TokenEventType | SessionEventType, listener: (event: TokenEvent) => unknown): unknown;
}

export interface AuditLogOptions {
  /** The lifecycle whose events (`issued`, `expired`, `revoked` and the session events) are written. Give it a `group` to write each event once over N instances. */
  lifecycle: AuditSource;
  /**
   * - a function `(line) => void | Promise<void>`: called with one JSON line (no trailing newline), awaited;
   * - a writable stream: `line + '\n'` written; when `write()` returns false, the next event waits for `'drain'`;
   * - a logger with `.info(record)`: called with the record object. Loggers stamp their own `time`,
   *   so the event's time is `event_time` there (a second `time` key would make the line invalid for many log stores).
   */
  write: AuditSink;
  /** Further claims to copy into each record when present (e.g. `['iss', 'aud', 'tenant']`). */
  fields?: readonly string[];
}

/** One audit record. Keys in this order; `reason`, `client_id`, `scope` and extra fields only when present. */
export interface AuditRecord {
  /** When the event was journaled (ISO 8601, Redis clock). `event_time` in records given to a logger. */
  time?: string;
  event_time?: string;
  type: TokenEventType | SessionEventType;
  /** On `revoked` (`revoke`, `revokeAll`, `external`, `evicted`, `session`) and `session_ended` (`idle`, `absolute`, `revoked`, `reuse`, `limit`, `logout`). */
  reason?: string;
  /** The access token; on session events the one the start or refresh issued, or ''. */
  jti: string;
  sub: string;
  /** The session: on session events, and on events of a session's access tokens. */
  sid?: string;
  /** On `session_started`: the device the application gave. */
  device?: SessionDevice;
  client_id?: unknown;
  scope?: unknown;
  /** The event id, `<bucket>:<stream id>`: unique per prefix; use it to de-duplicate or to resume (`tail --since`). */
  id: string;
  [claim: string]: unknown;
}

export interface AuditLog {
  /** Detaches from the lifecycle. An event being written when it is called is still written. */
  close(): void;
}

/** The record's own keys: extra `fields` cannot take these names. */
export const RECORD_KEYS: ReadonlySet<string> = new Set(['time', 'event_time', 'type', 'reason', 'jti', 'sub', 'sid', 'device', 'client_id', 'scope', 'id', 'token']);
const TYPES: readonly (TokenEventType | SessionEventType)[] = ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'];

/**
 * The audit record of an event: time (ISO), type, reason, jti, sub, sid, device,
 * client_id, scope, id, then the listed extra claims. Never the token (it is not in an event at all).
 */
export function auditRecord(event: TokenEvent, fields: readonly string[] = [], timeKey: 'time' | 'event_time' = 'time'): AuditRecord {
  const record: Record<string, unknown> = {};
  record[timeKey] = Number.isFinite(event.at) ? new Date(event.at).toISOString() : null;
  record.type = event.type;
  if (event.reason !== undefined) record.reason = event.reason;
  record.jti = event.jti;
  record.sub = event.sub;
  const claims = (event.claims ?? {}) as Record<string, unknown>;
  const sid = event.sid ?? claims.sid;
  if (sid !== undefined) record.sid = sid;
  if (event.type === 'session_started' && event.session?.device !== undefined) record.device = event.session.device;
  if (claims.client_id !== undefined) record.client_id = claims.client_id;
  if (claims.scope !== undefined) record.scope = claims.scope;
  record.id = event.id;
  for (const field of fields) if (claims[field] !== undefined) record[field] = claims[field];
  return record as AuditRecord;
}

function isLogger(sink: unknown): sink is AuditLogger {
  return typeof sink === 'object' && sink !== null && typeof (sink as AuditLogger).info === 'function';
}

function isStream(sink: unknown): sink is AuditStream {
  return typeof sink === 'object' && sink !== null && typeof (sink as AuditStream).write === 'function'
    && typeof (sink as AuditStream).once === 'function' && typeof (sink as AuditStream).off === 'function';
}

/** Waits for `'drain'`; rejects if the stream errors or closes first. */
function drained(stream: AuditStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: unknown) => done(err ?? new Error('stream error'));
    const onClose = () => done(new Error('the audit stream closed before it drained'));
    stream.once('drain', onDrain);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}

/** Writes text to a stream; when the stream asks to wait, resolves on `'drain'`. */
export async function writeLine(stream: AuditStream, text: string): Promise<void> {
  if (!stream.write(text)) await drained(stream);
}

/**
 * Writes a record to a sink: the line to a function or a stream (waiting for
 * `'drain'` when the stream asks to), the object to a logger. Resolves when the
 * sink has taken it.
 */
export function sinkWriter(sink: AuditSink, fields: readonly string[] = []): (event: TokenEvent) => Promise<void> {
  if (typeof sink === 'function') {
    return async (event) => { await sink(JSON.stringify(auditRecord(event, fields))); };
  }
  if (isLogger(sink)) {
    return async (event) => { sink.info(auditRecord(event, fields, 'event_time')); };
  }
  if (isStream(sink)) {
    return (event) => writeLine(sink, `${JSON.stringify(auditRecord(event, fields))}\n`);
  }
  throw new ConfigError('write', 'a function (line) => void | Promise<void>, a writable stream, or a logger with .info(object)');
}

function checkFields(fields: unknown): string[] {
  if (fields === undefined) return [];
  if (!Array.isArray(fields) || !fields.every((f) => typeof f === 'string' && f.length > 0 && !RECORD_KEYS.has(f))) {
    throw new ConfigError('fields', `an array of claim names (non-empty strings other than ${[...RECORD_KEYS].join(', ')})`);
  }
  return [...new Set(fields as string[])];
}

/**
 * Writes every `issued` / `expired` / `revoked` event of `lifecycle` as one audit
 * record: `{"time","type","reason"?,"jti","sub","client_id"?,"scope"?,"id", …fields}`.
 * The token itself is never written (events do not carry it), nor any claim
 * not listed in `fields`.
 *
 * The write is awaited before the lifecycle moves on: with a consumer group, an
 * event is acknowledged only once its record is written, and a failed write
 * (the function rejects, the stream errors) leaves it for redelivery. Give every
 * app instance a lifecycle with the same `group` and each event is written once
 * over all of them while they run; delivery is at least once, so after a crash
 * between a write and its acknowledgement an event can be written again:
 * de-duplicate on `id` where that matters.
 *
 * @example
 * ```ts
 * const lifecycle = new TokenLifecycle({ redis, prefix: 'tok:', group: 'audit' });
 * const audit = auditLog({ lifecycle, write: pino() });          // or fs.createWriteStream('audit.log', { flags: 'a' })
 * await lifecycle.start();
 * // …
 * audit.close();
 * await lifecycle.stop();
 * ```
 */
export function auditLog(options: AuditLogOptions): AuditLog {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object { lifecycle, write, fields? }');
  const { lifecycle } = options;
  if (typeof lifecycle !== 'object' || lifecycle === null || typeof lifecycle.on !== 'function' || typeof lifecycle.off !== 'function') {
    throw new ConfigError('lifecycle', 'a TokenLifecycle');
  }
  const fields = checkFields(options.fields);
  const write = sinkWriter(options.write, fields);
  const listener = (event: TokenEvent) => write(event);
  for (const type of TYPES) lifecycle.on(type, listener);
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      for (const type of TYPES) lifecycle.off(type, listener);
    },
  };
}
