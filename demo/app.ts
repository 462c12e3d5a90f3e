// The demo app: sign in, call a protected route, log out, and watch every token's
// lifecycle (issued, expired, revoked) arrive live over Server-Sent Events.
import { fileURLToPath } from 'node:url';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { StoreUnavailableError, TokenError, type TokenEvent, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import { authErrorHandler, bearerAuth, introspection, jwks, requireScope, revocation, type AuthInfo } from '../lib/express/index.js';

export interface DemoAppOptions {
  store: TokenStore;
  /** Must be started by the caller (and on the store's prefix) for /events to carry anything. */
  lifecycle: TokenLifecycle;
  /** Milliseconds between SSE comment heartbeats, which keep proxies from closing idle streams. @default 15000 */
  heartbeatMs?: number;
}

/** Longest lifetime a demo user may ask for, in seconds (one day). */
export const MAX_DEMO_TTL = 86_400;
const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const REALM = 'redis-token-lifecycle-demo';
const SCOPE = 'read write';
/** An SSE client this far behind is not reading: drop it rather than buffer without end. */
const MAX_SSE_BACKLOG = 1024 * 1024;
const EVENT_TYPES = ['issued', 'expired', 'revoked'] as const;

/** A 400 for request bodies the demo refuses, rendered like the library's errors. */
class BadRequest extends Error {
  readonly status = 400;
}

/**
 * Builds the demo's Express app. It never starts or stops the store, the lifecycle
 * or Redis: the caller owns them.
 */
export function createDemoApp({ store, lifecycle, heartbeatMs = 15_000 }: DemoAppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    // The page loads its script and styles from this origin only: no inline code to inject into.
    res.set({ 'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'", 'X-Content-Type-Options': 'nosniff' });
    next();
  });
  app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url)), { index: 'index.html' }));
  // Standard endpoints. `authorize: false` because this is a demo: a real server checks
  // the calling client (RFC 7662 §2.1, RFC 7009 §2.1). They parse their own form bodies.
  app.post('/oauth/introspect', introspection(store, { authorize: false, realm: REALM }));
  app.post('/oauth/revoke', revocation(store, { authorize: false, realm: REALM }));
  app.get('/.well-known/jwks.json', jwks(store));
  app.use(express.json({ limit: '4kb' }));

  const auth = bearerAuth(store, { realm: REALM });

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

  app.get('/events', (req, res) => streamEvents(req, res, lifecycle, heartbeatMs));

  app.get('/session', (req, res, next) => {
    streamSession(req, res, store, lifecycle, heartbeatMs).catch(next);
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

/** `GET /events`: one SSE message per lifecycle event, until the client goes away. */
function streamEvents(req: Request, res: Response, lifecycle: TokenLifecycle, heartbeatMs: number): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no', // nginx: do not buffer the stream
  });
  // A first line at once, so that clients (and tests) know the stream is open.
  res.write(': connected\nretry: 2000\n\n');

  const send = (event: TokenEvent) => {
    if (res.writableLength > MAX_SSE_BACKLOG) {
      res.destroy();
      return;
    }
    res.write(`event: ${event.type}\nid: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`);
  };
  for (const type of EVENT_TYPES) lifecycle.on(type, send);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);

  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const type of EVENT_TYPES) lifecycle.off(type, send);
  };
  req.on('close', cleanup);
  res.on('close', cleanup);
  res.on('error', cleanup);
}

/**
 * `GET /session?token=…`: a stream bound to one token, closed by the server when the
 * lifecycle reports that token `expired` or `revoked` (a final `event: end` with
 * `{ "reason": "expired" | "revoked" }`, then the end of the response). EventSource cannot
 * send headers, hence the query parameter. 401 for a token that does not verify.
 */
async function streamSession(req: Request, res: Response, store: TokenStore, lifecycle: TokenLifecycle, heartbeatMs: number): Promise<void> {
  const token = req.query.token;
  if (typeof token !== 'string' || token.length === 0 || token.length > 8192) {
    res.status(401).json({ error: 'invalid_token', error_description: 'a token query parameter is required' });
    return;
  }
  // Listen before verifying, so that an end arriving while Redis answers is not missed.
  const early: TokenEvent[] = [];
  let onEnd: (event: TokenEvent) => void = (event) => early.push(event);
  const listener = (event: TokenEvent) => onEnd(event);
  lifecycle.on('expired', listener);
  lifecycle.on('revoked', listener);
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    lifecycle.off('expired', listener);
    lifecycle.off('revoked', listener);
  };

  let jti: string;
  let expiresAt: number;
  try {
    ({ jti, expiresAt } = await store.verify(token));
  } catch (err) {
    cleanup();
    if (err instanceof TokenError) {
      res.status(401).json({ error: 'invalid_token', error_description: err.message });
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
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(`: connected\nretry: 2000\n\nevent: open\ndata: ${JSON.stringify({ jti, expiresAt })}\n\n`);
  heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
  req.on('close', cleanup);
  res.on('close', cleanup);
  res.on('error', cleanup);

  onEnd = (event) => {
    if (event.jti !== jti || closed) return;
    cleanup();
    res.end(`event: end\ndata: ${JSON.stringify({ reason: event.type, ...(event.reason ? { detail: event.reason } : {}) })}\n\n`);
  };
  for (const event of early) onEnd(event);
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
