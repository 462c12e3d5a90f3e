// Child process of the HTTP bench: one Express route, GET /me, guarded as MODE says —
// `none` (no auth), `jose` (jose signature and claims only, no Redis), `bearer`
// (bearerAuth over a store with default options: the verified-token cache is on),
// `bearer-nocache` (the same with `cache: false`: every request asks Redis).
// Prints `{ port, token }` once listening.
import express from 'express';
import { jwtVerify } from 'jose';
import { Redis } from 'ioredis';
import { TokenStore } from '../lib/index.js';
import { bearerAuth, authErrorHandler } from '../lib/express/index.js';
import { SECRET } from './ops.js';

const mode = process.env.MODE ?? 'none';
// As the README's quick start makes them: a plain client, a store with default options.
const redis = new Redis(Number(process.env.REDIS_PORT), '127.0.0.1');
const store = mode === 'bearer'
  ? new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' })
  : new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', prefix: `http${process.pid}:`, cache: false });
const { token } = await store.issue('alice', { scope: 'read write' });
const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);

const app = express();
app.disable('x-powered-by');
app.disable('etag');
const handler: express.RequestHandler = (req, res) => { res.json({ sub: req.auth?.sub ?? 'anonymous' }); };
if (mode === 'none') {
  app.get('/me', handler);
} else if (mode === 'jose') {
  app.get('/me', (req, res, next) => {
    const header = req.headers.authorization ?? '';
    jwtVerify(header.slice(7), key, { algorithms: ['HS256'], issuer: 'https://issuer.bench', typ: 'at+jwt' })
      .then(({ payload }) => { req.auth = { token: '', jti: payload.jti!, sub: payload.sub!, expiresAt: payload.exp! * 1000, claims: payload }; next(); }, () => res.status(401).end());
  }, handler);
} else {
  app.get('/me', bearerAuth(store), handler);
}
app.use(authErrorHandler());
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port: address.port, token })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
