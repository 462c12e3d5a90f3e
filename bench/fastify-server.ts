// Child process of the HTTP bench: one Fastify route, GET /me, guarded as MODE says —
// `none` (no auth) or `bearer` (the `bearerAuth` onRequest hook over a store with
// default options: the verified-token cache is on). Prints `{ port, token }` once listening.
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { TokenStore } from '../lib/index.js';
import { bearerAuth } from '../lib/fastify/index.js';
import { SECRET } from './ops.js';

const mode = process.env.MODE ?? 'none';
// As the README's quick start makes them: a plain client, a store with default options.
const redis = new Redis(Number(process.env.REDIS_PORT), '127.0.0.1');
const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
const { token } = await store.issue('alice', { scope: 'read write' });

const app = Fastify();
const handler = async (request: { auth?: { sub: string } }) => ({ sub: request.auth?.sub ?? 'anonymous' });
if (mode === 'none') {
  app.get('/me', handler);
} else {
  app.get('/me', { onRequest: bearerAuth(store) }, handler);
}
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port), token })}\n`);
process.on('SIGTERM', () => process.exit(0));
