// A journal entry as the event a lifecycle delivers (also read by the CLI's replay).
import { fieldsOf, tokenEntry } from '../redis/streams.js';
import { sessionFromPacked, sessionFromState } from '../sessions/session-info.js';
import { claimsOf, templateOf } from '../tokens/records.js';
import type { RevokeReason, SessionEndReason, SessionEvent, SessionInfo, TokenClaims, TokenEvent, TokenEventType } from '../types.js';

/** A template's claims (JSON members) by bucket and id, when known (see Templates). */
export type TemplateLookup = (bucket: number, id: string) => string | undefined;

/**
 * A journal entry as a lifecycle delivers it (also used by the CLI's replay). A token
 * entry carries the token's record, expanded here with its template, and its id is its
 * time. Entries written before in named fields are read too (`type`, `jti`, `reason`,
 * `record`; before that `claims` and `at`).
 */
export function journalEvent(bucket: number, id: string, fields: string[], templates?: TemplateLookup): TokenEvent {
  const entry = tokenEntry(fields);
  if (entry !== undefined) return tokenEvent(bucket, id, entry.type, entry.jti, entry.reason, entry.record, undefined, parseInt(id, 10), templates);
  const f = fieldsOf(fields);
  if (f.sid !== undefined) return sessionEvent(bucket, id, f, templates);
  return tokenEvent(bucket, id, f.type ?? '', f.jti ?? '', f.reason, f.record, f.claims, f.at === undefined ? parseInt(id, 10) : Number(f.at), templates);
}

/** A token event from what its entry holds: a record (`claims` in journals written before). */
function tokenEvent(bucket: number, id: string, type: string, jti: string, reason: string | undefined, record: string | undefined,
  json: string | undefined, at: number, templates?: TemplateLookup): TokenEvent {
  let claims: TokenClaims | undefined;
  if (record !== undefined) {
    const template = templateOf(record);
    claims = claimsOf(jti, record, template ? templates?.(bucket, template) : undefined);
  } else if (json) {
    try {
      claims = JSON.parse(json) as TokenClaims;
    } catch {
      // A journal entry with unreadable claims is still an event worth reporting.
    }
  }
  claims ??= { jti } as TokenClaims;
  const event: TokenEvent = { id: `${bucket}:${id}`, type: type as TokenEventType, jti, sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at };
  if (reason) event.reason = reason as RevokeReason;
  return event;
}

/**
 * A session entry (see include/sessions.lua). `session_started` and `refreshed` carry the
 * access token they issued (its claims are the event's claims); `session_ended` and
 * `reuse_detected` carry the session, whose subject, sid, client_id, scope and further
 * claims are the event's claims.
 */
function sessionEvent(bucket: number, id: string, f: Record<string, string>, templates?: TemplateLookup): SessionEvent {
  const sid = f.sid ?? '';
  const jti = f.jti ?? '';
  let claims: TokenClaims | undefined;
  let session: SessionInfo | undefined;
  if (f.record !== undefined && f.state !== undefined) {
    const template = templateOf(f.record);
    claims = claimsOf(jti, f.record, template ? templates?.(bucket, template) : undefined);
    if (claims) session = sessionFromState(sid, f.state, claims);
  } else if (f.session !== undefined) {
    session = sessionFromPacked(sid, f.session);
    if (session) {
      claims = Object.assign({}, session.claims, { sub: session.sub, sid }) as unknown as TokenClaims;
      if (session.clientId !== undefined) claims.client_id = session.clientId;
      if (session.scope !== undefined) claims.scope = session.scope;
    }
  }
  session ??= { sid, sub: '', createdAt: 0, lastUsed: 0, expiresAt: 0, absoluteExpiresAt: 0, generation: 0 };
  claims ??= { sub: session.sub, sid } as unknown as TokenClaims;
  const event: SessionEvent = { id: `${bucket}:${id}`, type: f.type as SessionEvent['type'], jti, sub: session.sub, claims, at: parseInt(id, 10), sid, session };
  if (f.reason) event.reason = f.reason as SessionEndReason;
  return event;
}
