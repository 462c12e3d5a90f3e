// The demo's event stream: `GET /events?ticket=…` sends a user's lifecycle events (token
// and session events) as Server-Sent Events, and ends when the session (or the token) the
// ticket was bought with ends: the session-expiry callback made visible.
import type { Request, Response } from 'express';
import { TokenError, type TokenEvent, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import type { TicketBook, TicketHolder } from './tickets.js';

/** Bytes an SSE client may fall behind before it is dropped. */
const MAX_SSE_BACKLOG = 1024 * 1024;
/** What the stream carries: the tokens' events and the sessions'. */
export const EVENT_TYPES = ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const;
/** Recent events kept per user, for a stream to start with (its own token's `issued` comes before it opens). */
const RECENT_PER_USER = 20;
/** Users whose recent events are kept; the longest unheard-of go first. */
const RECENT_USERS = 1000;

/**
 * The lifecycle's events by user: one listener per event type on the lifecycle, however
 * many streams are open (each stream subscribes here), and the last events of each user.
 */
export class EventFeed {
  private readonly recent = new Map<string, TokenEvent[]>();
  private readonly subscribers = new Map<string, Set<(event: TokenEvent) => void>>();

  constructor(lifecycle: TokenLifecycle) {
    const record = (event: TokenEvent) => {
      const list = this.recent.get(event.sub) ?? [];
      this.recent.delete(event.sub); // re-inserted last: the map's order is least recently heard of first
      list.push(event);
      if (list.length > RECENT_PER_USER) list.shift();
      this.recent.set(event.sub, list);
      if (this.recent.size > RECENT_USERS) this.recent.delete(this.recent.keys().next().value!);
      for (const deliver of this.subscribers.get(event.sub) ?? []) deliver(event);
    };
    for (const type of EVENT_TYPES) lifecycle.on(type, record);
  }

  /** Calls `deliver` with each new event of `sub`; resolves its recent ones, up to now. Call the returned function to stop. */
  subscribe(sub: string, deliver: (event: TokenEvent) => void): { recent: TokenEvent[]; stop: () => void } {
    const set = this.subscribers.get(sub) ?? new Set();
    set.add(deliver);
    this.subscribers.set(sub, set);
    const stop = () => {
      set.delete(deliver);
      if (set.size === 0 && this.subscribers.get(sub) === set) this.subscribers.delete(sub);
    };
    return { recent: [...(this.recent.get(sub) ?? [])], stop };
  }

  /** Streams subscribed (tests check that none are left behind). */
  get streams(): number {
    let n = 0;
    for (const set of this.subscribers.values()) n += set.size;
    return n;
  }
}

export interface StreamContext {
  store: TokenStore;
  feed: EventFeed;
  tickets: TicketBook;
  heartbeatMs: number;
}

/**
 * `GET /events?ticket=…`: the lifecycle events of the ticket holder's own tokens and
 * sessions (same `sub`): the recent ones first, then live. It opens with
 * `event: session` `{ jti, sub, expiresAt, sid? }` (not `open`: EventSource fires its own
 * `open`).
 *
 * - A token of a session (a `sid` claim, from /login or /oauth/token): the stream lasts as
 *   long as that session, across refreshes. When the session ends, its `session_ended` is
 *   sent, then `event: end` `{ reason: "session_ended", detail: <why: reuse, logout, …> }`.
 * - Any other token: the stream lasts as long as that token; when it expires or is
 *   revoked, its event is sent, then `event: end` `{ reason: "expired" | "revoked" }`.
 *
 * The server then ends the response. 401 for a ticket that is unknown, used, or too old,
 * or whose token no longer verifies.
 */
export async function streamEvents(req: Request, res: Response, { store, feed, tickets, heartbeatMs }: StreamContext): Promise<void> {
  const holder: TicketHolder | undefined = tickets.redeem(req.query.ticket);
  if (holder === undefined) {
    res.status(401).set('Cache-Control', 'no-store').json({ error: 'invalid_ticket', error_description: 'ticket unknown, already used or expired: POST /session/ticket for a new one' });
    return;
  }
  const { token, sub, sid } = holder;
  // Listen before verifying, so that an event arriving while Redis answers is not missed;
  // the recent ones, taken in the same tick, are exactly those before.
  const subscription = feed.subscribe(sub, (event) => deliver(event));
  const early = subscription.recent;
  let deliver: (event: TokenEvent) => void = (event) => early.push(event);
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    subscription.stop();
  };

  let jti: string;
  let expiresAt: number;
  try {
    ({ jti, expiresAt } = await store.verify(token));
  } catch (err) {
    cleanup();
    if (err instanceof TokenError) {
      res.status(401).set('Cache-Control', 'no-store').json({ error: 'invalid_token', error_description: err.message });
      return;
    }
    throw err; // StoreUnavailableError → 503 by the error handler
  }
  if (req.destroyed || res.destroyed) {
    cleanup();
    return;
  }

  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-store, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no', // nginx: do not buffer the stream
  });
  // Heartbeat comments keep proxies from closing an idle stream. No `retry:`: a ticket
  // is single-use, so the page itself reconnects with a new one.
  res.write(`: connected\n\nevent: session\ndata: ${JSON.stringify({ jti, sub, expiresAt, ...(sid ? { sid } : {}) })}\n\n`);
  heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
  req.on('close', cleanup);
  res.on('close', cleanup);
  res.on('error', cleanup);

  // What ends this stream: its session's end, or (no session) its token's.
  const ending = (event: TokenEvent): Record<string, unknown> | undefined => {
    if (sid) return event.type === 'session_ended' && event.sid === sid ? { reason: 'session_ended', detail: event.reason } : undefined;
    if (event.jti !== jti || (event.type !== 'expired' && event.type !== 'revoked')) return undefined;
    return { reason: event.type, ...(event.reason ? { detail: event.reason } : {}) };
  };
  deliver = (event) => {
    if (closed) return;
    if (res.writableLength > MAX_SSE_BACKLOG) {
      // A client this far behind is not reading: drop it rather than buffer without end.
      cleanup();
      res.destroy();
      return;
    }
    res.write(`event: ${event.type}\nid: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`);
    const end = ending(event);
    if (end) {
      cleanup();
      res.end(`event: end\ndata: ${JSON.stringify(end)}\n\n`);
    }
  };
  for (const event of early) deliver(event);
}
