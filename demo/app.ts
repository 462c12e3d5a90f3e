// The demo app: sign in (a session: an access token and a refresh token), refresh at
// /oauth/token, call a protected route, see your sessions as devices, log out, and watch
// your tokens' and sessions' lifecycle arrive live over Server-Sent Events.
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type Request } from 'express';
import { StoreUnavailableError, type SessionDevice, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import { authErrorHandler, bearerAuth, introspection, jwks, requireScope, revocation, tokenEndpoint, type AuthInfo } from '../lib/express/index.js';
import { EventFeed, streamEvents } from './events.js';
import { TicketBook } from './tickets.js';

export interface DemoAppOptions {
  /** Its `sessions` options (e.g. a short `refreshGrace` in tests) are the demo's. */
  store: TokenStore;
  /** Must be started by the caller (and on the store's prefix) for /events to carry anything. */
  lifecycle: TokenLifecycle;
  /** Milliseconds between SSE comment heartbeats, which keep proxies from closing idle streams. @default 15000 */
  heartbeatMs?: number;
  /** The one-time tickets that open `/events` (tests pass one with their own clock). @default a new TicketBook */
  tickets?: TicketBook;
  /** The events `/events` streams, by user (tests pass one to count its streams). @default a new EventFeed on `lifecycle` */
  feed?: EventFeed;
  /**
   * Serves `GET /metrics` in the Prometheus text format: an `@opentelemetry/exporter-prometheus`
   * `PrometheusExporter` made with `preventServerStart: true` and registered (as a reader of
   * the global MeterProvider) by the caller. @default no /metrics route
   */
  metrics?: { getMetricsRequestHandler(req: IncomingMessage, res: ServerResponse): void };
}

/** Longest lifetime a demo user may ask for, in seconds (one day). */
export const MAX_DEMO_TTL = 86_400;
/** The demo page's OAuth client: a public one (a browser keeps no secret), so `/oauth/token` does not authenticate it. */
export const DEMO_CLIENT_ID = 'redis-token-lifecycle-demo';
const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
/** A device's name: 1 to 64 characters, none of them a control, format or separator-line character. */
const LABEL = /^[^\p{C}\p{Zl}\p{Zp}]{1,64}$/u;
const REALM = 'redis-token-lifecycle-demo';
const SCOPE = 'read write';

/** A 400 for request bodies the demo refuses, rendered like the library's errors. */
class BadRequest extends Error {
  readonly status = 400;
}

/**
 * Builds the demo's Express app. It never starts or stops the store, the lifecycle
 * or Redis: the caller owns them.
 */
export function createDemoApp({ store, lifecycle, heartbeatMs = 15_000, tickets = new TicketBook(), feed, metrics }: DemoAppOptions): express.Express {
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
  // RFC 6749 §6: the page trades its refresh token for a new pair. The page is a public
  // client: it sends its client_id and no secret (RFC 6749 §2.1).
  app.all('/oauth/token', tokenEndpoint(store, { authorize: false, realm: REALM }));
  app.all('/.well-known/jwks.json', jwks(store));
  // Open, as a demo's may be: a real server keeps /metrics off the public listener.
  if (metrics) app.get('/metrics', (req, res) => metrics.getMetricsRequestHandler(req, res));
  app.use(express.json({ limit: '4kb' }));

  const auth = bearerAuth(store, { realm: REALM });
  const events = feed ?? new EventFeed(lifecycle);

  app.post('/login', async (req, res) => {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequest('expected a JSON object body: { "username": "...", "ttl": 60 }');
    }
    const { username, ttl, label } = body as Record<string, unknown>;
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      throw new BadRequest('username: 1 to 64 characters among letters, digits and _ . @ -');
    }
    if (ttl !== undefined && (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_DEMO_TTL)) {
      throw new BadRequest(`ttl: a whole number of seconds from 1 to ${MAX_DEMO_TTL}`);
    }
    if (label !== undefined && (typeof label !== 'string' || !LABEL.test(label) || label.trim() !== label)) {
      throw new BadRequest('label: 1 to 64 printable characters, no leading or trailing space');
    }
    // The device as this request shows it: the socket's address (no proxy is trusted).
    const device: SessionDevice = {};
    const userAgent = req.get('user-agent');
    if (userAgent) device.userAgent = userAgent.slice(0, 512);
    if (req.ip) device.ip = req.ip;
    if (label !== undefined) device.label = label as string;
    const session = await store.startSession(username, { scope: SCOPE, clientId: DEMO_CLIENT_ID, device, ...(ttl === undefined ? {} : { ttl: ttl as number }) });
    // Tokens in the answer: never cached (RFC 6749 §5.1).
    res.status(201).set('Cache-Control', 'no-store').json({
      token: session.token, jti: session.jti, sub: session.sub, expiresAt: session.expiresAt, sid: session.sid, refresh_token: session.refreshToken,
    });
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
    // A session's token: the session ends (reason `logout`), with every token it issued.
    const sid = sidOf(req);
    if (sid) {
      res.json({ revoked: await store.revokeSession(sid, 'logout') });
      return;
    }
    // false only if the token died between verification and now; it is gone either way.
    await store.revoke(authOf(req).token);
    res.json({ revoked: true });
  });

  // The caller's sessions, as devices; `current` marks the one the presented token belongs to.
  app.get('/sessions', auth, async (req, res) => {
    const { sub } = authOf(req);
    const sid = sidOf(req);
    const sessions = await store.sessions(sub);
    res.set('Cache-Control', 'no-store').json({ sub, sid: sid ?? null, sessions: sessions.map((s) => ({ ...s, current: s.sid === sid })) });
  });

  // "Log out other devices": every session of the caller but this one ends, with its tokens.
  app.post('/sessions/logout-others', auth, async (req, res) => {
    const sid = sidOf(req);
    if (!sid) throw new BadRequest('this token belongs to no session (sign in with POST /login): there is no "this device" to keep');
    res.json({ revoked: await store.revokeAll(authOf(req).sub, { except: sid }) });
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
    const sid = sidOf(req);
    res.status(201).set('Cache-Control', 'no-store').json(tickets.issue({ token, sub, jti, ...(sid ? { sid } : {}) }));
  });

  app.get('/events', (req, res, next) => {
    streamEvents(req, res, { store, feed: events, tickets, heartbeatMs }).catch(next);
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

/** The session the presented token belongs to (its `sid` claim), if any. */
function sidOf(req: Request): string | undefined {
  const sid = authOf(req).claims.sid;
  return typeof sid === 'string' ? sid : undefined;
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
