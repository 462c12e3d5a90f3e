// A journal entry as the event a lifecycle delivers (also read by the CLI's replay).
import { fieldsOf } from '../redis/streams.js';
import type { RevokeReason, TokenClaims, TokenEvent, TokenEventType } from '../types.js';

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
