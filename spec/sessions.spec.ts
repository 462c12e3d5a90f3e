// Sessions and refresh tokens: rotation, the grace window, reuse (theft) detection,
// idle and absolute timeouts, the session cap, devices, and their journal events.
import { expect } from 'chai';
import { ConfigError, RefreshError, StoreUnavailableError, TokenError, type SessionEvent, type TokenEvent, type TokenStore } from '../lib/index.js';
import { parseRefreshToken } from '../lib/sessions/refresh-token.js';
import { useRedis } from './support/fixture.js';
import { waitFor, refusal } from './support/wait.js';


const sessionEvents = (events: TokenEvent[], type: string) => events.filter((e) => e.type === type) as SessionEvent[];

describe('sessions and refresh tokens', function () {
  this.timeout(20000);
  const fx = useRedis();

  it('starts a session: an access token with its sid, an opaque refresh token, the device listed', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const s = await store.startSession('alice', { scope: 'read write', claims: { tenant: 't1' }, device: { userAgent: 'Firefox/140', ip: '203.0.113.5', label: 'laptop' } });
    expect(s.claims.sid).to.equal(s.sid);
    expect(s.sid).to.match(/^[A-Za-z0-9_-]{16}$/);
    const parts = parseRefreshToken(s.refreshToken)!;
    expect(parts.sid).to.equal(s.sid);
    expect(parts.secret).to.have.length(22); // 128 random bits
    const info = await store.verify(s.token);
    expect(info.claims.sid).to.equal(s.sid);
    expect(info.claims.tenant).to.equal('t1');
    const [listed, ...more] = await store.sessions('alice');
    expect(more).to.have.length(0);
    expect(listed).to.deep.include({ sid: s.sid, sub: 'alice', device: { userAgent: 'Firefox/140', ip: '203.0.113.5', label: 'laptop' }, generation: 0, scope: 'read write', clientId: 'https://issuer.test', claims: { tenant: 't1' } });
    expect(listed!.expiresAt).to.be.greaterThan(Date.now());
    // One event: the session and its first access token (no separate `issued`).
    const started = await waitFor('session_started', () => sessionEvents(events, 'session_started')[0]);
    expect(started).to.deep.include({ sid: s.sid, sub: 'alice', jti: s.jti });
    expect(started.claims).to.deep.equal(s.claims);
    expect(started.session).to.deep.equal(listed);
    expect(started.session.device).to.deep.equal({ userAgent: 'Firefox/140', ip: '203.0.113.5', label: 'laptop' });
    expect(started.session.expiresAt % 1000, 'a whole second').to.equal(0);
    expect(events.map((e) => e.type)).to.deep.equal(['session_started']);
    // A session's tokens are listed with the subject's others.
    const plain = await store.issue('alice');
    expect((await store.list('alice')).map((t) => t.jti).sort()).to.deep.equal([s.jti, plain.jti].sort());
  });

  it('never stores a refresh token, nor its secret', async () => {
    const store = fx.store();
    const s = await store.startSession('alice');
    const r = await store.refresh(s.refreshToken);
    const secrets = [s.refreshToken, r.refreshToken].flatMap((t) => [t, parseRefreshToken(t)!.secret]);
    for (const key of await fx.redis.keys('*')) {
      const type = await fx.redis.type(key);
      const dump = type === 'hash' ? JSON.stringify(await fx.redis.hgetall(key))
        : type === 'string' ? (await fx.redis.get(key)) ?? ''
          : type === 'stream' ? JSON.stringify(await fx.redis.xrange(key, '-', '+'))
            : type === 'zset' ? JSON.stringify(await fx.redis.zrange(key, 0, -1)) : '';
      for (const secret of secrets) expect(dump, key).to.not.include(secret);
    }
  });

  it('rotates on refresh; within the grace window a repeat gets the same pair; after it, reuse ends the whole session', async () => {
    const store = fx.store({ sessions: { refreshGrace: 300 } });
    const other = fx.store({ cache: false });
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const a1 = await store.startSession('bob', { scope: 'read' });
    const a2 = await store.refresh(a1.refreshToken);
    expect(a2.sid).to.equal(a1.sid);
    expect(a2.refreshToken).to.not.equal(a1.refreshToken);
    expect(parseRefreshToken(a2.refreshToken)!.generation).to.equal(1);
    expect((await store.verify(a2.token)).claims.sid).to.equal(a1.sid);
    // A retry of the same refresh within the grace window: the same pair, nothing rotates.
    const again = await store.refresh(a1.refreshToken);
    expect(again).to.deep.equal(a2);
    // After the window: theft. The session ends, with every access token of it, here and elsewhere.
    await new Promise((r) => setTimeout(r, 350));
    expect(await refusal(store.refresh(a1.refreshToken))).to.equal('ERR_REFRESH_REUSED');
    expect(await refusal(store.verify(a2.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(store.verify(a1.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(other.verify(a2.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(store.refresh(a2.refreshToken))).to.equal('ERR_REFRESH_INVALID');
    expect(await store.sessions('bob')).to.deep.equal([]);
    await waitFor('reuse_detected, session_ended and the revocations', () => events.filter((e) => e.type === 'revoked').length === 2 && sessionEvents(events, 'session_ended').length === 1);
    expect(sessionEvents(events, 'reuse_detected').map((e) => e.sid)).to.deep.equal([a1.sid]);
    expect(sessionEvents(events, 'session_ended')[0]).to.deep.include({ reason: 'reuse', sid: a1.sid, sub: 'bob' });
    expect(events.filter((e) => e.type === 'revoked').map((e) => [e.jti, e.reason]).sort()).to.deep.equal([[a1.jti, 'session'], [a2.jti, 'session']].sort());
    const [refreshed] = sessionEvents(events, 'refreshed');
    expect(refreshed).to.deep.include({ jti: a2.jti, sid: a1.sid, claims: a2.claims });
    expect(refreshed!.session.generation).to.equal(1);
    expect(events.map((e) => e.type)).to.deep.equal(['session_started', 'refreshed', 'reuse_detected', 'revoked', 'revoked', 'session_ended']);
  });

  it('20 concurrent refreshes of one token all get the same new pair; there is never a second live refresh token', async () => {
    const store = fx.store();
    const s = await store.startSession('carol');
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => store.refresh(s.refreshToken)));
    const pairs = results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    for (const r of results) if (r.status === 'rejected') expect((r.reason as RefreshError).code).to.equal('ERR_REFRESH_INVALID');
    const first = pairs.find((p) => p !== undefined)!;
    for (const p of pairs) if (p) expect(p).to.deep.equal(first);
    const [session] = await store.sessions('carol');
    expect(session!.generation).to.equal(1);
    // The new refresh token is the only one that rotates.
    const next = await store.refresh(first.refreshToken);
    expect(parseRefreshToken(next.refreshToken)!.generation).to.equal(2);
    expect((await store.sessions('carol'))[0]!.generation).to.equal(2);
  });

  it('refuses 2,000 garbage refresh tokens with ERR_REFRESH_INVALID only, and a forged one naming a live session does not end it', async () => {
    const store = fx.store();
    const s = await store.startSession('dave');
    const { sid } = parseRefreshToken(s.refreshToken)!;
    const garbage = [
      '', 'x', 'a.b.c.d', `${sid}`, `${sid}.0`, `${sid}.0.${'A'.repeat(22)}`, `${sid}.0.${'A'.repeat(22)}.${'B'.repeat(22)}`,
      `${sid}.zzzzzzzz.${'A'.repeat(22)}.${'B'.repeat(22)}`, s.token, '\u0000'.repeat(70), 'é'.repeat(65),
    ];
    for (let i = garbage.length; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 90) }, (_, j) => (i * 31 + j * 7) % 256));
      garbage.push(i % 2 === 0 ? bytes.toString('latin1') : `${sid}.${(i % 50).toString(36)}.${bytes.toString('base64url').padEnd(22, 'x').slice(0, 22)}.${'C'.repeat(22)}`);
    }
    const codes = await Promise.all(garbage.map((t) => refusal(store.refresh(t))));
    expect(new Set(codes)).to.deep.equal(new Set(['ERR_REFRESH_INVALID']));
    expect(await refusal(store.refresh(undefined as unknown as string))).to.equal('ERR_REFRESH_INVALID');
    // The session lives on: forged tokens never count as reuse.
    expect((await store.verify(s.token)).sub).to.equal('dave');
    expect((await store.refresh(s.refreshToken)).sid).to.equal(sid);
  });

  it('after a key rotation, refresh tokens minted under the old key still refresh, and their reuse is still caught by its hash', async () => {
    const OLD = 'the-old-secret-that-is-at-least-32-bytes-long';
    const before = fx.store({ key: OLD, kid: 'k1', sessions: { refreshGrace: 100 } });
    const after = fx.store({ key: 'the-new-secret-that-is-at-least-32-bytes-long', kid: 'k2', verifyKeys: [{ kid: 'k1', key: OLD }], sessions: { refreshGrace: 100 } });
    const s = await before.startSession('quinn');
    const next = await after.refresh(s.refreshToken);
    expect((await after.verify(next.token)).claims.sid).to.equal(s.sid);
    await new Promise((r) => setTimeout(r, 150));
    expect(await refusal(after.refresh(s.refreshToken))).to.equal('ERR_REFRESH_REUSED');
    expect(await refusal(after.verify(next.token))).to.equal('ERR_TOKEN_REVOKED');
  });

  it('narrows the scope of a refreshed token on request, and refuses a wider one (ERR_REFRESH_SCOPE)', async () => {
    const store = fx.store();
    const s = await store.startSession('erin', { scope: 'read write' });
    const narrow = await store.refresh(s.refreshToken, { scope: 'read' });
    expect(narrow.claims.scope).to.equal('read');
    const err = await store.refresh(narrow.refreshToken, { scope: 'read admin' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(RefreshError).with.property('code', 'ERR_REFRESH_SCOPE');
    // The session keeps its scope: the next refresh without a scope gets all of it.
    expect((await store.refresh(narrow.refreshToken)).claims.scope).to.equal('read write');
  });

  it('ends a session idle for longer than its idle timeout, and one past its lifetime however used', async () => {
    const store = fx.store({ sessions: { idleTimeout: 1, lifetime: 3 } });
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const idle = await store.startSession('frank');
    const busy = await store.startSession('grace');
    // Keep `busy` refreshed more often than its idle timeout: it ends at its lifetime anyway.
    let refresh = busy.refreshToken;
    const keepAlive = setInterval(() => {
      store.refresh(refresh).then((r) => { refresh = r.refreshToken; }, () => {});
    }, 300);
    try {
      const ended = await waitFor('idle end', () => sessionEvents(events, 'session_ended').find((e) => e.sid === idle.sid), 4000);
      expect(ended.reason).to.equal('idle');
      // Deadlines are whole seconds (as a token's exp): lastUsed + 1 s, rounded up.
      expect(ended.session.expiresAt).to.equal(Math.ceil((ended.session.lastUsed + 1000) / 1000) * 1000);
      expect(ended.at - ended.session.expiresAt).to.be.within(0, 250);
      expect(await refusal(store.verify(idle.token))).to.equal('ERR_TOKEN_REVOKED');
      const absolute = await waitFor('absolute end', () => sessionEvents(events, 'session_ended').find((e) => e.sid === busy.sid), 6000);
      expect(absolute.reason).to.equal('absolute');
      expect(absolute.at - Math.ceil(absolute.session.absoluteExpiresAt / 1000) * 1000).to.be.within(0, 250);
    } finally {
      clearInterval(keepAlive);
    }
    expect(await refusal(store.refresh(refresh))).to.equal('ERR_REFRESH_INVALID');
  });

  it('with slideOnVerify, verifying a session\'s token slides its idle deadline (without it, only a refresh does)', async () => {
    const sliding = fx.store({ sessions: { idleTimeout: 1, slideOnVerify: true } });
    const plain = fx.store({ sessions: { idleTimeout: 1 } });
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const kept = await sliding.startSession('olga', { ttl: 10 });
    const idle = await plain.startSession('pete', { ttl: 10 });
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      await sliding.verify(kept.token);
      await plain.verify(idle.token).catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
    }
    const ended = sessionEvents(events, 'session_ended');
    expect(ended.map((e) => e.sid), 'only the session without slideOnVerify ended').to.deep.equal([idle.sid]);
    expect(ended[0]!.reason).to.equal('idle');
    expect((await sliding.sessions('olga'))[0]!.lastUsed).to.be.greaterThan(Date.now() - 1500);
    // Verifying stops: it ends too.
    const last = await waitFor('the sliding session to end', () => sessionEvents(events, 'session_ended').find((e) => e.sid === kept.sid), 4000);
    expect(last.reason).to.equal('idle');
  });

  it('ends the oldest session past maxSessions (reason limit)', async () => {
    const store = fx.store({ sessions: { maxSessions: 2 } });
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const first = await store.startSession('henry', { device: { label: 'one' } });
    const second = await store.startSession('henry', { device: { label: 'two' } });
    const third = await store.startSession('henry', { device: { label: 'three' } });
    expect((await store.sessions('henry')).map((s) => s.device?.label)).to.deep.equal(['two', 'three']);
    expect(await refusal(store.verify(first.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(store.refresh(first.refreshToken))).to.equal('ERR_REFRESH_INVALID');
    expect((await store.verify(second.token)).sub).to.equal('henry');
    expect((await store.verify(third.token)).sub).to.equal('henry');
    const ended = await waitFor('session_ended', () => sessionEvents(events, 'session_ended')[0]);
    expect(ended).to.deep.include({ sid: first.sid, reason: 'limit' });
  });

  it('revokeAll(sub, { except }) logs out the other devices; revokeSession and logout end one', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const keep = await store.startSession('ivy');
    const phone = await store.startSession('ivy');
    const tablet = await store.startSession('ivy');
    const plain = await store.issue('ivy');
    const kept2 = await store.refresh(keep.refreshToken);
    expect(await store.revokeAll('ivy', { except: keep.sid })).to.equal(3);
    expect((await store.sessions('ivy')).map((s) => s.sid)).to.deep.equal([keep.sid]);
    expect((await store.verify(keep.token)).sub).to.equal('ivy');
    expect((await store.verify(kept2.token)).sub).to.equal('ivy');
    for (const t of [phone.token, tablet.token, plain.token]) expect(await refusal(store.verify(t))).to.equal('ERR_TOKEN_REVOKED');
    expect(await store.revokeSession(keep.sid, 'logout')).to.equal(true);
    expect(await store.revokeSession(keep.sid)).to.equal(false);
    expect(await refusal(store.verify(kept2.token))).to.equal('ERR_TOKEN_REVOKED');
    await waitFor('three session_ended', () => sessionEvents(events, 'session_ended').length === 3);
    expect(sessionEvents(events, 'session_ended').map((e) => [e.sid, e.reason])).to.deep.equal([[phone.sid, 'revoked'], [tablet.sid, 'revoked'], [keep.sid, 'logout']]);
  });

  it('revokeRefreshToken (RFC 7009) ends the session of a live refresh token, and nothing for a forged one', async () => {
    const store = fx.store();
    const s = await store.startSession('jack');
    const { sid } = parseRefreshToken(s.refreshToken)!;
    expect(await store.revokeRefreshToken(`${sid}.0.${'A'.repeat(22)}.${'B'.repeat(22)}`)).to.equal(false);
    expect(await store.revokeRefreshToken('nonsense')).to.equal(false);
    expect((await store.verify(s.token)).sub).to.equal('jack');
    expect(await store.revokeRefreshToken(s.refreshToken)).to.equal(true);
    expect(await refusal(store.verify(s.token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(store.refresh(s.refreshToken))).to.equal('ERR_REFRESH_INVALID');
  });

  it('refuses bad options and arguments with a ConfigError naming them', () => {
    const make = (sessions: unknown) => () => fx.store({ sessions: sessions as never });
    for (const [sessions, option] of [
      [{ idleTimeout: 0 }, 'sessions.idleTimeout'], [{ idleTimeout: 10, lifetime: 5 }, 'sessions.idleTimeout'], [{ lifetime: 1.5 }, 'sessions.lifetime'],
      [{ refreshGrace: 20000 }, 'sessions.refreshGrace'], [{ maxSessions: 0 }, 'sessions.maxSessions'], ['x', 'sessions'],
      [{ slideOnVerify: 'yes' }, 'sessions.slideOnVerify'],
    ] as const) {
      expect(make(sessions), option).to.throw(ConfigError).with.property('option', option);
    }
  });

  it('refuses bad session arguments at the call', async () => {
    const store = fx.store();
    for (const [call, option] of [
      [() => store.startSession(''), 'sub'],
      [() => store.startSession('a', { device: { os: 'x' } as never }), 'device.os'],
      [() => store.startSession('a', { device: { ip: 5 } as never }), 'device.ip'],
      [() => store.startSession('a', { claims: { sid: 'x' } as never }), 'claims.sid'],
      [() => store.revokeSession('not a sid'), 'sid'],
      [() => store.revokeAll('a', { except: '' }), 'except'],
    ] as const) {
      const err = await (call as () => Promise<unknown>)().catch((e: unknown) => e);
      expect(err, option).to.be.instanceOf(ConfigError).with.property('option', option);
    }
  });

  it('fails closed when Redis is down: StoreUnavailableError, nothing half done', async () => {
    const store = fx.store({ timeout: 300 });
    const s = await store.startSession('kate');
    await fx.redis.client('PAUSE', 1500, 'ALL');
    try {
      expect(await store.refresh(s.refreshToken).catch((e: unknown) => e)).to.be.instanceOf(StoreUnavailableError);
      expect(await store.startSession('kate').catch((e: unknown) => e)).to.be.instanceOf(StoreUnavailableError);
    } finally {
      await waitFor('Redis back', async () => (await fx.redis.ping()) === 'PONG', 3000);
    }
    // The refresh that timed out may or may not have rotated: either the old token still
    // works, or (it rotated) it is the previous one within grace or reuse; never a 500.
    const code = await store.refresh(s.refreshToken).then(() => 'ok', (e: unknown) => (e as TokenError).code);
    expect(['ok', 'ERR_REFRESH_REUSED', 'ERR_REFRESH_INVALID']).to.include(code);
  });

  it('keeps a session in one packed string: a browser\'s device and all, a few hundred bytes (the total per session is measured in bench/)', async () => {
    const store: TokenStore = fx.store();
    const s = await store.startSession('lena', { scope: 'read write', device: { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0', ip: '203.0.113.7' } });
    const keys = store.keys;
    const bucket = keys.bucketOf('lena');
    const session = await fx.redis.memory('USAGE', keys.session(bucket, s.sid));
    expect(session).to.be.lessThan(400);
  });
});
