// The verified-token cache: hits skip Redis; a revocation anywhere, a dropped
// subscription or `exp` ends them; only the exact token string that was verified hits.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Redis } from 'ioredis';
import { ConfigError, TokenError, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import { TokenCache } from '../lib/cache.js';
import { KeySchema } from '../lib/keys.js';
import express from 'express';
import request from 'supertest';
import { bearerAuth, authErrorHandler } from '../lib/express/index.js';
import { SECRET, useRedis } from './support/fixture.js';

/** Calls of one command since the server started, from INFO commandstats. */
async function calls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

function waitFor<T>(lifecycle: TokenLifecycle, event: 'revoked' | 'sync', test: (value: T) => boolean, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms);
    const listener = (value: T) => {
      if (!test(value)) return;
      clearTimeout(timer);
      lifecycle.off(event, listener as never);
      resolve(value);
    };
    lifecycle.on(event, listener as never);
  });
}

async function refusal(store: TokenStore, token: string): Promise<string | undefined> {
  try {
    await store.verify(token);
    return undefined;
  } catch (err) {
    expect(err).to.be.instanceOf(TokenError);
    return (err as TokenError).code;
  }
}

describe('verified-token cache', () => {
  const fx = useRedis();

  /**
   * A store with a cache, on a connection of its own whose EXISTS calls are counted here
   * (the server's count would include the lifecycle's own scripts).
   */
  async function cached(options: { maxEntries?: number } = {}) {
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    expect(lifecycle.synced).to.equal(true);
    const client = fx.server.client();
    const asked = { lookups: 0 };
    const mget = client.mget.bind(client);
    client.mget = ((...args: Parameters<typeof mget>) => {
      asked.lookups++;
      return mget(...args);
    }) as typeof client.mget;
    const store = fx.store({ redis: client, cache: { lifecycle, ...options } });
    return { lifecycle, store, asked };
  }

  it('answers a repeated token without Redis, and a store without a cache asks every time', async () => {
    const { store, asked } = await cached();
    const plain = fx.store();
    const { token, jti } = await store.issue('alice', { scope: 'read' });
    const first = await store.verify(token);
    const before = await calls(fx.redis, 'mget');
    for (let i = 0; i < 200; i++) {
      const v = await store.verify(token);
      expect(v.jti).to.equal(jti);
      expect(v.claims).to.deep.equal(first.claims);
    }
    expect(await calls(fx.redis, 'mget')).to.equal(before);
    expect(asked.lookups).to.equal(1);
    for (let i = 0; i < 20; i++) await plain.verify(token);
    expect(await calls(fx.redis, 'mget')).to.equal(before + 20);
  });

  it('stops passing a token revoked by another store within the event latency', async () => {
    const { store, lifecycle } = await cached();
    const other = fx.store({ redis: fx.server.client() });
    const { token, jti } = await store.issue('alice');
    await store.verify(token);
    await store.verify(token); // a hit from here on
    const revoked = waitFor<{ jti: string }>(lifecycle, 'revoked', (e) => e.jti === jti);
    const start = performance.now();
    expect(await other.revoke(jti)).to.equal(true);
    await revoked;
    const latency = performance.now() - start;
    expect(await refusal(store, token)).to.equal('ERR_TOKEN_REVOKED');
    expect(latency).to.be.below(1000);
  });

  it('lets bearerAuth pass a cached token without calling verify, with the same req.auth; a revoked one is refused', async () => {
    const { store, lifecycle } = await cached();
    const verify = store.verify.bind(store);
    let verifies = 0;
    store.verify = (token: string) => {
      verifies++;
      return verify(token);
    };
    const app = express();
    app.get('/me', bearerAuth(store), (req, res) => { res.json(req.auth); });
    app.use(authErrorHandler());
    const { token, jti } = await store.issue('alice', { scope: 'read' });
    const first = await request(app).get('/me').set('Authorization', `Bearer ${token}`);
    expect([first.status, verifies]).to.deep.equal([200, 1]);
    const again = await request(app).get('/me').set('Authorization', `bearer  ${token}`);
    expect([again.status, verifies], 'answered from the cache').to.deep.equal([200, 1]);
    expect(again.body).to.deep.equal(first.body);
    expect(Object.keys(again.body)).to.deep.equal(['token', 'jti', 'sub', 'expiresAt', 'claims']);
    const malformed = await request(app).get('/me').set('Authorization', `Bearer ${token} x`);
    expect([malformed.status, verifies], 'a malformed header is still refused').to.deep.equal([400, 1]);
    const revoked = waitFor<{ jti: string }>(lifecycle, 'revoked', (e) => e.jti === jti);
    await store.revoke(jti);
    await revoked;
    const refused = await request(app).get('/me').set('Authorization', `Bearer ${token}`);
    expect([refused.status, verifies]).to.deep.equal([401, 2]);
    expect(refused.headers['www-authenticate']).to.match(/error="invalid_token"/);
  });

  it('is emptied and unused while the subscription is down, and used again once synced', async () => {
    const { store, lifecycle, asked } = await cached();
    const { token } = await store.issue('alice');
    await store.verify(token);
    const before = asked.lookups;
    await store.verify(token);
    expect(asked.lookups).to.equal(before);

    const lost = waitFor<boolean>(lifecycle, 'sync', (v) => v === false);
    await fx.redis.client('KILL', 'TYPE', 'pubsub');
    await lost;
    // While not synced every verify goes to Redis, and nothing is remembered.
    const down = asked.lookups;
    if (!lifecycle.synced) {
      await store.verify(token);
      expect(asked.lookups).to.equal(down + 1);
    }
    await (lifecycle.synced ? Promise.resolve(true) : waitFor<boolean>(lifecycle, 'sync', (v) => v === true));
    // The first verify after the resync asks Redis (the cache was dropped), the next ones do not.
    const resynced = asked.lookups;
    await store.verify(token);
    expect(asked.lookups).to.equal(resynced + 1);
    for (let i = 0; i < 10; i++) await store.verify(token);
    expect(asked.lookups).to.equal(resynced + 1);
  });

  it('never serves an expired token', async function () {
    this.timeout(10_000);
    const { store } = await cached();
    const { token, expiresAt } = await store.issue('alice', { ttl: 1 });
    await store.verify(token);
    await store.verify(token);
    // A timer can fire a millisecond before Date.now() reaches its target: wait for the clock itself.
    while (Date.now() < expiresAt) await new Promise((r) => setTimeout(r, expiresAt - Date.now() + 1));
    expect(await refusal(store, token)).to.equal('ERR_TOKEN_EXPIRED');
  });

  it('does not take another spelling of the same jti for a hit', async () => {
    const { store, asked } = await cached();
    const { token, jti, claims } = await store.issue('alice');
    await store.verify(token);
    const before = asked.lookups;
    // The same claims, signed with the right key under a header with its members reordered:
    // a valid token, but another string, so it is verified in full.
    const respelled = await new SignJWT(claims).setProtectedHeader({ typ: 'at+jwt', alg: 'HS256' } as never).sign(new TextEncoder().encode(SECRET));
    expect(respelled).to.not.equal(token);
    expect((await store.verify(respelled)).jti).to.equal(jti);
    expect(asked.lookups).to.equal(before + 1);
    // And a forgery naming the cached jti is refused, whatever the cache holds.
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(randomBytes(32));
    expect(await refusal(store, forged)).to.equal('ERR_TOKEN_SIGNATURE');
  });

  it('refuses bad options, naming them', async () => {
    const lifecycle = fx.lifecycle();
    const bad: [unknown, string][] = [
      [null, 'cache'],
      [{}, 'cache.lifecycle'],
      [{ lifecycle: {} }, 'cache.lifecycle'],
      [{ lifecycle, maxEntries: 0 }, 'cache.maxEntries'],
      [{ lifecycle, maxEntries: 1.5 }, 'cache.maxEntries'],
      [{ lifecycle, maxEntries: '10' }, 'cache.maxEntries'],
      [{ lifecycle: fx.lifecycle({ prefix: 'elsewhere:' }) }, 'cache.lifecycle'],
      [{ lifecycle: fx.lifecycle({ group: 'g' } as never) }, 'cache.lifecycle'],
    ];
    for (const [cache, option] of bad) {
      let err: unknown;
      try {
        fx.store({ cache: cache as never });
      } catch (e) {
        err = e;
      }
      expect(err, option).to.be.instanceOf(ConfigError);
      expect((err as ConfigError).option).to.equal(option);
    }
  });
});

describe('TokenCache (unit)', () => {
  function fake() {
    const listeners = new Map<string, ((v: never) => unknown)[]>();
    return {
      synced: true,
      prefix: 'tok:',
      buckets: 16,
      deliveryMode: 'journal' as const,
      group: undefined,
      on(name: string, l: (v: never) => unknown) { listeners.set(name, [...(listeners.get(name) ?? []), l]); return this; },
      off(name: string, l: (v: never) => unknown) { listeners.set(name, (listeners.get(name) ?? []).filter((x) => x !== l)); return this; },
      emit(name: string, value: unknown) { for (const l of listeners.get(name) ?? []) l(value as never); },
    };
  }
  const keys = new KeySchema('tok:', 16);
  const info = (jti: string, ms = 60_000) => ({ jti, sub: 'a', expiresAt: Date.now() + ms, claims: { jti, sub: 'a', nested: { x: 1 } } });

  it('keeps out a verification that a revocation overtook', () => {
    const lc = fake();
    const cache = new TokenCache({ lifecycle: lc }, keys);
    const mark = cache.mark();
    lc.emit('revoked', { jti: 'j1' });
    cache.add('t1', info('j1'), mark);
    expect(cache.get('t1')).to.equal(undefined);
    // A revocation of another jti does not.
    const mark2 = cache.mark();
    lc.emit('revoked', { jti: 'other' });
    cache.add('t2', info('j2'), mark2);
    expect(cache.get('t2')?.jti).to.equal('j2');
  });

  it('drops every spelling of a revoked jti, and everything when sync is lost', () => {
    const lc = fake();
    const cache = new TokenCache({ lifecycle: lc }, keys);
    cache.add('a1', info('ja'), cache.mark());
    cache.add('a2', info('ja'), cache.mark());
    cache.add('b1', info('jb'), cache.mark());
    lc.emit('revoked', { jti: 'ja' });
    expect([cache.get('a1'), cache.get('a2')]).to.deep.equal([undefined, undefined]);
    expect(cache.get('b1')?.jti).to.equal('jb');
    const mark = cache.mark();
    lc.synced = false;
    lc.emit('sync', false);
    expect(cache.size).to.equal(0);
    cache.add('c1', info('jc'), cache.mark());
    expect(cache.size).to.equal(0);
    lc.synced = true;
    lc.emit('sync', true);
    cache.add('c1', info('jc'), mark); // begun before the drop
    expect(cache.get('c1')).to.equal(undefined);
  });

  it('expires entries by exp, holds at most maxEntries (least recently used goes), freezes claims', async () => {
    const lc = fake();
    const cache = new TokenCache({ lifecycle: lc, maxEntries: 4 }, keys);
    cache.add('short', info('js', 30), cache.mark());
    expect(cache.get('short')?.jti).to.equal('js');
    await new Promise((r) => setTimeout(r, 40));
    expect(cache.get('short')).to.equal(undefined);
    cache.add('x', info('jx'), cache.mark());
    cache.add('y', info('jy'), cache.mark());
    cache.get('x');
    cache.add('z', info('jz'), cache.mark());
    cache.add('w', info('jw'), cache.mark());
    expect(cache.size).to.be.at.most(4);
    expect(cache.get('y')).to.equal(undefined);
    for (let i = 0; i < 1000; i++) cache.add(`t${i}`, info(`j${i}`), cache.mark());
    expect(cache.size).to.be.at.most(4);
    expect((cache as unknown as { byJti: Map<string, unknown> }).byJti.size).to.equal(cache.size);
    // Dropped tokens leave no trace in the jti index: a revocation of them is a no-op.
    lc.emit('revoked', { jti: 'j5' });
    cache.add('x', info('jx'), cache.mark());
    const hit = cache.get('x')!;
    expect(Object.isFrozen(hit.claims) && Object.isFrozen(hit.claims.nested)).to.equal(true);
    cache.close();
    expect(cache.size).to.equal(0);
  });
});
