// A journal entry as the event a lifecycle delivers (also read by the CLI's replay).
import { fieldsOf } from '../redis/streams.js';
import { sessionFromPacked, sessionFromState } from '../sessions/session-info.js';
import { claimsOf, templateOf } from '../tokens/records.js';
import type { RevokeReason, SessionEndReason, SessionEvent, SessionInfo, TokenClaims, TokenEvent, TokenEventType } from '../types.js';

/** A template's claims (JSON members) by bucket and id, when known (see Templates). */
export type TemplateLookup = (bucket: number, id: string) => string | undefined;

/**
 * A journal entry as a lifecycle delivers it (also used by the CLI's replay). The entry
 * carries the token's record, expanded here with its template, and its id is its time
 * (journals written before carry `claims` and `at`).
 */
export function journalEvent(bucket: number, id: string, fields: string[], templates?: TemplateLookup): TokenEvent {
  const f = fieldsOf(fields);
  if (f.sid !== undefined) return sessionEvent(bucket, id, f, templates);
  const jti = f.jti ?? '';
  let claims: TokenClaims | undefined;
  if (f.record !== undefined) {
    const template = templateOf(f.record);
    claims = claimsOf(jti, f.record, template ? templates?.(bucket, template) : undefined);
  } else if (f.claims) {
    try {
      claims = JSON.parse(f.claims) as TokenClaims;
    } catch {
      // A journal entry with unreadable claims is still an event worth reporting.
    }
  }
  claims ??= { jti } as TokenClaims;
  const event: TokenEvent = { id: `${bucket}:${id}`, type: f.type as TokenEventType, jti, sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at: f.at === undefined ? parseInt(id, 10) : Number(f.at) };
  if (f.reason) event.reason = f.reason as RevokeReason;
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
