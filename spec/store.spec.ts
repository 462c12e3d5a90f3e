import { expect } from 'chai';
import { NO_TEMPLATE, issueCall } from '../lib/tokens/records.js';
import { generateKeyPairSync } from 'node:crypto';
import { decodeProtectedHeader, exportJWK, jwtVerify, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { ConfigError, StoreUnavailableError, TokenError, TokenStore } from '../lib/index.js';
import { useRedis, SECRET } from './support/fixture.js';
import { RedisServer } from './support/redis.js';
import { waitFor } from './support/wait.js';
import { StallingProxy } from './support/proxy.js';
import { records } from './support/records.js';
import { newJti } from '../lib/redis/keys.js';
import { journalEvent } from '../lib/events/event.js';

/** Resolves with the error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; option?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

describe('TokenStore', () => {
  const fx = useRedis();

  describe('issue', () => {
    it('returns an RFC 9068 access token that jose verifies with the same key', async () => {
      const store = fx.store({ audience: 'https://api.test' });
      const t = await store.issue('alice', { ttl: 60, scope: ['read', 'write'], clientId: 'web', claims: { tenant: 't1' } });
      expect(t).to.have.keys('token', 'jti', 'sub', 'expiresAt', 'claims');
      expect(decodeProtectedHeader(t.token)).to.deep.equal({ alg: 'HS256', typ: 'at+jwt' });
      const { payload } = await jwtVerify(t.token, new TextEncoder().encode(SECRET), { typ: 'at+jwt' });
      expect(payload).to.include({ iss: 'https://issuer.test', sub: 'alice', aud: 'https://api.test', client_id: 'web', scope: 'read write', tenant: 't1', jti: t.jti });
      expect(payload.exp! - payload.iat!).to.be.within(60, 61);
      expect(payload.exp! * 1000 - Date.now()).to.be.within(59_000, 61_000); // lives at least ttl seconds
      expect(t.expiresAt).to.equal(payload.exp! * 1000);
      expect(t.claims).to.deep.equal(payload);
      expect(Buffer.from(t.jti, 'base64url').length * 8).to.be.at.least(128);
    });

    it('makes the token die in Redis at exp, to the millisecond', async () => {
      const store = fx.store();
      const t = await store.issue('alice', { ttl: 30 });
      const b = store.keys.bucketOf(t.jti);
      expect(await fx.redis.pexpiretime(store.keys.token(b, t.jti))).to.equal(t.expiresAt);
    });

    it('defaults client_id to the clientId option, then the issuer, then the audience', async () => {
      expect((await fx.store({ clientId: 'cli' }).issue('a')).claims.client_id).to.equal('cli');
      expect((await fx.store().issue('a')).claims.client_id).to.equal('https://issuer.test');
      expect((await fx.store({ issuer: undefined, audience: ['aud1', 'aud2'] }).issue('a')).claims.client_id).to.equal('aud1');
      // A store that could not give its tokens a client_id fails at construction.
      expect(() => fx.store({ issuer: undefined })).to.throw(ConfigError).with.property('option', 'clientId');
    });

    it('rejects bad arguments with a ConfigError naming them', async () => {
      const store = fx.store();
      const cases: [() => Promise<unknown>, string][] = [
        [() => store.issue(''), 'sub'],
        [() => store.issue(42 as never), 'sub'],
        [() => store.issue('a', { ttl: 0 }), 'ttl'],
        [() => store.issue('a', { ttl: 1.5 }), 'ttl'],
        [() => store.issue('a', { scope: 'a "b' }), 'scope'],
        [() => store.issue('a', { scope: [1] as never }), 'scope'],
        [() => store.issue('a', { clientId: '' }), 'clientId'],
        [() => store.issue('a', { claims: { exp: 1 } }), 'claims.exp'],
        [() => store.issue('a', { claims: { jti: 'x' } }), 'claims.jti'],
        [() => store.issue('a', { claims: [] as never }), 'claims'],
      ];
      for (const [call, option] of cases) {
        const err = await rejection(call());
        expect(err, option).to.be.instanceOf(ConfigError);
        expect(err.code).to.equal('ERR_CONFIG');
        expect(err.option).to.equal(option);
      }
    });

    it('writes exactly one journal entry even when the script is sent twice', async () => {
      const { scripts } = await import('../lib/redis/script.js');
      const store = fx.store();
      const k = store.keys;
      const b = 0;
      const second = Math.ceil(Date.now() / 1000) + 60;
      const jti = newJti(second);
      const { keys, args } = issueCall(k, '1000/0', [{ bucket: b, jti, record: ',60,,0:x', template: NO_TEMPLATE, reap: 2 }]);
      const run = async () => ((await scripts.issue.run(fx.redis, keys, args)) as number[])[0];
      expect(await run()).to.equal(1);
      expect(await run()).to.equal(0);
      expect(await fx.redis.xlen(k.log(b))).to.equal(1);
    });
  });

  describe('concurrent calls (group commit)', () => {
    it('sends the issues of one tick in commands of up to 16 tokens, and their liveness checks as one MGET, each caller getting its own answer', async () => {
      // No cache: its journal feed's own commands (MGET of the epoch keys) would count here.
      const store = fx.store({ cache: false });
      const stats = async () => {
        const info = await fx.redis.info('commandstats');
        const count = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
        return { scripts: count('evalsha') + count('eval'), mget: count('mget'), exists: count('exists') };
      };
      await store.issue('warm-up'); // loads the script and writes the template
      const before = await stats();
      const issued = await Promise.all(Array.from({ length: 50 }, (_, i) => store.issue(`user${i}`)));
      const afterIssue = await stats();
      // 16 per call: several calls in flight, so Redis runs one while this process prepares the next.
      expect(afterIssue.scripts - before.scripts).to.equal(Math.ceil(50 / 16));
      expect(new Set(issued.map((t) => t.jti)).size).to.equal(50);
      for (const t of issued) expect(await fx.redis.pexpiretime(store.keys.token(store.keys.bucketOf(t.jti), t.jti))).to.equal(t.expiresAt);
      const revoked = issued.filter((_, i) => i % 3 === 0);
      for (const t of revoked) await store.revoke(t.jti);
      const beforeVerify = await stats();
      const answers = await Promise.all(issued.map((t) => store.verify(t.token).then((v) => v.jti, (err: { code?: string }) => err.code)));
      expect((await stats()).mget - beforeVerify.mget).to.equal(1);
      expect((await stats()).exists).to.equal(beforeVerify.exists);
      expect(answers).to.deep.equal(issued.map((t, i) => (i % 3 === 0 ? 'ERR_TOKEN_REVOKED' : t.jti)));
    });

    it('refuses only the token whose deadline is not in Redis\' future, writing nothing for it', async () => {
      const { scripts } = await import('../lib/redis/script.js');
      const k = fx.store().keys;
      const past = Math.floor(Date.now() / 1000) - 5;
      const future = past + 65;
      const [a, b] = [newJti(past), newJti(future)];
      const item = (jti: string) => ({ bucket: 0, jti, record: ',60,,0:x', template: NO_TEMPLATE, reap: 0 });
      const { keys, args } = issueCall(k, '1000/0', [item(a), item(b)]);
      const codes = await scripts.issue.run(fx.redis, keys, args);
      expect(codes).to.deep.equal([-1, 1]);
      expect(await fx.redis.exists(k.token(0, a), k.window(0, past))).to.equal(0);
      expect(await fx.redis.exists(k.token(0, b), k.window(0, future))).to.equal(2);
      expect(await fx.redis.xlen(k.log(0))).to.equal(1);
    });
  });

  describe('verify', () => {
    it('returns jti, sub, expiresAt and claims of a live token', async () => {
      const store = fx.store();
      const t = await store.issue('alice', { scope: 'read' });
      expect(await store.verify(t.token)).to.deep.equal({ jti: t.jti, sub: 'alice', expiresAt: t.expiresAt, claims: t.claims });
    });

    it('refuses an expired token with ERR_TOKEN_EXPIRED', async () => {
      const store = fx.store();
      const t = await store.issue('alice', { ttl: 1 });
      await waitFor('the token to expire', () => Date.now() > t.expiresAt, 3000);
      const err = await rejection(store.verify(t.token));
      expect(err).to.be.instanceOf(TokenError).with.property('code', 'ERR_TOKEN_EXPIRED');
    });

    it('refuses a token deleted from Redis with ERR_TOKEN_REVOKED', async () => {
      const store = fx.store();
      const t = await store.issue('alice');
      await fx.redis.del(store.keys.token(store.keys.bucketOf(t.jti), t.jti));
      expect(await rejection(store.verify(t.token))).to.have.property('code', 'ERR_TOKEN_REVOKED');
    });

    it('checks issuer and audience when they are set', async () => {
      const t = await fx.store({ audience: 'a' }).issue('alice');
      expect(await rejection(fx.store({ issuer: 'https://other.test', audience: 'a' }).verify(t.token))).to.have.property('code', 'ERR_TOKEN_CLAIMS');
      expect(await rejection(fx.store({ audience: 'b' }).verify(t.token))).to.have.property('code', 'ERR_TOKEN_CLAIMS');
    });

    it('refuses a token signed with another key with ERR_TOKEN_SIGNATURE', async () => {
      const t = await fx.store({ key: 'another-secret-that-is-also-32-bytes-long!' }).issue('alice');
      expect(await rejection(fx.store().verify(t.token))).to.have.property('code', 'ERR_TOKEN_SIGNATURE');
    });

    it('refuses a well-signed JWT that is not an access token (typ) with ERR_TOKEN_CLAIMS', async () => {
      const jwt = await new SignJWT({ sub: 'alice', jti: 'AAAAAAAAAAAAAAAAAAAAAA' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuedAt().setExpirationTime('1m').setIssuer('https://issuer.test').sign(new TextEncoder().encode(SECRET));
      expect(await rejection(fx.store().verify(jwt))).to.have.property('code', 'ERR_TOKEN_CLAIMS');
    });
  });

  describe('keys', () => {
    for (const [name, type, options, alg] of [
      ['ES256', 'ec', { namedCurve: 'P-256' }, 'ES256'],
      ['EdDSA', 'ed25519', {}, 'EdDSA'],
      ['RS256', 'rsa', { modulusLength: 2048 }, 'RS256'],
    ] as const) {
      it(`signs with an ${name} private key (PEM) and infers the algorithm`, async () => {
        const { privateKey, publicKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string });
        const store = fx.store({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid: 'k1' });
        const t = await store.issue('alice');
        expect(decodeProtectedHeader(t.token)).to.deep.equal({ alg, typ: 'at+jwt', kid: 'k1' });
        await jwtVerify(t.token, publicKey); // any standard library verifies it with the public key
        expect((await store.verify(t.token)).sub).to.equal('alice');
      });
    }

    it('accepts a private JWK (kid taken from it)', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = { ...(await exportJWK(privateKey)), kid: 'jwk-1' };
      const t = await fx.store({ key: jwk }).issue('alice');
      expect(decodeProtectedHeader(t.token).kid).to.equal('jwk-1');
    });

    it('rotates: tokens of an older key in verifyKeys still verify, by kid', async () => {
      const old = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const next = generateKeyPairSync('ed25519');
      const before = fx.store({ key: old.privateKey, kid: 'old' });
      const t = await before.issue('alice');
      const after = fx.store({ key: next.privateKey, kid: 'new', verifyKeys: [{ kid: 'old', key: old.publicKey }] });
      expect((await after.verify(t.token)).jti).to.equal(t.jti);
      expect((await after.verify((await after.issue('bob')).token)).sub).to.equal('bob');
      const withoutOld = fx.store({ key: next.privateKey, kid: 'new' });
      expect(await rejection(withoutOld.verify(t.token))).to.have.property('code', 'ERR_TOKEN_SIGNATURE');
    });

    it('never takes the algorithm from the header: an HS256 token made with the public key is refused', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const store = fx.store({ key: privateKey });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const forged = await new SignJWT({ sub: 'alice', jti: 'AAAAAAAAAAAAAAAAAAAAAA' }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setIssuedAt().setExpirationTime('1m').setIssuer('https://issuer.test').sign(new TextEncoder().encode(pem));
      expect(await rejection(store.verify(forged))).to.have.property('code', 'ERR_TOKEN_SIGNATURE');
    });
  });

  describe('revoke, revokeAll, list', () => {
    it('revoke by token or jti: true once, then false; verify says revoked', async () => {
      const store = fx.store();
      const a = await store.issue('alice');
      const b = await store.issue('alice');
      expect(await store.revoke(a.token)).to.equal(true);
      expect(await store.revoke(a.token)).to.equal(false);
      expect(await store.revoke(b.jti)).to.equal(true);
      expect(await store.revoke(b.jti)).to.equal(false);
      expect(await rejection(store.verify(a.token))).to.have.property('code', 'ERR_TOKEN_REVOKED');
    });

    it('refuses to revoke with a forged token that names a live jti', async () => {
      const store = fx.store();
      const victim = await store.issue('alice');
      const forged = await fx.store({ key: 'attacker-secret-attacker-secret-attacker!' }).issue('alice');
      const tampered = `${forged.token.split('.')[0]}.${Buffer.from(JSON.stringify({ ...forged.claims, jti: victim.jti })).toString('base64url')}.${forged.token.split('.')[2]}`;
      expect(await rejection(store.revoke(tampered))).to.have.property('code', 'ERR_TOKEN_SIGNATURE');
      expect((await store.verify(victim.token)).jti).to.equal(victim.jti);
    });

    it('revokeAll revokes every live token of a subject, and only those', async () => {
      const store = fx.store();
      const alice = await Promise.all(Array.from({ length: 40 }, () => store.issue('alice')));
      const bob = await store.issue('bob');
      await store.revoke(alice[0]!.token);
      expect(await store.revokeAll('alice')).to.equal(39);
      expect(await store.revokeAll('alice')).to.equal(0);
      for (const t of alice) expect(await rejection(store.verify(t.token))).to.have.property('code', 'ERR_TOKEN_REVOKED');
      expect((await store.verify(bob.token)).sub).to.equal('bob');
    });

    it('list returns the live tokens of a subject, soonest expiry first', async () => {
      const store = fx.store();
      const long = await store.issue('carol', { ttl: 600 });
      const short = await store.issue('carol', { ttl: 60 });
      const gone = await store.issue('carol', { ttl: 300 });
      await store.revoke(gone.jti);
      await store.issue('dave');
      const listed = await store.list('carol');
      expect(listed.map((t) => t.jti)).to.deep.equal([short.jti, long.jti]);
      expect(listed[0]).to.deep.equal({ jti: short.jti, sub: 'carol', expiresAt: short.expiresAt, claims: short.claims });
      expect(await store.list('nobody')).to.deep.equal([]);
    });
  });

  describe('a reply lost with its connection (ioredis sends the command again)', () => {
    // Redis runs the command, then the connection drops before the reply arrives: the
    // store's client reconnects and sends the command again. The store talks to Redis
    // through a proxy that holds Redis' replies; once INFO commandstats shows the scripts
    // ran, the proxy cuts the connection, so their replies are lost for certain.
    let proxy: StallingProxy;
    let client: Redis;
    beforeEach(async () => {
      proxy = await StallingProxy.start(fx.server.port);
      client = new Redis(proxy.port, '127.0.0.1');
      client.on('error', () => {}); // the cut connection
    });
    afterEach(async () => {
      client.disconnect();
      await proxy.stop();
    });
    const evalshas = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await fx.redis.info('commandstats'))?.[1] ?? 0);

    async function loseReply<T>(scripts: number, call: () => Promise<T>): Promise<{ result: T; runs: number }> {
      const before = await evalshas();
      proxy.holdReplies();
      const pending = call();
      await waitFor('the scripts to run', async () => (await evalshas()) >= before + scripts, 5000, 2);
      proxy.cut();
      const result = await pending;
      return { result, runs: (await evalshas()) - before };
    }

    it('revokeAll still says how many it revoked', async () => {
      const store = fx.store({ redis: client, cache: false });
      await Promise.all(Array.from({ length: 20 }, () => store.issue('alice')));
      await store.revokeAll('bob'); // the script is loaded: EVALSHA runs it at once
      const { result, runs } = await loseReply(store.keys.buckets, () => store.revokeAll('alice'));
      expect(runs, 'each bucket\'s script ran, then ran again').to.equal(2 * store.keys.buckets);
      const journal = (await Promise.all(Array.from({ length: store.keys.buckets }, (_, b) => fx.redis.xrange(store.keys.log(b), '-', '+')))).flat();
      expect(journal.filter(([id, f]) => journalEvent(0, id, f).type === 'revoked').length, 'revoked once each').to.equal(20);
      expect(result).to.equal(20);
    });

    it('issue still gives the token, written and journaled once', async () => {
      const store = fx.store({ redis: client, cache: false });
      await store.issue('bob'); // the script is loaded: EVALSHA runs it at once
      const { result: t, runs } = await loseReply(1, () => store.issue('alice'));
      expect(runs, 'the script ran, then ran again').to.equal(2);
      expect((await store.verify(t.token)).jti).to.equal(t.jti);
      const journal = await fx.redis.xrange(store.keys.log(store.keys.bucketOf(t.jti)), '-', '+');
      expect(journal.filter(([id, f]) => journalEvent(0, id, f).jti === t.jti)).to.have.length(1);
    });

    it('revoke still says the token was live', async () => {
      const store = fx.store({ redis: client, cache: false });
      const t = await store.issue('alice');
      await store.revoke((await store.issue('bob')).token); // the script is loaded: EVALSHA runs it at once
      const { result, runs } = await loseReply(1, () => store.revoke(t.token));
      expect(runs, 'the script ran, then ran again').to.equal(2);
      expect(result).to.equal(true);
      expect(await store.revoke(t.token)).to.equal(false);
    });
  });

  describe('Redis contents', () => {
    it('keeps a compact record per token and gives back exactly its claims (list, events)', async () => {
      const store = fx.store({ audience: ['https://api.test', 'other'], clientId: 'web' });
      const lifecycle = fx.lifecycle();
      const events = fx.record(lifecycle);
      await lifecycle.start();
      const odd = 'ünï|cødé "sub" \\ / \n,1,2:3';
      const issued = [
        await store.issue(odd, { scope: 'read a|b', claims: { tenant: 'tënant', nested: { list: [1, 'two', null], ok: true } } }),
        await store.issue(odd, { clientId: 'cli', ttl: 120 }),
        await store.issue(odd),
      ];
      const byJti = (list: { jti: string; claims: object }[]) => Object.fromEntries(list.map((t) => [t.jti, t.claims]));
      expect(byJti(await store.list(odd))).to.deep.equal(byJti(issued));
      for (const t of issued) {
        // The record holds neither jti, exp, iss, aud nor the default client_id.
        const record = await fx.redis.hget(store.keys.window(store.keys.bucketOf(t.jti), t.expiresAt / 1000), t.jti);
        expect(record).to.be.a('string');
        for (const shared of ['https://api.test', 'issuer.test', '"web"', t.jti, String(t.expiresAt / 1000)]) expect(record).to.not.include(shared);
      }
      expect(await store.revokeAll(odd)).to.equal(3);
      await waitFor('issued and revoked events', () => events.length === 6 || undefined, 3000);
      for (const e of events) expect(e.claims).to.deep.equal(byJti(issued)[e.jti]);
      expect(events.map((e) => e.sub)).to.deep.equal(Array(6).fill(odd));
    });

    it('never stores the raw token, nor its signature', async () => {
      const store = fx.store();
      const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => store.issue(`user${i % 5}`, { scope: 'read' })));
      await store.revoke(tokens[0]!.token);
      await store.revokeAll('user1');
      const dump: string[] = [];
      for (const key of await fx.redis.keys(`${store.keys.prefix}*`)) {
        dump.push(key);
        const type = await fx.redis.type(key);
        if (type === 'string') dump.push((await fx.redis.get(key))!);
        if (type === 'hash') dump.push(...Object.entries(await fx.redis.hgetall(key)).flat());
        if (type === 'zset') dump.push(...(await fx.redis.zrange(key, 0, -1)));
        if (type === 'stream') dump.push(...(await fx.redis.xrange(key, '-', '+')).flatMap(([id, f]) => [id, ...f]));
      }
      const everything = dump.join('\n');
      expect(everything.length).to.be.greaterThan(1000);
      for (const { token } of tokens) {
        expect(everything).to.not.include(token);
        expect(everything).to.not.include(token.split('.')[2]);
      }
    });

    it('keeps a subject with one or two tokens in the bucket\'s subjects hash, and moves a third to a set of its own', async () => {
      const store = fx.store({ buckets: 1 });
      const k = store.keys;
      const held = () => fx.redis.hget(k.subjects(0), 'eve');
      const [a, b, c] = [await store.issue('eve'), await store.issue('eve'), await store.issue('eve')];
      const [one] = [await store.issue('solo')];
      expect(await fx.redis.hget(k.subjects(0), 'solo'), 'one token: its jti, no key of its own').to.equal(one!.jti);
      expect(await fx.redis.exists(k.subject(0, 'solo'))).to.equal(0);
      expect(await held(), 'three tokens: a set of its own').to.equal('*');
      expect((await fx.redis.zrange(k.subject(0, 'eve'), 0, -1)).sort()).to.deep.equal([a.jti, b.jti, c.jti].sort());
      expect((await store.list('eve')).map((t) => t.jti).sort()).to.deep.equal([a.jti, b.jti, c.jti].sort());
      await store.revoke(b.jti);
      expect((await store.list('eve')).map((t) => t.jti).sort()).to.deep.equal([a.jti, c.jti].sort());
      expect(await store.revokeAll('eve')).to.equal(2);
      expect([await held(), await fx.redis.exists(k.subject(0, 'eve'))], 'nothing left of eve').to.deep.equal([null, 0]);
      // Two tokens share the field. Revoking one leaves the field as it was (the sweeper
      // or the next revokeAll drops the dead jti); list and revokeAll pass over it.
      const [d, e] = [await store.issue('ivy'), await store.issue('ivy')];
      expect(await fx.redis.hget(k.subjects(0), 'ivy')).to.equal(d.jti + e.jti);
      await store.revoke(d.token);
      expect(await fx.redis.hget(k.subjects(0), 'ivy')).to.equal(d.jti + e.jti);
      expect((await store.list('ivy')).map((t) => t.jti)).to.deep.equal([e.jti]);
      expect(await store.revokeAll('ivy')).to.equal(1);
      expect(await fx.redis.hexists(k.subjects(0), 'ivy')).to.equal(0);
      // Signing out and in again: a full field first drops the jtis whose key is gone,
      // and the subject keeps its field (no set of its own).
      const [f, g] = [await store.issue('max'), await store.issue('max')];
      await store.revoke(f.token);
      const h = await store.issue('max');
      expect(await fx.redis.hget(k.subjects(0), 'max')).to.equal(g.jti + h.jti);
      expect(await fx.redis.exists(k.subject(0, 'max'))).to.equal(0);
      expect((await store.list('max')).map((t) => t.jti).sort()).to.deep.equal([g.jti, h.jti].sort());
    });

    it('buries a revoked token\'s record until its deadline, then drops it and its subject index entry, journaling nothing more', async () => {
      const store = fx.store({ buckets: 1 });
      const k = store.keys;
      const [gone, kept] = [await store.issue('ada', { ttl: 2 }), await store.issue('ada', { ttl: 600 })];
      const second = (jti: string) => parseInt(jti.slice(0, 7), 36);
      const record = await fx.redis.hget(k.window(0, second(gone.jti)), gone.jti);
      expect(await store.revoke(gone.token)).to.equal(true);
      expect(await fx.redis.hget(k.window(0, second(gone.jti)), gone.jti), 'buried: no reaper journals it again').to.equal(`-${record}`);
      expect(await fx.redis.hget(k.subjects(0), 'ada')).to.equal(gone.jti + kept.jti);
      // The sweep that issuing runs (no lifecycle here) after the deadline forgets the
      // buried record and the index entry, and journals no event for them.
      await waitFor('the deadline to pass', async () => Number((await fx.redis.time())[0]) * 1000 > gone.expiresAt + 1, 4000);
      const before = await fx.redis.xrange(k.log(0), '-', '+');
      for (let i = 0; i < 16; i++) await store.issue('bob', { ttl: 600 });
      expect(await fx.redis.hget(k.subjects(0), 'ada')).to.equal(kept.jti);
      expect(await fx.redis.hexists(k.window(0, second(gone.jti)), gone.jti)).to.equal(0);
      const after = await fx.redis.xrange(k.log(0), '-', '+');
      expect(after.slice(before.length).map(([, fields]) => fields[0]), 'only the 16 issues').to.deep.equal(Array(16).fill('issued'));
      expect((await store.list('ada')).map((t) => t.jti)).to.deep.equal([kept.jti]);
    });

    it('keeps memory bounded with no listener: issuing reaps overdue entries', async () => {
      const store = fx.store({ buckets: 1 });
      const old = await Promise.all(Array.from({ length: 20 }, () => store.issue('old', { ttl: 1 })));
      const last = Math.max(...old.map((t) => t.expiresAt));
      await waitFor('the tokens to pass their deadline', async () => Number((await fx.redis.time())[0]) * 1000 > last + 1, 4000);
      // Every 8th issue reaps up to 16: 16 more issues reap at least 2 x 16.
      for (let i = 0; i < 16; i++) await store.issue('new', { ttl: 600 });
      expect(await records(fx.redis, store.keys)).to.equal(16);
      // The old tokens' seconds are gone from the due index, and their hashes with them.
      for (const t of old) {
        expect(await fx.redis.zscore(store.keys.due(0), String(t.expiresAt / 1000))).to.equal(null);
        expect(await fx.redis.exists(store.keys.window(0, t.expiresAt / 1000))).to.equal(0);
      }
      expect(await fx.redis.exists(store.keys.subject(0, 'old'))).to.equal(0);
      expect(await fx.redis.hexists(store.keys.subjects(0), 'old'), 'the subject left the index').to.equal(0);
      expect(await fx.redis.zcard(store.keys.subject(0, 'new'))).to.equal(16);
      const types = (await fx.redis.xrange(store.keys.log(0), '-', '+')).map(([id, f]) => journalEvent(0, id, f).type);
      expect(types.filter((t) => t === 'expired')).to.have.length(20);
    });
  });

  describe('when Redis is down', () => {
    it('fails closed with StoreUnavailableError within the timeout', async () => {
      const server = await RedisServer.start();
      const redis = server.client();
      const store = new TokenStore({ redis, key: SECRET, issuer: 'i', timeout: 300 });
      const t = await store.issue('alice');
      await server.kill();
      for (const call of [() => store.verify(t.token), () => store.issue('alice'), () => store.revoke(t.jti), () => store.revokeAll('alice'), () => store.list('alice')]) {
        const started = Date.now();
        const err = await rejection(call());
        expect(err).to.be.instanceOf(StoreUnavailableError);
        expect(err.code).to.equal('ERR_STORE_UNAVAILABLE');
        expect(Date.now() - started).to.be.below(1000);
      }
      await server.stop();
    });

    it('fails closed at once when the client has given up (connection ended)', async () => {
      const redis = new Redis({ port: 1, lazyConnect: true, retryStrategy: () => null });
      redis.on('error', () => {});
      const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test' });
      const t = await fx.store().issue('alice');
      expect(await rejection(store.verify(t.token))).to.be.instanceOf(StoreUnavailableError);
      redis.disconnect();
    });
  });

  describe('options', () => {
    it('are validated at construction, naming the option', () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const good = { redis: fx.redis, key: SECRET };
      const cases: [Record<string, unknown>, string][] = [
        [{ redis: undefined }, 'redis'],
        [{ redis: {} }, 'redis'],
        [{ key: undefined }, 'key'],
        [{ key: 'short' }, 'key'],
        [{ key: 42 }, 'key'],
        [{ key: publicKey }, 'key'],
        [{ key: '-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----' }, 'key'],
        [{ algorithm: 'RS256' }, 'key'],
        [{ algorithm: 'none' }, 'key'],
        [{ verifyKeys: {} }, 'verifyKeys'],
        [{ verifyKeys: [{ key: SECRET }] }, 'verifyKeys[0]'],
        [{ verifyKeys: [{ kid: 'a', key: 'short' }] }, 'verifyKeys[0]'],
        [{ prefix: '' }, 'prefix'],
        [{ prefix: 'a{b}' }, 'prefix'],
        [{ ttl: -1 }, 'ttl'],
        [{ ttl: '900' }, 'ttl'],
        [{ buckets: 0 }, 'buckets'],
        [{ timeout: 0 }, 'timeout'],
        [{ issuer: '' }, 'issuer'],
        [{ audience: [] }, 'audience'],
        [{ clientId: 5 }, 'clientId'],
        [{ retention: { entries: 10 } }, 'retention.entries'],
        [{ retention: { maxAge: -1 } }, 'retention.maxAge'],
        [{ maxTokenLength: 10 }, 'maxTokenLength'],
      ];
      for (const [bad, option] of cases) {
        let err: unknown;
        try {
          new TokenStore({ ...good, ...bad } as never);
        } catch (e) {
          err = e;
        }
        expect(err, `${JSON.stringify(Object.keys(bad))}`).to.be.instanceOf(ConfigError);
        expect((err as ConfigError).option).to.equal(option);
        expect((err as ConfigError).message).to.include(`"${option}"`);
      }
    });
  });
});
