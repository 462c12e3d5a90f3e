// Throughput of the token operations — issue, first-sight verify, repeated-token
// verify, revoke — for this library and its peers, each set up as its own users run it.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { SignJWT, jwtVerify } from 'jose';
import type { Redis } from 'ioredis';
import { createClient } from 'redis';
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
/** Each issue signs in another user (a sign-in storm), the same subjects for every contender. */
let signIns = 0;
const nextUser = () => `user-${(signIns++).toString(36)}`;
const AUDIENCE = 'api';
const TTL = 900;

/** One contender: the four operations, as a user of that library would write them. */
export interface Contender {
  name: string;
  issue(): Promise<{ token: string; jti: string }>;
  /** Absent: the contender is measured on issue and revoke only. */
  verify?(token: string): Promise<unknown>;
  revoke(jti: string): Promise<unknown>;
  /**
   * Resolves once everything the operations so far caused has been handled in this
   * process (our lifecycle's events). Timed runs stop the clock only after it.
   */
  drained?(): Promise<void>;
  /** Starts what runs beside the operations (our lifecycle) before this contender's turn… */
  begin?(): Promise<void>;
  /** …and stops it after, so that no other contender's turn pays for it. */
  end?(): Promise<void>;
  close?(): Promise<void>;
}

/**
 * This library with the store's default options (the verified-token cache is on and
 * follows the journal on its own connection) and, unless `lifecycle: false`, a
 * `TokenLifecycle` in this process whose handlers consume every event, as an app
 * that uses the events runs it. `prefix` defaults to the store's ('tok:').
 */
export async function ours(redis: Redis, options: { lifecycle: boolean; prefix?: string; name?: string }): Promise<Contender> {
  const prefix = options.prefix === undefined ? {} : { prefix: options.prefix };
  const cache = process.env.BENCH_NO_CACHE ? { cache: false as const } : {};
  const store = new TokenStore({ redis, key: SECRET, issuer: ISSUER, audience: AUDIENCE, ...prefix, ...cache });
  let lifecycle: TokenLifecycle | undefined;
  // Events the operations caused while the lifecycle ran, and events its handlers got.
  let expected = 0;
  let handled = 0;
  let waiter: (() => void) | undefined;
  const onEvent = () => {
    handled++;
    if (waiter && handled >= expected) waiter();
  };
  const caused = () => { if (lifecycle) expected++; };
  return {
    name: options.name ?? 'this library',
    issue: async () => {
      const t = await store.issue(nextUser(), { scope: 'read write', clientId: 'web' });
      caused();
      return { token: t.token, jti: t.jti };
    },
    verify: (token) => store.verify(token),
    revoke: async (jti) => {
      const live = await store.revoke(jti);
      if (live) caused();
      return live;
    },
    ...(options.lifecycle ? {
      begin: async () => {
        // A new listener per turn: broadcast delivery starts at its start, so the
        // untimed pools issued between turns are not delivered later, inside a timed run.
        expected = handled = 0;
        const l = new TokenLifecycle({ redis, ...prefix });
        l.on('error', () => {});
        for (const type of ['issued', 'expired', 'revoked'] as const) l.on(type, onEvent);
        await l.start();
        lifecycle = l;
      },
      drained: async () => {
        if (handled >= expected) return;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`lifecycle handled ${handled} of ${expected} events within 60 s`)), 60_000);
          waiter = () => { clearTimeout(timer); waiter = undefined; resolve(); };
        });
      },
      end: async () => {
        await lifecycle?.stop();
        lifecycle = undefined;
        // The lifecycle merged its letters into notify-keyspace-events; the peers' users
        // run without them (the bench owns this server).
        await redis.config('SET', 'notify-keyspace-events', '');
      },
    } : {}),
    close: async () => { await store.close(); },
  };
}

function jwtRedisOps(jwtr: JwtRedis): Pick<Contender, 'issue' | 'verify' | 'revoke'> {
  const verifyOptions = { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE };
  return {
    issue: async () => {
      // The same claims as ours (RFC 9068), a 128-bit jti like ours.
      const jti = randomBytes(16).toString('base64url');
      const token = await jwtr.sign({ sub: nextUser(), scope: 'read write', client_id: 'web', jti }, SECRET,
        { expiresIn: TTL, issuer: ISSUER, audience: AUDIENCE, header: { typ: 'at+jwt' } });
      return { token, jti };
    },
    verify: (token) => jwtr.verify(token, SECRET, verifyOptions),
    revoke: (jti) => jwtr.destroy(jti),
  };
}

/**
 * jwt-redis 7 as its README sets it up: `redis.createClient()` (node-redis v4), `await
 * client.connect()`, `new JWTR(client)` with its default prefix. node-redis pipelines the
 * commands of one tick by itself.
 */
export async function jwtRedisOnNodeRedis(url: string): Promise<Contender> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return {
    name: 'jwt-redis',
    ...jwtRedisOps(new JWTR(client)),
    close: async () => { await client.quit(); },
  };
}

/** jwt-redis 7 on an ioredis connection (auto-pipelining) through a 4-line adapter: the figure earlier runs reported. */
export function jwtRedisOnIoredis(redis: Redis): Contender {
  const adapter = {
    set: (key: string, value: string, options?: { EX?: number }) => (options?.EX ? redis.set(key, value, 'EX', options.EX) : redis.set(key, value)),
    get: (key: string) => redis.get(key),
    del: (key: string) => redis.del(key),
  };
  return { name: 'jwt-redis (ioredis adapter)', ...jwtRedisOps(new JWTR(adapter, { prefix: `jr${randomBytes(3).toString('hex')}:` })) };
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
        .setSubject(nextUser()).setJti(jti).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime(`${TTL}s`).sign(key);
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

/**
 * Runs `op(i)` for i in 0..count-1 with `concurrency` in flight; resolves with operations
 * per second. With `until`, the clock stops only once it has resolved too.
 */
export async function throughput(count: number, concurrency: number, op: (i: number) => Promise<unknown>, until?: () => Promise<void>): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) await op(i);
  }));
  await until?.();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return count / seconds;
}

/** Issues `count` tokens (untimed), 64 at a time, and lets their events be handled. */
export async function pool(contender: Contender, count: number): Promise<{ token: string; jti: string }[]> {
  const out: { token: string; jti: string }[] = new Array(count);
  await throughput(count, 64, async (i) => { out[i] = await contender.issue(); }, contender.drained);
  return out;
}
