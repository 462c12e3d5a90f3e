// Findings of the security and newcomer review on issuing, each with the case that
// showed it: token lifetimes, a store that cannot issue, strings that are not
// well-formed Unicode, colliding template ids, tokens verify would refuse.
import { expect } from 'chai';
import { ConfigError, TokenStore, type TokenEvent } from '../lib/index.js';
import { fnv1a } from '../lib/redis/keys.js';
import { SECRET, useRedis } from './support/fixture.js';
import { waitFor } from './support/wait.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('TokenStore hardening', () => {
  const fx = useRedis();

  it('exp - iat is exactly the ttl asked for, and Redis drops the token at exp to the millisecond', async () => {
    const store = fx.store();
    for (const ttl of [1, 2, 60, 900, 86_400]) {
      for (let i = 0; i < 5; i++) {
        const t = await store.issue('alice', { ttl });
        expect(t.claims.exp - t.claims.iat, `ttl ${ttl}`).to.equal(ttl);
        expect(t.claims.iat).to.be.at.most(Math.floor(Date.now() / 1000));
        expect(t.expiresAt).to.equal(t.claims.exp * 1000);
        expect(await fx.redis.pexpiretime(store.keys.token(store.keys.bucketOf(t.jti), t.jti))).to.be.oneOf([t.expiresAt, -2]);
      }
    }
    const t = await fx.store({ ttl: 60 }).issue('bob');
    expect(t.claims.exp - t.claims.iat).to.equal(60);
  });

  it('a ttl of 1 s issued in the last milliseconds of a second still lives at least 100 ms, and verifies', async () => {
    const store = fx.store();
    for (let i = 0; i < 5; i++) {
      await waitFor('the last 50 ms of a second', () => Date.now() % 1000 > 950, 2000, 1);
      const issuedAt = Date.now();
      const t = await store.issue('alice', { ttl: 1 });
      expect(t.claims.exp - t.claims.iat).to.equal(1);
      expect(t.expiresAt - issuedAt, 'life left').to.be.at.least(100);
      expect((await store.verify(t.token)).jti).to.equal(t.jti);
    }
  });

  it('a store that cannot give its tokens a client_id fails at construction, naming the options', () => {
    let err: unknown;
    try {
      new TokenStore({ redis: fx.redis, key: SECRET });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ConfigError).with.property('code', 'ERR_CONFIG');
    expect(err).to.have.property('option', 'clientId');
    expect((err as Error).message).to.match(/issuer/).and.match(/audience/);
    expect(() => new TokenStore({ redis: fx.redis, key: SECRET, clientId: 'web' })).to.not.throw();
    expect(() => new TokenStore({ redis: fx.redis, key: SECRET, audience: 'api' })).to.not.throw();
  });

  it('refuses subjects, client ids and claims that are not well-formed Unicode: lone surrogates never share a key', async () => {
    const store = fx.store();
    // U+FFFD itself is a fine subject: it must keep its tokens whatever happens to the lone surrogates.
    const replacement = await store.issue('\ufffd');
    const bad: [() => Promise<unknown>, string][] = [
      [() => store.issue('\ud800'), 'sub'],
      [() => store.issue('a\udbffb'), 'sub'],
      [() => store.issue('\udc00'), 'sub'],
      [() => store.revokeAll('\ud800'), 'sub'],
      [() => store.list('\udbff'), 'sub'],
      [() => store.issue('alice', { clientId: 'web\ud800' }), 'clientId'],
      [() => store.issue('alice', { claims: { tenant: 'x\udfff' } }), 'claims.tenant'],
      [() => store.issue('alice', { claims: { nested: { list: ['ok', '\ud83d'] } } }), 'claims.nested.list[1]'],
      [() => store.issue('alice', { claims: { ['k\ud800']: 1 } }), 'claims'],
    ];
    for (const [call, option] of bad) {
      const err = await rejection(call());
      expect(err, option).to.be.instanceOf(ConfigError).with.property('option', option);
      expect((err as ConfigError).code).to.equal('ERR_CONFIG');
    }
    expect(() => fx.store({ clientId: '\ud800' })).to.throw(ConfigError).with.property('option', 'clientId');
    expect(() => fx.store({ issuer: 'https://x\udc00' })).to.throw(ConfigError).with.property('option', 'issuer');
    expect(() => fx.store({ audience: ['ok', '\ud800'] })).to.throw(ConfigError).with.property('option', 'audience[1]');
    // A well-formed pair (an emoji) is fine, and so is the replacement character's subject.
    const emoji = await store.issue('\ud83d\ude00', { claims: { note: '\ud83d\ude00' } });
    expect((await store.list('\ud83d\ude00')).map((t) => t.jti)).to.deep.equal([emoji.jti]);
    expect((await store.list('\ufffd')).map((t) => t.jti)).to.deep.equal([replacement.jti]);
    expect(await store.revokeAll('\ud83d\ude00')).to.equal(1);
    expect((await store.verify(replacement.token)).sub).to.equal('\ufffd');
  });

  it('two client ids whose template ids collide keep their own client_id in events and list(), across stores', async function () {
    this.timeout(20_000);
    // Find two client ids whose templates (this store's iss + client_id) share the 32-bit id.
    const seen = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const clientId = `client-${i.toString(36)}`;
      const id = fnv1a(JSON.stringify({ iss: 'https://issuer.test', client_id: clientId }).slice(1, -1)).toString(36);
      const other = seen.get(id);
      if (other !== undefined) pair = [other, clientId];
      else seen.set(id, clientId);
    }
    const [first, second] = pair;
    const lifecycle = fx.lifecycle();
    const events: TokenEvent[] = [];
    lifecycle.on('revoked', (e) => { events.push(e); });
    await lifecycle.start();
    const a = await fx.store().issue('alice', { clientId: first });
    // Another store (another process, as far as Redis can tell) with the colliding client id.
    const b = await fx.store().issue('bob', { clientId: second });
    const b2 = await fx.store().issue('bob', { clientId: second });
    const c = await fx.store().issue('carol', { clientId: first });
    expect((await fx.store().list('alice')).map((t) => t.claims.client_id)).to.deep.equal([first]);
    expect((await fx.store().list('bob')).map((t) => t.claims.client_id)).to.deep.equal([second, second]);
    expect((await fx.store().list('carol')).map((t) => t.claims.client_id)).to.deep.equal([first]);
    const store = fx.store();
    for (const t of [a, b, b2, c]) await store.revoke(t.jti);
    await waitFor('four revoked events', () => events.length >= 4, 5000);
    const byJti = new Map(events.map((e) => [e.jti, e.claims]));
    expect(byJti.get(a.jti)).to.deep.equal(a.claims);
    expect(byJti.get(b.jti)).to.deep.equal(b.claims);
    expect(byJti.get(b2.jti)).to.deep.equal(b2.claims);
    expect(byJti.get(c.jti)).to.deep.equal(c.claims);
  });

  it('never mints a token that verify would refuse for its length, and writes nothing for it', async () => {
    const maxTokenLength = 600;
    for (const warm of [false, true]) {
      const store = fx.store({ maxTokenLength });
      if (warm) await store.issue('alice');
      // Every key but the cache feed's epoch markers (written when a store first verifies).
      const keys = async () => (await fx.redis.keys(`${store.keys.prefix}*`)).filter((k) => !k.endsWith(':epoch')).sort();
      const before = await keys();
      const err = await rejection(store.issue('alice', { claims: { big: 'x'.repeat(600) } }));
      expect(err, `warm ${warm}`).to.be.instanceOf(ConfigError).with.property('option', 'claims');
      expect((err as Error).message).to.match(/maxTokenLength/);
      expect(await keys()).to.deep.equal(before);
      // Right up to the limit is fine, and verifies.
      let size = 0;
      for (;;) {
        const next = await store.issue('alice', { claims: { big: 'x'.repeat(size + 1) } }).catch(() => undefined);
        if (next === undefined) break;
        size++;
        expect(next.token.length).to.be.at.most(maxTokenLength);
        if (next.token.length >= maxTokenLength - 1) {
          expect((await store.verify(next.token)).jti).to.equal(next.jti);
          break;
        }
      }
      expect(size).to.be.greaterThan(0);
    }
  });
});
