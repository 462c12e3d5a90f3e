import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { SignJWT } from 'jose';
import { ConfigError, StoreUnavailableError, TokenError, type TokenErrorCode } from '../lib/errors.js';
import type { TokenStore } from '../lib/index.js';
import {
  bearerAuth,
  requireClaims,
  requireScope,
  tokenEndpoints,
  TOKEN_ENDPOINTS_DEFAULTS,
  type AuthInfo,
  type BearerAuthOptions,
  type TokenEndpointsOptions,
  type TokenVerifier,
  type VerifiedToken,
} from '../lib/fastify/index.js';
import { SECRET, useRedis } from './support/fixture.js';

const FORM = 'application/x-www-form-urlencoded';
const ISSUER = 'https://issuer.test';
const BARE = 'Bearer realm="api"';
const challenge = (error: string, description: string, extra = '', realm = 'api') =>
  `Bearer realm="${realm}", error="${error}", error_description="${description}"${extra}`;
const UNAUTHORIZED = { error: 'unauthorized', error_description: 'authentication required' };
const INVALID_REQUEST = (description: string) => ({ error: 'invalid_request', error_description: description });

const MALFORMED: Array<[string, string]> = [
  ['Bearer alone', 'Bearer'],
  ['two tokens', 'Bearer a b'],
  ['characters outside token68', 'Bearer abc!def'],
  ['a quote', 'Bearer abc"def'],
  ['a comma list', 'Bearer abc, Basic xyz'],
  ['20 KB', `Bearer ${'a'.repeat(20 * 1024)}`],
];

/** A token signed with the store's secret and claims, but never issued (not in Redis). */
async function signedNotIssued(exp = Math.floor(Date.now() / 1000) + 600, key: Uint8Array = new TextEncoder().encode(SECRET)): Promise<string> {
  return new SignJWT({ client_id: ISSUER, scope: 'read' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setSubject('mallory').setIssuer(ISSUER).setJti('AAAAAAAAAAAAAAAAAAAAAA')
    .setIssuedAt(exp - 600).setExpirationTime(exp)
    .sign(key);
}

const GARBAGE: Array<[string, () => Promise<string>, string]> = [
  ['three garbage segments', async () => 'a.b.c', 'token malformed'],
  ['a bare jti', async () => 'AAAAAAAAAAAAAAAAAAAAAA', 'token malformed'],
  ['a word', async () => 'garbage', 'token malformed'],
  ['base64 of nothing', async () => 'e30.e30.e30', 'token malformed'],
  ['an alg:none token', async () => `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from('{"sub":"a"}').toString('base64url')}.`, 'token signature invalid'],
  ['a huge token (15 000 characters)', async () => `${'a'.repeat(7_500)}.${'b'.repeat(7_500)}`, 'token malformed'],
  ['signed with the right key, never issued', () => signedNotIssued(), 'token revoked'],
  ['signed with another secret', () => signedNotIssued(undefined, new TextEncoder().encode('x'.repeat(40))), 'token signature invalid'],
  ['signed, expired', () => signedNotIssued(Math.floor(Date.now() / 1000) - 10), 'token expired'],
];

interface TestApp {
  app: FastifyInstance;
  /** Errors that reached the app's error handler (answered 500 { appHandler: true }). */
  appErrors: unknown[];
}

function routes(verifier: TokenVerifier, bearer?: BearerAuthOptions): TestApp {
  const app = Fastify();
  const appErrors: unknown[] = [];
  app.setErrorHandler((err, _request, reply) => {
    appErrors.push(err);
    return reply.code(500).send({ appHandler: true });
  });
  const auth = bearerAuth(verifier, bearer);
  const echo = async (request: FastifyRequest) => request.auth ?? { anonymous: true };
  app.get('/me', { onRequest: auth }, echo);
  app.get('/read', { onRequest: [auth, requireScope('read')] }, echo);
  app.get('/read-write', { onRequest: [auth, requireScope('read', 'write')] }, echo);
  app.get('/admin', { onRequest: [auth, requireScope('read', 'admin')] }, echo);
  app.get('/any', { onRequest: auth, preHandler: requireScope.any('admin', 'write') }, echo);
  app.get('/tenant', { onRequest: [auth, requireClaims((claims) => claims.tenant === 'acme')] }, echo);
  app.get('/forgot-auth', { onRequest: requireScope('read') }, echo);
  return { app, appErrors };
}

const get = (t: TestApp, url: string, authorization?: string) =>
  t.app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });

describe('fastify', () => {
  const fx = useRedis();

  describe('bearerAuth over a TokenStore', () => {
    let store: TokenStore;
    let t: TestApp;
    let verifies: number;
    beforeEach(() => {
      store = fx.store();
      const verify = store.verify.bind(store);
      verifies = 0;
      store.verify = (token: string) => {
        verifies++;
        return verify(token);
      };
      t = routes(store);
    });
    afterEach(() => t.app.close());

    it('no Authorization header → 401 with a bare challenge', async () => {
      const res = await get(t, '/me');
      expect(res.statusCode).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal(BARE);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      expect(res.json()).to.deep.equal(UNAUTHORIZED);
      expect(verifies).to.equal(0);
    });

    it('another scheme (Basic) → 401 with a bare challenge', async () => {
      const res = await get(t, '/me', 'Basic dXNlcjpwYXNz');
      expect([res.statusCode, res.headers['www-authenticate']]).to.deep.equal([401, BARE]);
      expect(res.json()).to.deep.equal(UNAUTHORIZED);
    });

    for (const [name, header] of MALFORMED) {
      it(`malformed Bearer header (${name}) → 400 invalid_request, verify not called`, async () => {
        const res = await get(t, '/me', header);
        expect(res.statusCode).to.equal(400);
        expect(res.headers['www-authenticate']).to.match(/^Bearer realm="api", error="invalid_request", error_description="[^"]+"$/);
        expect(res.json().error).to.equal('invalid_request');
        expect(verifies).to.equal(0);
      });
    }

    for (const [name, make, description] of GARBAGE) {
      it(`${name} → 401 invalid_token "${description}"`, async () => {
        const res = await get(t, '/me', `Bearer ${await make()}`);
        expect(res.statusCode).to.equal(401);
        expect(res.headers['www-authenticate']).to.equal(challenge('invalid_token', description));
        expect(res.json()).to.deep.equal({ error: 'invalid_token', error_description: description });
        expect(t.appErrors).to.deep.equal([]);
      });
    }

    it('a live token → request.auth has exactly the Express keys { token, jti, sub, expiresAt, claims }', async () => {
      const issued = await store.issue('alice', { scope: 'read write', claims: { tenant: 'acme' } });
      const res = await get(t, '/me', `Bearer ${issued.token}`);
      expect(res.statusCode).to.equal(200);
      expect(Object.keys(res.json())).to.deep.equal(['token', 'jti', 'sub', 'expiresAt', 'claims']);
      expect(res.json()).to.deep.equal({ token: issued.token, jti: issued.jti, sub: 'alice', expiresAt: issued.expiresAt, claims: issued.claims });
    });

    it('a revoked token → 401 invalid_token "token revoked"', async () => {
      const issued = await store.issue('alice');
      expect((await get(t, '/me', `Bearer ${issued.token}`)).statusCode).to.equal(200);
      await store.revoke(issued.token);
      const res = await get(t, '/me', `Bearer ${issued.token}`);
      expect(res.statusCode).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal(challenge('invalid_token', 'token revoked'));
    });

    it('an expired token → 401 invalid_token "token expired"', async () => {
      const issued = await store.issue('alice', { ttl: 1 });
      expect((await get(t, '/me', `Bearer ${issued.token}`)).statusCode).to.equal(200);
      while (Date.now() < issued.expiresAt + 5) await new Promise((r) => setTimeout(r, issued.expiresAt - Date.now() + 10));
      const res = await get(t, '/me', `Bearer ${issued.token}`);
      expect(res.statusCode).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal(challenge('invalid_token', 'token expired'));
    });

    it('a cached token passes without verify (the synchronous path), and still not once revoked', async () => {
      const issued = await store.issue('alice', { scope: 'read' });
      expect((await get(t, '/me', `Bearer ${issued.token}`)).statusCode).to.equal(200);
      // The cache takes tokens once the store follows the journal: wait for that, with a deadline.
      const deadline = Date.now() + 5000;
      while (verifies > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
        verifies = 0;
        await get(t, '/me', `Bearer ${issued.token}`);
      }
      expect(verifies, 'answered from the cache').to.equal(0);
      const res = await get(t, '/read', `bearer  ${issued.token}`);
      expect([res.statusCode, verifies]).to.deep.equal([200, 0]);
      expect(Object.keys(res.json())).to.deep.equal(['token', 'jti', 'sub', 'expiresAt', 'claims']);
      await store.revoke(issued.jti);
      const refused = await get(t, '/me', `Bearer ${issued.token}`);
      expect([refused.statusCode, verifies]).to.deep.equal([401, 1]);
    });

    describe('requireScope', () => {
      it('all of the listed scopes: passes when each is granted, 403 naming them all otherwise', async () => {
        const { token } = await store.issue('alice', { scope: 'read write' });
        expect((await get(t, '/read', `Bearer ${token}`)).statusCode).to.equal(200);
        expect((await get(t, '/read-write', `Bearer ${token}`)).statusCode).to.equal(200);
        const res = await get(t, '/admin', `Bearer ${token}`);
        expect(res.statusCode).to.equal(403);
        expect(res.headers['www-authenticate']).to.equal(challenge('insufficient_scope', 'insufficient scope', ', scope="read admin"'));
        expect(res.json()).to.deep.equal({ error: 'insufficient_scope', error_description: 'insufficient scope' });
      });

      it('wrong scope, whole scopes only ("reader" is not "read"), and no scope claim → 403', async () => {
        for (const scope of ['write', 'reader', undefined]) {
          const { token } = await store.issue('alice', scope === undefined ? {} : { scope });
          const res = await get(t, '/read', `Bearer ${token}`);
          expect(res.statusCode, String(scope)).to.equal(403);
          expect(res.headers['www-authenticate']).to.equal(challenge('insufficient_scope', 'insufficient scope', ', scope="read"'));
        }
      });

      it('requireScope.any: one of the scopes is enough (as a preHandler too); none → 403 listing them', async () => {
        for (const scope of ['write', 'admin', 'read admin']) {
          const { token } = await store.issue('alice', { scope });
          expect((await get(t, '/any', `Bearer ${token}`)).statusCode, scope).to.equal(200);
        }
        const { token } = await store.issue('alice', { scope: 'read' });
        const res = await get(t, '/any', `Bearer ${token}`);
        expect(res.statusCode).to.equal(403);
        expect(res.headers['www-authenticate']).to.equal(challenge('insufficient_scope', 'insufficient scope', ', scope="admin write"'));
      });

      it('without bearerAuth before it → 401 with a bare challenge, not a pass', async () => {
        const { token } = await store.issue('alice', { scope: 'read' });
        const res = await get(t, '/forgot-auth', `Bearer ${token}`);
        expect([res.statusCode, res.headers['www-authenticate']]).to.deep.equal([401, BARE]);
      });
    });

    describe('requireClaims', () => {
      it('predicate true → passes; false → 403 insufficient_scope without a scope attribute', async () => {
        const acme = await store.issue('alice', { claims: { tenant: 'acme' } });
        expect((await get(t, '/tenant', `Bearer ${acme.token}`)).statusCode).to.equal(200);
        const other = await store.issue('bob', { claims: { tenant: 'globex' } });
        const res = await get(t, '/tenant', `Bearer ${other.token}`);
        expect(res.statusCode).to.equal(403);
        expect(res.headers['www-authenticate']).to.equal(challenge('insufficient_scope', 'insufficient claims'));
        expect(res.json()).to.deep.equal({ error: 'insufficient_scope', error_description: 'insufficient claims' });
      });

      it('a predicate returning a promise or throwing is a server bug: 500, never a pass', async () => {
        const app = Fastify();
        const errors: unknown[] = [];
        app.setErrorHandler((err, _request, reply) => { errors.push(err); return reply.code(500).send({ appHandler: true }); });
        const auth = bearerAuth(store);
        app.get('/async', { onRequest: [auth, requireClaims((async () => true) as unknown as () => boolean)] }, async () => 'passed');
        app.get('/throws', { onRequest: [auth, requireClaims(() => { throw new Error('bug'); })] }, async () => 'passed');
        app.get('/described', { onRequest: [auth, requireClaims(() => false, { description: 'tenant not allowed' })] }, async () => 'passed');
        const { token } = await store.issue('alice');
        const a = await app.inject({ url: '/async', headers: { authorization: `Bearer ${token}` } });
        const b = await app.inject({ url: '/throws', headers: { authorization: `Bearer ${token}` } });
        expect([a.statusCode, b.statusCode]).to.deep.equal([500, 500]);
        expect(errors.map((e) => (e as Error).message)).to.deep.equal(['requireClaims: the predicate returned a promise, not a boolean', 'bug']);
        const c = await app.inject({ url: '/described', headers: { authorization: `Bearer ${token}` } });
        expect([c.statusCode, c.headers['www-authenticate']]).to.deep.equal([403, challenge('insufficient_scope', 'tenant not allowed')]);
        await app.close();
      });
    });

    describe('required: false', () => {
      let optional: TestApp;
      beforeEach(() => {
        optional = routes(store, { required: false });
      });
      afterEach(() => optional.app.close());

      it('no header, or another scheme → the route runs with request.auth undefined', async () => {
        for (const authorization of [undefined, 'Basic dXNlcjpwYXNz']) {
          const res = await get(optional, '/me', authorization);
          expect([res.statusCode, res.json()], String(authorization)).to.deep.equal([200, { anonymous: true }]);
        }
      });

      it('a valid token → request.auth set', async () => {
        const issued = await store.issue('alice');
        expect((await get(optional, '/me', `Bearer ${issued.token}`)).json().jti).to.equal(issued.jti);
      });

      it('a bad, revoked or malformed token is still refused', async () => {
        const issued = await store.issue('alice');
        await store.revoke(issued.token);
        const revoked = await get(optional, '/me', `Bearer ${issued.token}`);
        expect([revoked.statusCode, revoked.headers['www-authenticate']]).to.deep.equal([401, challenge('invalid_token', 'token revoked')]);
        expect((await get(optional, '/me', 'Bearer a.b.c')).statusCode).to.equal(401);
        expect((await get(optional, '/me', 'Bearer a b')).statusCode).to.equal(400);
      });

      it('requireScope after it still needs a token: 401 without one', async () => {
        const res = await get(optional, '/read');
        expect([res.statusCode, res.headers['www-authenticate']]).to.deep.equal([401, BARE]);
      });
    });

    it('names the configured realm in every challenge, requireScope and requireClaims included', async () => {
      const r = routes(store, { realm: 'my accounts' });
      const writer = await store.issue('alice', { scope: 'write' });
      expect((await get(r, '/me')).headers['www-authenticate']).to.equal('Bearer realm="my accounts"');
      expect((await get(r, '/me', 'Bearer a b')).headers['www-authenticate']).to.match(/^Bearer realm="my accounts", error="invalid_request"/);
      expect((await get(r, '/me', 'Bearer a.b.c')).headers['www-authenticate']).to.equal(challenge('invalid_token', 'token malformed', '', 'my accounts'));
      expect((await get(r, '/read', `Bearer ${writer.token}`)).headers['www-authenticate'])
        .to.equal(challenge('insufficient_scope', 'insufficient scope', ', scope="read"', 'my accounts'));
      expect((await get(r, '/tenant', `Bearer ${writer.token}`)).headers['www-authenticate'])
        .to.equal(challenge('insufficient_scope', 'insufficient claims', '', 'my accounts'));
      await r.app.close();
    });

    it('as an app-wide onRequest hook (addHook) in a plugin', async () => {
      const app = Fastify();
      await app.register(async (api) => {
        api.addHook('onRequest', bearerAuth(store));
        api.get('/api/me', async (request) => ({ sub: request.auth?.sub }));
      });
      app.get('/open', async () => 'open');
      const { token } = await store.issue('alice');
      expect((await app.inject({ url: '/api/me' })).statusCode).to.equal(401);
      expect((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })).json()).to.deep.equal({ sub: 'alice' });
      expect((await app.inject({ url: '/open' })).statusCode).to.equal(200);
      await app.close();
    });
  });

  describe('error mapping (a fake verifier)', () => {
    it('each TokenError code → 401 invalid_token with a fixed description, never the verifier\'s message', async () => {
      const cases: Array<[TokenErrorCode, string]> = [
        ['ERR_TOKEN_MALFORMED', 'token malformed'], ['ERR_TOKEN_SIGNATURE', 'token signature invalid'],
        ['ERR_TOKEN_EXPIRED', 'token expired'], ['ERR_TOKEN_REVOKED', 'token revoked'], ['ERR_TOKEN_CLAIMS', 'token claims invalid'],
        ['ERR_TOKEN_FROM_THE_FUTURE' as TokenErrorCode, 'invalid token'],
      ];
      const t = routes({ verify: async (token) => { throw new TokenError(token as TokenErrorCode, 'details for logs only'); } });
      for (const [code, description] of cases) {
        const res = await get(t, '/me', `Bearer ${code}`);
        expect([res.statusCode, res.headers['www-authenticate']], code).to.deep.equal([401, challenge('invalid_token', description)]);
        expect(res.payload).to.not.include('details for logs only');
      }
      await t.app.close();
    });

    it('a verify that throws synchronously is still mapped', async () => {
      const t = routes({ verify(): Promise<VerifiedToken> { throw new TokenError('ERR_TOKEN_EXPIRED', 'x'); } });
      const res = await get(t, '/me', 'Bearer abc');
      expect([res.statusCode, res.headers['www-authenticate']]).to.deep.equal([401, challenge('invalid_token', 'token expired')]);
      await t.app.close();
    });

    it('StoreUnavailableError → 503, Retry-After: 1, no challenge, no detail', async () => {
      const t = routes({ verify: async () => { throw new StoreUnavailableError('connect ECONNREFUSED'); } });
      const res = await get(t, '/me', 'Bearer abc');
      expect([res.statusCode, res.headers['retry-after']]).to.deep.equal([503, '1']);
      expect(res.headers).to.not.have.property('www-authenticate');
      expect(res.json()).to.deep.equal({ error: 'service_unavailable', error_description: 'token store unavailable' });
      await t.app.close();
    });

    it('any other error of verify, or a verify resolving to nothing → the app\'s error handler (500), not a pass', async () => {
      const bug = new Error('a bug in the verifier');
      const t = routes({ verify: async () => { throw bug; } });
      expect((await get(t, '/me', 'Bearer abc')).json()).to.deep.equal({ appHandler: true });
      expect(t.appErrors).to.deep.equal([bug]);
      const broken = routes({ verify: async () => undefined } as unknown as TokenVerifier);
      expect((await get(broken, '/me', 'Bearer abc')).statusCode).to.equal(500);
      expect(broken.appErrors[0]).to.be.instanceOf(TypeError);
      await Promise.all([t.app.close(), broken.app.close()]);
    });
  });

  describe('configuration errors at construction', () => {
    const option = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        return (err as ConfigError).option;
      }
      return expect.fail('expected a ConfigError');
    };
    const v: TokenVerifier = { verify: async () => { throw new Error('x'); } };

    it('bearerAuth: store, options, realm, required', () => {
      expect(option(() => bearerAuth({} as TokenVerifier))).to.equal('store');
      expect(option(() => bearerAuth(v, null as unknown as BearerAuthOptions))).to.equal('options');
      expect(option(() => bearerAuth(v, { realm: 'a"b' }))).to.equal('realm');
      expect(option(() => bearerAuth(v, { required: 'no' } as unknown as BearerAuthOptions))).to.equal('required');
    });

    it('requireScope, requireScope.any, requireClaims', () => {
      expect(option(() => requireScope())).to.equal('scopes');
      expect(option(() => requireScope.any('read write'))).to.equal('scopes');
      expect(option(() => requireClaims('tenant' as unknown as () => boolean))).to.equal('predicate');
      expect(option(() => requireClaims(() => true, { description: '' }))).to.equal('description');
    });

    it('tokenEndpoints: reported when the app loads it', async () => {
      const store = { verify: v.verify, revoke: async () => true, publicJwks: async () => ({ keys: [] }) };
      const load = async (options: unknown) => {
        const app = Fastify();
        try {
          await app.register(tokenEndpoints, options as TokenEndpointsOptions);
          await app.ready();
        } catch (err) {
          return (err as ConfigError).option;
        } finally {
          await app.close();
        }
        return 'loaded';
      };
      expect(await load({ store })).to.equal('authorize');
      expect(await load({ store, authorize: true })).to.equal('authorize');
      expect(await load({ store: {}, authorize: false })).to.equal('store');
      expect(await load({ store: { verify: v.verify }, authorize: false })).to.equal('store');
      expect(await load({ store: { verify: v.verify }, authorize: false, paths: { revocation: false, jwks: false } })).to.equal('loaded');
      expect(await load({ store, authorize: false, realm: 'a"b' })).to.equal('realm');
      expect(await load({ store, authorize: false, limit: 10 })).to.equal('limit');
      expect(await load({ store, authorize: false, jwksMaxAge: -1 })).to.equal('maxAge');
      expect(await load({ store, authorize: false, paths: { jwks: 'jwks.json' } })).to.equal('paths.jwks');
      expect(await load({ store, authorize: false })).to.equal('loaded');
    });
  });

  describe('tokenEndpoints plugin', () => {
    let store: TokenStore;
    let app: FastifyInstance;
    let appErrors: unknown[];
    const post = (url: string, payload: string | Buffer, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url, payload, headers: { 'content-type': FORM, ...headers } });
    const introspect = (token: string, headers?: Record<string, string>) => post('/oauth/introspect', `token=${encodeURIComponent(token)}`, headers);
    /** Authenticates as whatever client the test names in X-Client. */
    const asClient = (request: FastifyRequest) => typeof request.headers['x-client'] === 'string' && { clientId: request.headers['x-client'] };

    async function build(options: Partial<TokenEndpointsOptions> = {}) {
      app = Fastify();
      appErrors = [];
      app.setErrorHandler((err, _request, reply) => { appErrors.push(err); return reply.code(500).send({ appHandler: true }); });
      await app.register(tokenEndpoints, { store, authorize: asClient, ...options });
      // An app route beside the plugin: the plugin's form parser must not reach it.
      app.post('/app/json', async (request) => ({ got: request.body }));
      await app.ready();
    }
    beforeEach(async () => {
      store = fx.store({ audience: 'https://api.test' });
      await build();
    });
    afterEach(() => app.close());

    it('introspection: a live token → 200 with the RFC 7662 members, no-store', async () => {
      const issued = await store.issue('alice', { scope: 'read', clientId: 'web', claims: { tenant: 't1' } });
      const res = await introspect(issued.token, { 'x-client': 'rs' });
      expect([res.statusCode, res.headers['cache-control']]).to.deep.equal([200, 'no-store']);
      expect(res.json()).to.deep.equal({
        active: true, sub: 'alice', scope: 'read', exp: issued.claims.exp, iat: issued.claims.iat, client_id: 'web',
        jti: issued.jti, iss: ISSUER, aud: 'https://api.test', token_type: 'Bearer',
      });
    });

    it('introspection: revoked, garbage, never issued, a bare jti → 200 { active: false }', async () => {
      const issued = await store.issue('alice');
      await store.revoke(issued.token);
      for (const token of [issued.token, issued.jti, 'a.b.c', 'not a token', await signedNotIssued()]) {
        const res = await introspect(token, { 'x-client': 'rs' });
        expect([res.statusCode, res.json()], token).to.deep.equal([200, { active: false }]);
      }
    });

    it('introspection: authorize refusing → 401 (Bearer challenge, or invalid_client with a Basic one)', async () => {
      const issued = await store.issue('alice');
      const res = await introspect(issued.token);
      expect([res.statusCode, res.headers['www-authenticate'], res.headers['cache-control']]).to.deep.equal([401, BARE, 'no-store']);
      expect(res.json()).to.deep.equal(UNAUTHORIZED);
      const basic = await introspect(issued.token, { authorization: 'Basic cnM6d3Jvbmc=' });
      expect([basic.statusCode, basic.headers['www-authenticate']]).to.deep.equal([401, 'Basic realm="api"']);
      expect(basic.json()).to.deep.equal({ error: 'invalid_client', error_description: 'client authentication failed' });
    });

    it('authorize sees the parsed form on request.body (client_secret_post)', async () => {
      await app.close();
      const seen: unknown[] = [];
      await build({
        authorize: async (request) => {
          const body = request.body as Record<string, string>;
          seen.push({ ...body });
          return body.client_secret === 's3cret' && { clientId: body.client_id! };
        },
      });
      const issued = await store.issue('alice', { clientId: 'rs' });
      expect((await post('/oauth/revoke', `client_id=rs&client_secret=wrong&token=${issued.token}`)).statusCode).to.equal(401);
      expect((await post('/oauth/revoke', `client_id=rs&client_secret=s3cret&token=${issued.token}`)).statusCode).to.equal(200);
      expect(seen).to.deep.equal([
        { client_id: 'rs', client_secret: 'wrong', token: issued.token },
        { client_id: 'rs', client_secret: 's3cret', token: issued.token },
      ]);
      expect((await introspect(issued.token, { 'x-client': 'rs' })).statusCode).to.equal(401);
    });

    it('revocation: a client revokes its own token (200, empty body); another client\'s → 400, left live', async () => {
      const mine = await store.issue('alice', { clientId: 'web' });
      const theirs = await store.issue('alice', { clientId: 'mobile' });
      const refused = await post('/oauth/revoke', `token=${theirs.token}`, { 'x-client': 'web' });
      expect([refused.statusCode, refused.headers['cache-control']]).to.deep.equal([400, 'no-store']);
      expect(refused.json()).to.deep.equal(INVALID_REQUEST('token was not issued to this client'));
      expect((await store.verify(theirs.token)).jti).to.equal(theirs.jti);

      const res = await post('/oauth/revoke', `token=${mine.token}`, { 'x-client': 'web' });
      expect([res.statusCode, res.payload]).to.deep.equal([200, '']);
      expect((await introspect(mine.token, { 'x-client': 'web' })).json()).to.deep.equal({ active: false });
      // Already revoked, garbage, a bare jti: 200, nothing else revoked.
      for (const token of [mine.token, 'garbage', 'a.b.c', theirs.jti]) {
        expect((await post('/oauth/revoke', `token=${token}`, { 'x-client': 'web' })).statusCode, token).to.equal(200);
      }
      expect((await store.verify(theirs.token)).jti).to.equal(theirs.jti);
    });

    it('revocation with authorize returning true → the app\'s error handler gets a ConfigError, nothing revoked', async () => {
      await app.close();
      await build({ authorize: () => true });
      const issued = await store.issue('alice');
      const res = await post('/oauth/revoke', `token=${issued.token}`);
      expect([res.statusCode, res.json()]).to.deep.equal([500, { appHandler: true }]);
      expect((appErrors[0] as ConfigError).option).to.equal('authorize');
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
    });

    it('strict form parsing: each malformed body → 400 invalid_request, no-store, never 500', async () => {
      const cases: Array<[string, string | Buffer, string, string]> = [
        ['no token parameter', 'token_type_hint=access_token', FORM, 'token parameter missing'],
        ['an empty token', 'token=', FORM, 'token parameter missing'],
        ['an empty body', '', FORM, 'token parameter missing'],
        ['a repeated parameter', 'token=a.b.c&token=d.e.f', FORM, 'a parameter is repeated'],
        ['a bad percent-escape', 'token=%zz', FORM, 'request body is not valid form encoding'],
        ['percent-encoded invalid UTF-8', 'token=%ff%fe', FORM, 'request body is not valid form encoding'],
        ['raw invalid UTF-8', Buffer.from([0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x3d, 0xff, 0xfe]), FORM, 'request body is not valid UTF-8'],
        ['a JSON body', '{"token":"abc"}', 'application/json', `content type must be ${FORM}`],
        ['a multipart body', 'token=abc', 'multipart/form-data; boundary=x', `content type must be ${FORM}`],
        ['a text body', 'token=abc', 'text/plain', `content type must be ${FORM}`],
        ['a content type Fastify cannot parse', 'token=abc', 'not a type', `content type must be ${FORM}`],
        ['a charset other than UTF-8', 'token=abc', `${FORM}; charset=iso-8859-1`, 'charset must be utf-8'],
        ['a body over the limit', `token=${'a'.repeat(70 * 1024)}`, FORM, 'request body too large'],
      ];
      for (const [name, body, type, description] of cases) {
        for (const url of ['/oauth/introspect', '/oauth/revoke']) {
          const res = await post(url, body, { 'content-type': type, 'x-client': 'web' });
          expect([res.statusCode, res.headers['cache-control'], res.json()], `${url}: ${name}`).to.deep.equal([400, 'no-store', INVALID_REQUEST(description)]);
        }
      }
      const gzip = await post('/oauth/introspect', 'token=abc', { 'content-encoding': 'gzip', 'x-client': 'web' });
      expect([gzip.statusCode, gzip.json()]).to.deep.equal([400, INVALID_REQUEST('content encoding not supported')]);
      const none = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { 'x-client': 'web' } });
      expect([none.statusCode, none.json()]).to.deep.equal([400, INVALID_REQUEST(`content type must be ${FORM}`)]);
      expect(appErrors).to.deep.equal([]);
    });

    it('the plugin\'s form parser stays in its scope: the app still parses JSON itself', async () => {
      const res = await app.inject({ method: 'POST', url: '/app/json', payload: { a: 1 } });
      expect([res.statusCode, res.json()]).to.deep.equal([200, { got: { a: 1 } }]);
      // Fastify's own 415 for a type the app has no parser for, to the app's error handler.
      await app.inject({ method: 'POST', url: '/app/json', payload: 'a=1', headers: { 'content-type': FORM } });
      expect(appErrors.map((e) => (e as { code?: string }).code)).to.deep.equal(['FST_ERR_CTP_INVALID_MEDIA_TYPE']);
      expect(app.hasRequestDecorator('auth')).to.equal(true);
    });

    it('another method → 405 with Allow, whatever the body', async () => {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'HEAD'] as const) {
        for (const url of ['/oauth/introspect', '/oauth/revoke']) {
          const res = await app.inject({ method, url, payload: method === 'GET' || method === 'HEAD' ? undefined : '{"x":1', headers: { 'content-type': 'application/json' } });
          expect([res.statusCode, res.headers.allow], `${method} ${url}`).to.deep.equal([405, 'POST']);
        }
      }
      const res = await app.inject({ method: 'POST', url: '/.well-known/jwks.json', payload: '{', headers: { 'content-type': 'application/json' } });
      expect([res.statusCode, res.headers.allow]).to.deep.equal([405, 'GET, HEAD']);
    });

    it('JWKS: the public keys, cacheable; an HS256 store publishes none', async () => {
      expect((await app.inject({ url: '/.well-known/jwks.json' })).json()).to.deep.equal({ keys: [] });
      await app.close();
      const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      store = fx.store({ key: es.privateKey, kid: 'es-1' });
      await build({ jwksMaxAge: 60 });
      const res = await app.inject({ url: '/.well-known/jwks.json' });
      expect([res.statusCode, res.headers['cache-control']]).to.deep.equal([200, 'public, max-age=60']);
      const jwk = es.publicKey.export({ format: 'jwk' });
      expect(res.json()).to.deep.equal({ keys: [{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: 'es-1', alg: 'ES256', use: 'sig' }] });
      expect((await app.inject({ method: 'HEAD', url: '/.well-known/jwks.json' })).statusCode).to.equal(200);
    });

    it('paths: moved, left out, and under the registration prefix', async () => {
      await app.close();
      app = Fastify();
      await app.register(tokenEndpoints, { store, authorize: false, prefix: '/auth', paths: { introspection: '/introspect', revocation: false } } as TokenEndpointsOptions);
      const issued = await store.issue('alice');
      const res = await app.inject({ method: 'POST', url: '/auth/introspect', payload: `token=${issued.token}`, headers: { 'content-type': FORM } });
      expect(res.json().active).to.equal(true);
      expect((await app.inject({ method: 'POST', url: '/auth/oauth/revoke', payload: 'token=x', headers: { 'content-type': FORM } })).statusCode).to.equal(404);
      expect((await app.inject({ url: '/auth/.well-known/jwks.json' })).statusCode).to.equal(200);
      expect(TOKEN_ENDPOINTS_DEFAULTS.paths).to.deep.equal({ introspection: '/oauth/introspect', revocation: '/oauth/revoke', jwks: '/.well-known/jwks.json' });
    });

    it('registered twice (two realms, other paths) in one app', async () => {
      await app.close();
      app = Fastify();
      await app.register(tokenEndpoints, { store, authorize: () => false, realm: 'one', paths: { revocation: false, jwks: false } });
      await app.register(tokenEndpoints, { store, authorize: () => false, realm: 'two', paths: { introspection: '/two/introspect', revocation: false, jwks: false } });
      for (const [url, realm] of [['/oauth/introspect', 'one'], ['/two/introspect', 'two']]) {
        const res = await app.inject({ method: 'POST', url, payload: 'token=a.b.c', headers: { 'content-type': FORM } });
        expect([res.statusCode, res.headers['www-authenticate']]).to.deep.equal([401, `Bearer realm="${realm}"`]);
      }
    });

    it('behind bearerAuth, the client is the bearer token\'s; request.auth is declared on the app', async () => {
      await app.close();
      app = Fastify();
      await app.register(async (scope) => {
        scope.addHook('onRequest', bearerAuth(store));
        await scope.register(tokenEndpoints, {
          store,
          authorize: (request) => typeof request.auth?.claims.client_id === 'string' && { clientId: request.auth.claims.client_id },
          paths: { jwks: false },
        });
      });
      const caller = await store.issue('rs', { clientId: 'web' });
      const victim = await store.issue('alice', { clientId: 'web' });
      expect((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: `token=${victim.token}`, headers: { 'content-type': FORM } })).statusCode).to.equal(401);
      const res = await app.inject({ method: 'POST', url: '/oauth/revoke', payload: `token=${victim.token}`, headers: { 'content-type': FORM, authorization: `Bearer ${caller.token}` } });
      expect(res.statusCode).to.equal(200);
      expect((await store.list('alice')).map((x) => x.jti)).to.deep.equal([]);
    });
  });
});

describe('fastify with Redis down', () => {
  const fx = useRedis();

  it('bearerAuth → 503 with Retry-After; endpoints → 503; a cached token still passes', async () => {
    const store = fx.store({ timeout: 300 });
    const cold = await store.issue('alice');
    const app = Fastify();
    app.get('/me', { onRequest: bearerAuth(store) }, async (request) => ({ sub: request.auth!.sub }));
    await app.register(tokenEndpoints, { store, authorize: false });
    await fx.server.kill();

    const res = await app.inject({ url: '/me', headers: { authorization: `Bearer ${cold.token}` } });
    expect([res.statusCode, res.headers['retry-after']]).to.deep.equal([503, '1']);
    expect(res.headers).to.not.have.property('www-authenticate');
    expect(res.json()).to.deep.equal({ error: 'service_unavailable', error_description: 'token store unavailable' });
    for (const url of ['/oauth/introspect', '/oauth/revoke']) {
      const down = await app.inject({ method: 'POST', url, payload: `token=${cold.token}`, headers: { 'content-type': FORM } });
      expect([down.statusCode, down.headers['retry-after'], down.json().error], url).to.deep.equal([503, '1', 'service_unavailable']);
    }
    // Invalid tokens need no Redis: still their usual answers.
    expect((await app.inject({ url: '/me', headers: { authorization: 'Bearer a.b.c' } })).statusCode).to.equal(401);
    await app.close();
  });
});

// Type-level: the hooks fit typed routes' onRequest and preHandler; request.auth is typed.
export function typecheck(app: FastifyInstance, store: TokenVerifier): void {
  app.get<{ Querystring: { q: string } }>('/typed', { onRequest: [bearerAuth(store)], preHandler: requireScope.any('a') }, async (request) => {
    const auth: AuthInfo | undefined = request.auth;
    return { q: request.query.q, sub: auth?.sub };
  });
}
