// Throughput of the token operations — issue, first-sight verify, repeated-token
// verify, revoke — for this library and its peers, at a given concurrency.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { SignJWT, jwtVerify } from 'jose';
import type { Redis } from 'ioredis';
import { TokenLifecycle, TokenStore } from '../lib/index.js';

const require = createRequire(import.meta.url);
// jwt-redis is CommonJS with a default export.
const JWTR = (require('jwt-redis') as { default: new (client: unknown, options?: { prefix?: string }) => JwtRedis }).default;

interface JwtRedis {
  sign(payload: Record<string, unknown>, secret: string, options?: Record<string, unknown>): Promise<string>;
  verify(token: string, secret: string, options?: Record<string, unknown>): Promise<Record<string, unknown>>;
  destroy(jti: string): Promise<boolean>;
}

export const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const ISSUER = 'https://issuer.bench';
const AUDIENCE = 'api';
const TTL = 900;

/** One contender: the four operations, as a user of that library would write them. */
export interface Contender {
  name: string;
  issue(): Promise<{ token: string; jti: string }>;
  verify(token: string): Promise<unknown>;
  revoke(jti: string): Promise<unknown>;
  /** Issues a token for the verify runs, when they use another store than `issue`. */
  issueForVerify?(): Promise<{ token: string; jti: string }>;
  /** Waits until background work caused by issuing (events) is done. */
  settle?(): Promise<void>;
  close?(): Promise<void>;
}

/**
 * This library. Issue and revoke on a store alone (what those operations cost; the
 * listener's cost per event is its own row); verify through a store whose cache a
 * lifecycle of this process feeds, on a second prefix.
 */
export async function ours(redis: Redis, options: { cache: boolean }): Promise<Contender & { lifecycle?: TokenLifecycle }> {
  const tag = randomBytes(3).toString('hex');
  const base = { redis, key: SECRET, issuer: ISSUER, audience: AUDIENCE, ttl: TTL };
  const writer = new TokenStore({ ...base, prefix: `ours${tag}:` });
  const verifyPrefix = `oursv${tag}:`;
  let lifecycle: TokenLifecycle | undefined;
  let seen = 0;
  if (options.cache) {
    lifecycle = new TokenLifecycle({ redis, prefix: verifyPrefix });
    lifecycle.on('error', () => {});
    lifecycle.on('issued', () => { seen++; });
    await lifecycle.start();
  }
  // The cache is on by default (it follows the journal itself); the no-cache contender turns it off.
  const reader = new TokenStore({ ...base, prefix: verifyPrefix, ...(options.cache ? {} : { cache: false as const }) });
  let issued = 0;
  return {
    name: options.cache ? 'this library' : 'this library (no cache)',
    lifecycle,
    issue: async () => {
      const t = await writer.issue('alice', { scope: 'read write', clientId: 'web' });
      return { token: t.token, jti: t.jti };
    },
    issueForVerify: async () => {
      issued++;
      const t = await reader.issue('alice', { scope: 'read write', clientId: 'web' });
      return { token: t.token, jti: t.jti };
    },
    settle: async () => {
      // Let the lifecycle deliver the `issued` events of the pool before anything is timed.
      const deadline = Date.now() + 30_000;
      while (lifecycle && seen < issued && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    },
    verify: (token) => reader.verify(token),
    revoke: (jti) => writer.revoke(jti),
    close: async () => { await lifecycle?.stop(); },
  };
}

/** jwt-redis 7 (jsonwebtoken + one Redis label per token), on the same ioredis connection through a 4-line adapter. */
export function jwtRedis(redis: Redis): Contender {
  const adapter = {
    set: (key: string, value: string, options?: { EX?: number }) => (options?.EX ? redis.set(key, value, 'EX', options.EX) : redis.set(key, value)),
    get: (key: string) => redis.get(key),
    del: (key: string) => redis.del(key),
  };
  const jwtr = new JWTR(adapter, { prefix: `jr${randomBytes(3).toString('hex')}:` });
  const verifyOptions = { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE };
  return {
    name: 'jwt-redis',
    issue: async () => {
      const jti = randomBytes(16).toString('base64url');
      const token = await jwtr.sign({ sub: 'alice', scope: 'read write', client_id: 'web', jti }, SECRET,
        { expiresIn: TTL, issuer: ISSUER, audience: AUDIENCE, header: { typ: 'at+jwt' } });
      return { token, jti };
    },
    verify: (token) => jwtr.verify(token, SECRET, verifyOptions),
    revoke: (jti) => jwtr.destroy(jti),
  };
}

/** The hand-written baseline: jose with an imported CryptoKey, SET … EX on issue, EXISTS on verify, DEL on revoke. */
export async function joseBaseline(redis: Redis): Promise<Contender> {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  const prefix = `jb${randomBytes(3).toString('hex')}:`;
  return {
    name: 'jose + ioredis',
    issue: async () => {
      const jti = randomBytes(16).toString('base64url');
      const sign = new SignJWT({ scope: 'read write', client_id: 'web' }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setSubject('alice').setJti(jti).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime(`${TTL}s`).sign(key);
      const [token] = await Promise.all([sign, redis.set(prefix + jti, '1', 'EX', TTL)]);
      return { token, jti };
    },
    verify: async (token) => {
      const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt' });
      if ((await redis.exists(prefix + (payload.jti as string))) === 0) throw new Error('revoked');
      return payload;
    },
    revoke: (jti) => redis.del(prefix + jti),
  };
}

/** Runs `op(i)` for i in 0..count-1 with `concurrency` in flight; resolves with operations per second. */
export async function throughput(count: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) await op(i);
  }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return count / seconds;
}

/** Issues `count` tokens (untimed), 64 at a time. */
export async function pool(contender: Contender, count: number, forVerify = false): Promise<{ token: string; jti: string }[]> {
  const out: { token: string; jti: string }[] = new Array(count);
  const issue = forVerify && contender.issueForVerify ? contender.issueForVerify : contender.issue;
  await throughput(count, 64, async (i) => { out[i] = await issue(); });
  await contender.settle?.();
  return out;
}
