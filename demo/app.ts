// The demo app: sign in, call a protected route, log out, and watch your tokens'
// lifecycle (issued, expired, revoked) arrive live over Server-Sent Events.
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { StoreUnavailableError, TokenError, type TokenEvent, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import { authErrorHandler, bearerAuth, introspection, jwks, requireScope, revocation, type AuthInfo } from '../lib/express/index.js';
import { TicketBook, type TicketHolder } from './tickets.js';

export interface DemoAppOptions {
  store: TokenStore;
  /** Must be started by the caller (and on the store's prefix) for /events to carry anything. */
  lifecycle: TokenLifecycle;
  /** Milliseconds between SSE comment heartbeats, which keep proxies from closing idle streams. @default 15000 */
  heartbeatMs?: number;
  /** The one-time tickets that open `/events` (tests pass one with their own clock). @default a new TicketBook */
  tickets?: TicketBook;
  /**
   * Serves `GET /metrics` in the Prometheus text format: an `@opentelemetry/exporter-prometheus`
   * `PrometheusExporter` made with `preventServerStart: true` and registered (as a reader of
   * the global MeterProvider) by the caller. @default no /metrics route
   */
  metrics?: { getMetricsRequestHandler(req: IncomingMessage, res: ServerResponse): void };
}

/** Longest lifetime a demo user may ask for, in seconds (one day). */
export const MAX_DEMO_TTL = 86_400;
const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const REALM = 'redis-token-lifecycle-demo';
const SCOPE = 'read write';
/** Bytes an SSE client may fall behind before it is dropped. */
const MAX_SSE_BACKLOG = 1024 * 1024;
const EVENT_TYPES = ['issued', 'expired', 'revoked'] as const;
/** Recent events kept per user, for a stream to start with (its own token's `issued` comes before it opens). */
const RECENT_PER_USER = 20;
/** Users whose recent events are kept; the longest unheard-of go first. */
const RECENT_USERS = 1000;

/** A 400 for request bodies the demo refuses, rendered like the library's errors. */
class BadRequest extends Error {
  readonly status = 400;
}

/**
 * Builds the demo's Express app. It never starts or stops the store, the lifecycle
 * or Redis: the caller owns them.
 */
export function createDemoApp({ store, lifecycle, heartbeatMs = 15_000, tickets = new TicketBook(), metrics }: DemoAppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    // The page loads its script and styles from this origin only: no inline code to inject into.
    res.set({
      'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
    next();
  });
  const publicDir = fileURLToPath(new URL('./public/', import.meta.url));
  app.use(express.static(publicDir, { index: 'index.html' }));
  // Browsers that ignore <link rel=icon> still ask for /favicon.ico: same icon, no 404.
  app.get('/favicon.ico', (_req, res) => res.type('image/svg+xml').sendFile('favicon.svg', { root: publicDir }));
  // Standard endpoints. `authorize: false` because this is a demo: a real server checks
  // the calling client (RFC 7662 §2.1, RFC 7009 §2.1). They parse their own form bodies,
  // and are mounted on every method so that a GET is answered 405 with `Allow`, not 404.
  app.all('/oauth/introspect', introspection(store, { authorize: false, realm: REALM }));
  app.all('/oauth/revoke', revocation(store, { authorize: false, realm: REALM }));
  app.all('/.well-known/jwks.json', jwks(store));
  // Open, as a demo's may be: a real server keeps /metrics off the public listener.
  if (metrics) app.get('/metrics', (req, res) => metrics.getMetricsRequestHandler(req, res));
  app.use(express.json({ limit: '4kb' }));

  const auth = bearerAuth(store, { realm: REALM });
  const recent = recentEvents(lifecycle);

  app.post('/login', async (req, res) => {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequest('expected a JSON object body: { "username": "...", "ttl": 60 }');
    }
    const { username, ttl } = body as Record<string, unknown>;
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      throw new BadRequest('username: 1 to 64 characters among letters, digits and _ . @ -');
    }
    if (ttl !== undefined && (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_DEMO_TTL)) {
      throw new BadRequest(`ttl: a whole number of seconds from 1 to ${MAX_DEMO_TTL}`);
    }
    const issued = await store.issue(username, { scope: SCOPE, ...(ttl === undefined ? {} : { ttl: ttl as number }) });
    res.status(201).json({ token: issued.token, jti: issued.jti, sub: issued.sub, expiresAt: issued.expiresAt });
  });

  app.get('/me', auth, requireScope('read'), (req, res) => {
    const { token: _token, ...rest } = authOf(req);
    res.json(rest);
  });

  app.get('/tokens', auth, async (req, res) => {
    const { sub, jti } = authOf(req);
    const tokens = await store.list(sub);
    res.json({ sub, tokens: tokens.map((t) => ({ ...t, current: t.jti === jti })) });
  });

  app.post('/logout', auth, async (req, res) => {
    // false only if the token died between verification and now; it is gone either way.
    await store.revoke(authOf(req).token);
    res.json({ revoked: true });
  });

  app.post('/logout-all', auth, async (req, res) => {
    res.json({ revoked: await store.revokeAll(authOf(req).sub) });
  });

  app.post('/tokens/:jti/revoke', auth, async (req, res) => {
    // Only one of the caller's own live tokens: anything else is "not found", never someone else's.
    const { sub } = authOf(req);
    const jti = String(req.params.jti);
    const mine = (await store.list(sub)).some((t) => t.jti === jti);
    if (!mine) {
      res.status(404).json({ error: 'not_found', error_description: 'no live token of yours with that jti' });
      return;
    }
    res.json({ revoked: await store.revoke(jti) });
  });

  // EventSource sends no Authorization header: the page trades its token for a ticket.
  app.post('/session/ticket', auth, (req, res) => {
    const { token, sub, jti } = authOf(req);
    res.status(201).set('Cache-Control', 'no-store').json(tickets.issue({ token, sub, jti }));
  });

  app.get('/events', (req, res, next) => {
    streamEvents(req, res, { store, lifecycle, tickets, recent, heartbeatMs }).catch(next);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', error_description: 'no such route' });
  });
  app.use(authErrorHandler());
  app.use(demoErrorHandler);
  return app;
}

function authOf(req: Request): AuthInfo {
  // bearerAuth ran before every handler that calls this; fail loudly if someone reorders them.
  if (!req.auth) throw new Error('bearerAuth did not run');
  return req.auth;
}

/** The last events of each user, as the lifecycle delivers them. */
function recentEvents(lifecycle: TokenLifecycle): Map<string, TokenEvent[]> {
  const recent = new Map<string, TokenEvent[]>();
  const record = (event: TokenEvent) => {
    const list = recent.get(event.sub) ?? [];
    recent.delete(event.sub); // re-inserted last: the map's order is least recently heard of first
    list.push(event);
    if (list.length > RECENT_PER_USER) list.shift();
    recent.set(event.sub, list);
    if (recent.size > RECENT_USERS) recent.delete(recent.keys().next().value!);
  };
  for (const type of EVENT_TYPES) lifecycle.on(type, record);
  return recent;
}

interface StreamContext {
  store: TokenStore;
  lifecycle: TokenLifecycle;
  tickets: TicketBook;
  recent: Map<string, TokenEvent[]>;
  heartbeatMs: number;
}

/**
 * `GET /events?ticket=…`: the lifecycle events of the ticket holder's own tokens (same
 * `sub`): the recent ones first, then live, for as long as the token the ticket was
 * bought with lives. It opens with
 * `event: session` `{ jti, sub, expiresAt }` (not `open`: EventSource fires its own
 * `open`); when that token expires or is revoked, its
 * event is sent, then `event: end` `{ reason: "expired" | "revoked" }`, and the server
 * ends the response: the session-expiry callback made visible. 401 for a ticket that is
 * unknown, used, or too old, or whose token no longer verifies.
 */
async function streamEvents(req: Request, res: Response, { store, lifecycle, tickets, recent, heartbeatMs }: StreamContext): Promise<void> {
  const holder: TicketHolder | undefined = tickets.redeem(req.query.ticket);
  if (holder === undefined) {
    res.status(401).set('Cache-Control', 'no-store').json({ error: 'invalid_ticket', error_description: 'ticket unknown, already used or expired: POST /session/ticket for a new one' });
    return;
  }
  const { token, sub } = holder;
  // Listen before verifying, so that an event arriving while Redis answers is not missed;
  // the recent ones, taken in the same tick, are exactly those before.
  const early: TokenEvent[] = [...(recent.get(sub) ?? [])];
  let deliver: (event: TokenEvent) => void = (event) => early.push(event);
  const listener = (event: TokenEvent) => {
    if (event.sub === sub) deliver(event);
  };
  for (const type of EVENT_TYPES) lifecycle.on(type, listener);
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const type of EVENT_TYPES) lifecycle.off(type, listener);
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
  res.write(`: connected\n\nevent: session\ndata: ${JSON.stringify({ jti, sub, expiresAt })}\n\n`);
  heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
  req.on('close', cleanup);
  res.on('close', cleanup);
  res.on('error', cleanup);

  deliver = (event) => {
    if (closed) return;
    if (res.writableLength > MAX_SSE_BACKLOG) {
      // A client this far behind is not reading: drop it rather than buffer without end.
      cleanup();
      res.destroy();
      return;
    }
    res.write(`event: ${event.type}\nid: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`);
    if (event.jti === jti && event.type !== 'issued') {
      cleanup();
      res.end(`event: end\ndata: ${JSON.stringify({ reason: event.type, ...(event.reason ? { detail: event.reason } : {}) })}\n\n`);
    }
  };
  for (const event of early) deliver(event);
}

/** Everything authErrorHandler leaves: bad bodies → 400, Redis down → 503, bugs → 500. JSON always. */
const demoErrorHandler: ErrorRequestHandler = (err, _req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof StoreUnavailableError) {
    res.status(503).set('Retry-After', '1').json({ error: 'service_unavailable', error_description: 'token store unavailable' });
    return;
  }
  // BadRequest, and body-parser's errors: malformed JSON, body too large, wrong charset…
  const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 500;
  if (status >= 400 && status < 500) {
    res.status(status).json({ error: 'invalid_request', error_description: err instanceof BadRequest || err.expose ? String(err.message) : 'invalid request' });
    return;
  }
  console.error(err);
  res.status(500).json({ error: 'server_error', error_description: 'internal error' });
};
