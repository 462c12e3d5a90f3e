// The verified-token cache, on by default: hits skip Redis; a revocation anywhere,
// a stalled link, a flushed database or `exp` ends them; only the exact token string
// that was verified hits; it never fails open.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { Redis } from 'ioredis';
import express from 'express';
import request from 'supertest';
import { ConfigError, TokenStore } from '../lib/index.js';
import { TokenCache, cacheOptions, type Freshness } from '../lib/tokens/cache.js';
import { bearerAuth, authErrorHandler } from '../lib/express/index.js';
import { cacheOf, outcome, refusedAfterFlush, untilRefused, warm } from './support/verify.js';
import { SECRET, useRedis } from './support/fixture.js';
import { StallingProxy } from './support/proxy.js';
import { untilTime, waitFor } from './support/wait.js';


/** The store's cache, for white-box checks of its bounds. */

describe('verified-token cache', () => {
  const fx = useRedis();

  /** A store on a client of its own whose MGET calls (token lookups) are counted. */
  function counted(options: Parameters<typeof fx.store>[0] = {}) {
    const client = fx.server.client();
    const asked = { lookups: 0 };
    const mget = client.mget.bind(client);
    client.mget = ((...args: Parameters<typeof mget>) => {
      asked.lookups++;
      return mget(...args);
    }) as typeof client.mget;
    return { store: fx.store({ redis: client, ...options }), asked, client };
  }

  it('is on by default: a repeated token is answered without Redis; cache: false asks every time', async () => {
    const { store, asked } = counted();
    const { store: plain, asked: plainAsked } = counted({ cache: false });
    const { token, jti } = await store.issue('alice', { scope: 'read' });
    await warm(store, token);
    const first = await store.verify(token);
    const before = asked.lookups;
    for (let i = 0; i < 200; i++) {
      const v = await store.verify(token);
      expect(v.jti).to.equal(jti);
      expect(v.claims).to.deep.equal(first.claims);
    }
    expect(asked.lookups).to.equal(before);
    for (let i = 0; i < 20; i++) await plain.verify(token);
    expect(plainAsked.lookups).to.equal(20);
  });

  it('refuses at once a token this process revoked: revoke and revokeAll evict before they resolve (50 of 50)', async () => {
    const store = fx.store();
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => store.issue(i % 2 ? 'alice' : `user${i}`)));
    await warm(store, tokens[0]!.token);
    for (const { token } of tokens) await store.verify(token);
    expect(cacheOf(store).size).to.equal(50);
    const codes: string[] = [];
    for (const [i, { token, jti }] of tokens.entries()) {
      if (i % 2) continue;
      expect(await store.revoke(i % 4 ? token : jti)).to.equal(true);
      codes.push(await outcome(store, token));
    }
    expect(await store.revokeAll('alice')).to.equal(25);
    for (const [i, { token }] of tokens.entries()) if (i % 2) codes.push(await outcome(store, token));
    expect(codes).to.deep.equal(Array(50).fill('ERR_TOKEN_REVOKED'));
  });

  it('a verification in flight while this process revokes is not cached afterwards', async () => {
    const store = fx.store();
    const { token, jti } = await store.issue('alice');
    await warm(store, token);
    await store.revoke(jti); // evicted
    const { token: second, jti: jti2 } = await store.issue('bob');
    await warm(store, second);
    // Race a verification from scratch against the revocation, many times.
    for (let i = 0; i < 30; i++) {
      const t = await store.issue('carol');
      const [, revoked] = await Promise.all([store.verify(t.token).catch(() => {}), store.revoke(t.jti)]);
      expect(revoked).to.equal(true);
      expect(await outcome(store, t.token)).to.equal('ERR_TOKEN_REVOKED');
    }
    expect(await outcome(store, second)).to.equal('ok');
    expect(jti2).to.be.a('string');
  });

  it('stops passing a token revoked by another process well within maxStaleness', async () => {
    const store = fx.store();
    const other = fx.store({ redis: fx.server.client(), cache: false });
    const { token, jti } = await store.issue('alice');
    await warm(store, token);
    const refused = untilRefused(store, token, 1500);
    expect(await other.revoke(jti)).to.equal(true);
    const { ms, code } = await refused;
    expect(code).to.equal('ERR_TOKEN_REVOKED');
    expect(ms).to.be.below(1000);
  });

  it('a slow lifecycle handler in the same process does not delay a revocation reaching the cache', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    let slow = 0;
    lifecycle.on('issued', async () => { slow++; await new Promise((r) => setTimeout(r, 5000)); });
    await lifecycle.start();
    const { token, jti } = await store.issue('alice');
    await warm(store, token);
    await waitFor('the slow handler to be running', () => slow > 0, 2000, 5);
    expect(slow, 'the slow handler is running').to.equal(1);
    const other = fx.store({ redis: fx.server.client(), cache: false });
    const refused = untilRefused(store, token, 1500);
    await other.revoke(jti);
    const { ms, code } = await refused;
    expect(code).to.equal('ERR_TOKEN_REVOKED');
    expect(ms).to.be.below(1000);
  });

  it('a link that stalls without closing: a token revoked meanwhile stops passing within maxStaleness + 0.5 s, then verify fails closed (503)', async function () {
    this.timeout(20_000);
    const proxy = await StallingProxy.start(fx.server.port);
    let client: Redis | undefined;
    try {
      client = new Redis(proxy.port, '127.0.0.1');
      client.on('error', () => {});
      const maxStaleness = 1000;
      const store = fx.store({ redis: client, timeout: 300, cache: { maxStaleness } });
      const direct = fx.store({ redis: fx.server.client(), cache: false });
      const { token, jti } = await store.issue('alice');
      await warm(store, token);
      expect(await outcome(store, token)).to.equal('ok');
      proxy.stall();
      const stalledAt = performance.now();
      expect(await direct.revoke(jti)).to.equal(true);
      const revokedAfter = performance.now() - stalledAt;
      const { ms, code } = await untilRefused(store, token, maxStaleness + 2000);
      // Never a pass once revoked plus the bound, and it fails closed, not open.
      expect(code).to.equal('ERR_STORE_UNAVAILABLE');
      expect(ms + revokedAfter, `refused ${Math.round(ms)} ms after the revoke`).to.be.below(maxStaleness + 500);
      // And the answer stays closed while the link is stalled.
      expect(await outcome(store, token)).to.equal('ERR_STORE_UNAVAILABLE');
      proxy.resume();
      // Once the link is back, Redis says what is true.
      const deadline = Date.now() + 5000;
      let after = await outcome(store, token);
      while (after === 'ERR_STORE_UNAVAILABLE' && Date.now() < deadline) after = await outcome(store, token);
      expect(after).to.equal('ERR_TOKEN_REVOKED');
    } finally {
      await proxy.stop();
      client?.disconnect();
    }
  });

  it('after FLUSHALL, cached tokens stop passing within maxStaleness', async () => {
    const { ms, code } = await refusedAfterFlush(fx.redis, fx.store());
    expect(code).to.equal('ERR_TOKEN_REVOKED');
    expect(ms).to.be.below(1000);
  });

  it('a journal that is deleted drops the cache', async () => {
    const { store, asked } = counted();
    const { token } = await store.issue('alice');
    await warm(store, token);
    const logs = (await fx.redis.keys(`${store.keys.prefix}*:log`));
    expect(logs.length).to.be.greaterThan(0);
    await fx.redis.del(...logs);
    await waitFor('the cache to be dropped', () => cacheOf(store).size === 0, 1500);
    const before = asked.lookups;
    await store.verify(token);
    expect(asked.lookups).to.equal(before + 1);
  });

  it('holds at most maxBytes, by estimate, with large tokens', async () => {
    const maxBytes = 64 * 1024;
    const store = fx.store({ cache: { maxBytes } });
    const big = 'x'.repeat(4000);
    const tokens = await Promise.all(Array.from({ length: 60 }, () => store.issue('alice', { claims: { big } })));
    await warm(store, tokens[0]!.token);
    for (const { token } of tokens) await store.verify(token);
    const cache = cacheOf(store);
    expect(cache.bytes).to.be.at.most(maxBytes);
    expect(cache.size).to.be.greaterThan(0);
    expect(cache.size * 2 * tokens[0]!.token.length).to.be.at.most(maxBytes);
  });

  it('lets bearerAuth pass a cached token without calling verify, with the same req.auth; a revoked one is refused', async () => {
    const store = fx.store();
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
    await warm(store, token);
    verifies = 0;
    const first = await request(app).get('/me').set('Authorization', `Bearer ${token}`);
    expect([first.status, verifies], 'answered from the cache').to.deep.equal([200, 0]);
    const again = await request(app).get('/me').set('Authorization', `bearer  ${token}`);
    expect([again.status, verifies]).to.deep.equal([200, 0]);
    expect(again.body).to.deep.equal(first.body);
    expect(Object.keys(again.body)).to.deep.equal(['token', 'jti', 'sub', 'expiresAt', 'claims']);
    const malformed = await request(app).get('/me').set('Authorization', `Bearer ${token} x`);
    expect([malformed.status, verifies], 'a malformed header is still refused').to.deep.equal([400, 0]);
    await store.revoke(jti);
    const refused = await request(app).get('/me').set('Authorization', `Bearer ${token}`);
    expect([refused.status, verifies]).to.deep.equal([401, 1]);
    expect(refused.headers['www-authenticate']).to.match(/error="invalid_token"/);
  });

  it('never serves an expired token', async function () {
    this.timeout(10_000);
    const store = fx.store();
    const { token, expiresAt } = await store.issue('alice', { ttl: 2 });
    await warm(store, token);
    await untilTime(expiresAt);
    expect(await outcome(store, token)).to.equal('ERR_TOKEN_EXPIRED');
  });

  it('does not take another spelling of the same jti for a hit', async () => {
    const { store, asked } = counted();
    const { token, jti, claims } = await store.issue('alice');
    await warm(store, token);
    const before = asked.lookups;
    // The same claims, signed with the right key under a header with its members reordered:
    // a valid token, but another string, so it is verified in full.
    const respelled = await new SignJWT(claims).setProtectedHeader({ typ: 'at+jwt', alg: 'HS256' } as never).sign(new TextEncoder().encode(SECRET));
    expect(respelled).to.not.equal(token);
    expect((await store.verify(respelled)).jti).to.equal(jti);
    expect(asked.lookups).to.equal(before + 1);
    // And a forgery naming the cached jti is refused, whatever the cache holds.
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(randomBytes(32));
    expect(await outcome(store, forged)).to.equal('ERR_TOKEN_SIGNATURE');
  });

  it('a feed that stopped and started again drops what it cached before (revocations meanwhile were not heard)', async () => {
    const store = fx.store();
    const other = fx.store({ redis: fx.server.client(), cache: false });
    const [a, b] = [await store.issue('alice'), await store.issue('bob')];
    await warm(store, a.token);
    const feed = (store as unknown as { feed: { stop(): Promise<void>; fresh(now: number): boolean } }).feed;
    await feed.stop(); // as when the store's client ends; the next verify starts it again
    await other.revoke(a.jti);
    await store.verify(b.token); // a miss: restarts the feed
    await waitFor('the restarted feed to prove itself fresh', () => feed.fresh(Date.now()), 5000, 5);
    expect(await outcome(store, a.token)).to.equal('ERR_TOKEN_REVOKED');
  });

  it('close() stops the feed: verify still works, from Redis', async () => {
    const { store, asked } = counted();
    const { token } = await store.issue('alice');
    await warm(store, token);
    await store.close();
    await store.close();
    const before = asked.lookups;
    expect(await outcome(store, token)).to.equal('ok');
    expect(await outcome(store, token)).to.equal('ok');
    expect(asked.lookups).to.equal(before + 2);
  });

  it('refuses bad options, naming them', () => {
    const bad: [unknown, string][] = [
      [null, 'cache'],
      ['yes', 'cache'],
      [{ lifecycle: {} }, 'cache.lifecycle'],
      [{ maxEntries: 0 }, 'cache.maxEntries'],
      [{ maxEntries: 1.5 }, 'cache.maxEntries'],
      [{ maxEntries: '10' }, 'cache.maxEntries'],
      [{ maxBytes: 10 }, 'cache.maxBytes'],
      [{ maxStaleness: 0 }, 'cache.maxStaleness'],
      [{ maxStaleness: 120_000 }, 'cache.maxStaleness'],
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
    let err: unknown;
    try {
      fx.store({ retention: { maxAge: 1 }, cache: { maxStaleness: 2000 } });
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).option).to.equal('cache.maxStaleness');
  });
});

describe('TokenCache (unit)', () => {
  const feed = (fresh = true) => {
    const f = { isFresh: fresh, fresh: () => f.isFresh, start() {} };
    return f as Freshness & { isFresh: boolean };
  };
  const make = (options: Parameters<typeof cacheOptions>[0] = {}) => {
    const f = feed();
    const cache = new TokenCache(cacheOptions(options)!);
    cache.attach(f);
    return { cache, f };
  };
  const info = (jti: string, ms = 60_000, sub = 'a') => ({ jti, sub, expiresAt: Date.now() + ms, claims: { jti, sub, nested: { x: 1 } } });

  it('keeps out a verification that a revocation of its jti or subject overtook', () => {
    const { cache } = make();
    const mark = cache.mark();
    cache.revoked('j1');
    cache.add('t1', info('j1'), mark);
    expect(cache.get('t1')).to.equal(undefined);
    const mark2 = cache.mark();
    cache.revoked('other');
    cache.add('t2', info('j2'), mark2);
    expect(cache.get('t2')?.jti).to.equal('j2');
    const mark3 = cache.mark();
    cache.revokedSubject('bob');
    cache.add('t3', info('j3', 60_000, 'bob'), mark3);
    expect(cache.get('t3')).to.equal(undefined);
  });

  it('remembers at most 4 × maxEntries revocations; a verification begun before a forgotten one is kept out', () => {
    const { cache } = make({ maxEntries: 10 });
    const held = () => (cache as unknown as { revokedAt: Map<string, number> }).revokedAt.size;
    const early = cache.mark();
    for (let i = 0; i < 10_000; i++) cache.revoked(`r${i}`);
    expect(held()).to.equal(40);
    // Its own jti was never revoked, but revocations after its mark are forgotten: not cached.
    cache.add('t-early', info('never-revoked'), early);
    expect(cache.get('t-early')).to.equal(undefined);
    // A revocation remembered still keeps out the verification it overtook...
    const recent = cache.mark();
    cache.revoked('j-recent');
    for (let i = 0; i < 20; i++) cache.revoked(`s${i}`);
    cache.add('t-recent', info('j-recent'), recent);
    expect(cache.get('t-recent')).to.equal(undefined);
    // ...a jti revoked twice is remembered from its last revocation, and one begun after every revocation is cached.
    cache.revoked('s0');
    const late = cache.mark();
    cache.add('t-late', info('j-late'), late);
    expect(cache.get('t-late')?.jti).to.equal('j-late');
    expect(held()).to.be.at.most(40);
  });

  it('remembers revocations only while a verification is in flight: settled, it keeps none', () => {
    const { cache } = make();
    const held = () => (cache as unknown as { revokedAt: Map<string, number> }).revokedAt.size;
    cache.add('t0', info('j0'), cache.mark());
    cache.settled(0);
    for (let i = 0; i < 100; i++) cache.revoked(`r${i}`);
    expect(held(), 'nothing in flight').to.equal(0);
    cache.revoked('j0');
    expect(cache.get('t0'), 'still evicted').to.equal(undefined);
    const mark = cache.mark();
    cache.revoked('j1');
    expect(held()).to.equal(1);
    cache.add('t1', info('j1'), mark);
    expect(cache.get('t1'), 'overtaken by the revocation').to.equal(undefined);
    cache.settled(mark);
    cache.settled(mark); // once too often: never below zero
    cache.revoked('j2');
    expect(held()).to.equal(1);
    const next = cache.mark();
    cache.revoked('j3');
    cache.add('t3', info('j3'), next);
    expect(cache.get('t3')).to.equal(undefined);
  });

  it('drops every spelling of a revoked jti, answers nothing and takes nothing while not fresh', () => {
    const { cache, f } = make();
    cache.add('a1', info('ja'), cache.mark());
    cache.add('a2', info('ja'), cache.mark());
    cache.add('b1', info('jb'), cache.mark());
    cache.revoked('ja');
    expect([cache.get('a1'), cache.get('a2')]).to.deep.equal([undefined, undefined]);
    expect(cache.get('b1')?.jti).to.equal('jb');
    const mark = cache.mark();
    f.isFresh = false;
    expect(cache.get('b1')).to.equal(undefined);
    expect(cache.size).to.equal(0);
    expect(cache.mark()).to.equal(-1);
    cache.add('c1', info('jc'), mark);
    expect(cache.size).to.equal(0);
    f.isFresh = true;
    cache.add('c1', info('jc'), mark); // begun before the drop
    expect(cache.get('c1')).to.equal(undefined);
  });

  it('expires entries by exp, holds at most maxEntries and maxBytes (least recently used goes), freezes claims', async () => {
    const { cache } = make({ maxEntries: 4 });
    const short = info('js', 30);
    cache.add('short', short, cache.mark());
    expect(cache.get('short')?.jti).to.equal('js');
    await untilTime(short.expiresAt + 1);
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
    cache.add('x', info('jx'), cache.mark());
    const hit = cache.get('x')!;
    expect(Object.isFrozen(hit.claims) && Object.isFrozen(hit.claims.nested)).to.equal(true);

    const { cache: small } = make({ maxBytes: 8192 });
    for (let i = 0; i < 100; i++) small.add(`${'t'.repeat(1000)}${i}`, info(`k${i}`), small.mark());
    expect(small.bytes).to.be.at.most(8192);
    expect(small.size).to.be.within(1, 8192 / 2000);
    small.flush();
    expect([small.size, small.bytes]).to.deep.equal([0, 0]);
  });
});
