// A refresh is one round trip: nothing is read before the script, which writes the next
// access token's record from the session and answers with its claims; the store signs
// after. These specs cover what the store assumes and the script corrects (the tokens'
// lifetime, the client's template, a template id taken by other claims, whether an older
// token is ours), that events and verify see exactly the claims the token carries, and
// the repeat within the grace window (signed again: the same token; the refresh token
// opened from its sealed secret, also after a key rotation).
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import type { SessionEvent, TokenEvent, TokenStore } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { refusal, waitFor } from './support/wait.js';

const refreshedEvents = (events: TokenEvent[]) => events.filter((e) => e.type === 'refreshed') as SessionEvent[];

/** The template id the store uses for `clientId`'s tokens, and the Redis key of the templates of `bucket`. */
function templateOf(store: TokenStore, clientId: string, bucket: number): { id: string; key: string } {
  const minter = (store as unknown as { minter: { forRefresh(c: string): { template: { id: string } } } }).minter;
  return { id: minter.forRefresh(clientId).template.id, key: store.keys.templates(bucket) };
}

describe('sessions: refresh in one round trip', function () {
  this.timeout(20000);
  const fx = useRedis();

  it('gives events and verify the claims the token carries: another process, another client, odd subjects, extra claims, a narrowed scope', async () => {
    const starter = fx.store({ clientId: 'web' });
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const subs = ['ünï©ødé 🙂', 'a "quoted" \\ sub', 'plain'];
    const started = await Promise.all(subs.map((sub, i) => starter.startSession(sub, { scope: 'read write', clientId: i === 0 ? 'mobile-app' : undefined, claims: { tenant: `t${i}`, roles: ['a', 'b'], n: i } })));
    // A process that never saw these sessions nor their client ids refreshes them.
    const other = fx.store({ clientId: 'web' });
    const next = await Promise.all(started.map((s, i) => other.refresh(s.refreshToken, i === 2 ? { scope: 'read' } : {})));
    for (const [i, n] of next.entries()) {
      const s = started[i]!;
      expect(decodeJwt(n.token)).to.deep.equal(n.claims);
      expect(n.claims).to.include({ sub: subs[i], sid: s.sid, client_id: s.claims.client_id, tenant: `t${i}`, n: i, iss: 'https://issuer.test' });
      expect(n.claims.roles).to.deep.equal(['a', 'b']);
      expect(n.claims.scope).to.equal(i === 2 ? 'read' : 'read write');
      expect(n.claims.exp - n.claims.iat).to.equal(s.claims.exp - s.claims.iat);
      // The key order of a token this store mints: further claims, then the registered ones.
      expect(Object.keys(n.claims)).to.deep.equal(Object.keys(s.claims));
      expect((await other.verify(n.token)).claims).to.deep.equal(n.claims);
      expect((await starter.list(subs[i]!)).find((t) => t.jti === n.jti)?.claims).to.deep.equal(n.claims);
    }
    const seen = await waitFor('refreshed events', () => refreshedEvents(events).length === 3 && refreshedEvents(events), 3000);
    for (const n of next) {
      const event = seen.find((e) => e.jti === n.jti)!;
      expect(event.claims).to.deep.equal(n.claims);
      expect(event.session.scope).to.equal('read write');
    }
  });

  it('refreshes a session whose tokens live longer or shorter than the store\'s default, with its own lifetime', async () => {
    const store = fx.store({ ttl: 900 });
    for (const ttl of [60, 3600]) {
      const s = await store.startSession(`ttl-${ttl}`, { ttl });
      const n = await store.refresh(s.refreshToken);
      expect(n.claims.exp - n.claims.iat).to.equal(ttl);
      expect(Number(await fx.redis.pttl(store.keys.token(store.keys.bucketOf(n.jti), n.jti)))).to.be.within((ttl - 2) * 1000, ttl * 1000);
      const again = await store.refresh(s.refreshToken);
      expect(again).to.deep.equal(n);
    }
  });

  for (const taken of [['own'], ['own', 'shared']] as const) {
    it(`when Redis holds other claims under the template id${taken.length > 1 ? 's (the client\'s and the shared one)' : ' of the client'}, the record carries ${taken.length > 1 ? 'client_id, iss and aud' : 'client_id'} itself`, async () => {
      const options = { clientId: 'web', audience: ['api', 'admin'] };
      const starter = fx.store(options);
      const lifecycle = fx.lifecycle();
      const events = fx.record(lifecycle);
      await lifecycle.start();
      const s = await starter.startSession('olga', { scope: 'read' });
      const bucket = starter.keys.bucketOf(s.sid);
      // Another store's claims under the same ids (as a 32-bit id collision would leave them).
      for (const which of taken) {
        const t = templateOf(starter, which === 'own' ? 'web' : '', bucket);
        await fx.redis.hset(t.key, t.id, '"iss":"https://someone.else"');
      }
      const first = await fx.store(options).refresh(s.refreshToken);
      const second = await fx.store(options).refresh(first.refreshToken);
      for (const n of [first, second]) {
        expect(n.claims).to.include({ client_id: 'web', iss: 'https://issuer.test', sid: s.sid });
        expect(n.claims.aud).to.deep.equal(['api', 'admin']);
      }
      const seen = await waitFor('refreshed events', () => refreshedEvents(events).length === 2 && refreshedEvents(events), 3000);
      expect(seen.map((e) => e.claims)).to.deep.equal([first.claims, second.claims]);
      expect((await starter.list('olga')).map((t) => t.claims).filter((c) => c.jti !== s.jti)).to.have.deep.members([first.claims, second.claims]);
    });
  }

  it('an older refresh token of ours, two generations back, is reuse: the session ends (its MAC is checked only then)', async () => {
    const store = fx.store({ sessions: { refreshGrace: 100 } });
    const s = await store.startSession('pia');
    const r2 = await store.refresh(s.refreshToken);
    const r3 = await store.refresh(r2.refreshToken);
    expect(await refusal(store.refresh(s.refreshToken))).to.equal('ERR_REFRESH_REUSED');
    expect(await refusal(store.verify(r3.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(store.refresh(r3.refreshToken))).to.equal('ERR_REFRESH_INVALID');
  });

  it('within the grace window, a repeat gets the same pair: after a key rotation too, and with ES256 the same claims newly signed', async () => {
    const OLD = 'the-old-secret-that-is-at-least-32-bytes-long';
    const before = fx.store({ key: OLD, kid: 'k1' });
    const after = fx.store({ key: 'the-new-secret-that-is-at-least-32-bytes-long', kid: 'k2', verifyKeys: [{ kid: 'k1', key: OLD }] });
    const s = await before.startSession('rita', { claims: { tenant: 't' } });
    const n = await before.refresh(s.refreshToken);
    // Repeated by a process that signs with the new key: the refresh token Redis holds, and
    // the access token's claims; its signature is the new key's.
    const repeat = await after.refresh(s.refreshToken);
    expect(repeat.refreshToken).to.equal(n.refreshToken);
    expect(repeat.claims).to.deep.equal(n.claims);
    expect((await after.verify(repeat.token)).jti).to.equal(n.jti);
    expect((await after.refresh(repeat.refreshToken)).sid).to.equal(s.sid);

    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const es = fx.store({ key: privateKey });
    const e = await es.startSession('sam', { scope: 'read' });
    const en = await es.refresh(e.refreshToken);
    const er = await es.refresh(e.refreshToken);
    expect(er.refreshToken).to.equal(en.refreshToken);
    expect(er.claims).to.deep.equal(en.claims);
    expect(er.token.split('.').slice(0, 2)).to.deep.equal(en.token.split('.').slice(0, 2));
    expect((await es.verify(er.token)).jti).to.equal(en.jti);
  });

  it('within the grace window, a repeat after the new access token was revoked is refused, not signed again', async () => {
    const store = fx.store({ sessions: { refreshGrace: 5000 } });
    const s = await store.startSession('tia');
    const n = await store.refresh(s.refreshToken);
    expect(await store.revoke(n.token)).to.equal(true);
    // Its record is buried (see include/lifecycle.lua, bury): no repeat may sign it again.
    expect(await refusal(store.refresh(s.refreshToken))).to.equal('ERR_REFRESH_INVALID');
    expect(await refusal(store.verify(n.token))).to.equal('ERR_TOKEN_REVOKED');
  });
});
