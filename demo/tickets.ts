// One-time tickets for the demo's event stream. EventSource cannot send an
// Authorization header, and a bearer token in a URL ends up in logs, history and
// Referer headers. So the page trades its token (in a header) for a ticket: random,
// single-use, valid for seconds, and worthless once the stream has opened.
import { randomBytes } from 'node:crypto';

/** What a ticket stands for: the token it was bought with (and its session, if any). */
export interface TicketHolder {
  token: string;
  sub: string;
  jti: string;
  /** The token's `sid` claim: the stream then lasts as long as that session. */
  sid?: string;
}

/** How long a ticket may wait before it is redeemed, in milliseconds. */
export const TICKET_TTL_MS = 30_000;
/** Tickets kept at most; past that the oldest go first (each costs a live token to get). */
const MAX_TICKETS = 10_000;

export class TicketBook {
  // Insertion order is expiry order (one TTL for all), so the stale ones are at the front.
  private readonly tickets = new Map<string, TicketHolder & { expiresAt: number }>();

  constructor(private readonly ttlMs = TICKET_TTL_MS, private readonly now: () => number = Date.now) {}

  /** A new ticket for `holder`, and when it stops being accepted (epoch ms). */
  issue(holder: TicketHolder): { ticket: string; expiresAt: number } {
    this.sweep();
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = this.now() + this.ttlMs;
    this.tickets.set(ticket, { token: holder.token, sub: holder.sub, jti: holder.jti, ...(holder.sid ? { sid: holder.sid } : {}), expiresAt });
    return { ticket, expiresAt };
  }

  /** The holder of a ticket issued less than the TTL ago and not redeemed yet; it is used up either way. */
  redeem(ticket: unknown): TicketHolder | undefined {
    if (typeof ticket !== 'string') return undefined;
    const entry = this.tickets.get(ticket);
    if (entry === undefined) return undefined;
    this.tickets.delete(ticket);
    if (entry.expiresAt <= this.now()) return undefined;
    return { token: entry.token, sub: entry.sub, jti: entry.jti, ...(entry.sid ? { sid: entry.sid } : {}) };
  }

  /** Tickets still held (tests check that none pile up). */
  get size(): number {
    this.sweep();
    return this.tickets.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [ticket, entry] of this.tickets) {
      if (entry.expiresAt > now) break;
      this.tickets.delete(ticket);
    }
  }
}
