import { createHash, generateKeyPairSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { expect } from 'chai';
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import { createLocalJWKSet, jwtVerify, SignJWT, type JWK } from 'jose';
import request from 'supertest';
import { ConfigError, type TokenStore } from '../lib/index.js';
import {
  ENDPOINT_DEFAULTS,
  introspection,
  InvalidTokenError,
  jwks,
  revocation,
  type EndpointOptions,
  type JwksSource,
  type TokenIntrospector,
  type TokenRevoker,
} from '../lib/express/index.js';
import { InvalidClientError } from '../lib/http/errors.js';
import { SECRET, useRedis } from './support/fixture.js';
import { untilTime } from './support/wait.js';

const FORM = 'application/x-www-form-urlencoded';
const ISSUER = 'https://issuer.test';
const INVALID_REQUEST = (description: string) => ({ error: 'invalid_request', error_description: description });
const MISSING = INVALID_REQUEST('token parameter missing');

interface TestApp {
  app: express.Express;
  /** Errors that reached the app's own error handler (answered 500). */
  appErrors: unknown[];
}

/** An app with `handler` on every method at `/ep`, optional middleware first, and an app error handler. */
function makeApp(handler: RequestHandler, before: RequestHandler[] = []): TestApp {
  const app = express();
  app.set('env', 'test');
  const appErrors: unknown[] = [];
  app.all('/ep', ...before, handler);
  const own: ErrorRequestHandler = (err, _req, res, _next) => {
    appErrors.push(err);
    res.status(500).json({ appHandler: true });
  };
  app.use(own);
  return { app, appErrors };
}

const post = (t: TestApp, body: string, type = FORM) => request(t.app).post('/ep').set('Content-Type', type).send(body);
const tokenBody = (token: string) => `token=${encodeURIComponent(token)}`;

/** A token signed with the store's secret and claims, but never issued (not in Redis). */
async function signedNotIssued(exp = Math.floor(Date.now() / 1000) + 600, key: Uint8Array | KeyObject = new TextEncoder().encode(SECRET)): Promise<string> {
  return new SignJWT({ client_id: ISSUER, scope: 'read' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setSubject('mallory')
    .setIssuer(ISSUER)
    .setJti('AAAAAAAAAAAAAAAAAAAAAA')
    .setIssuedAt(exp - 600)
    .setExpirationTime(exp)
    .sign(key);
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  expect.fail('expected a ConfigError');
}

describe('endpoints', () => {
  const fx = useRedis();

  describe('introspection (RFC 7662)', () => {
    let store: TokenStore;
    let t: TestApp;
    beforeEach(() => {
      store = fx.store({ audience: ['https://api.test', 'https://other.test'] });
      t = makeApp(introspection(store, { authorize: false }));
    });

    it('a live token → 200 with exactly the RFC 7662 members, no-store', async () => {
      const issued = await store.issue('alice', { scope: 'read write', clientId: 'web', claims: { tenant: 't1' } });
      const res = await post(t, tokenBody(issued.token)).expect(200).expect('Content-Type', /^application\/json/).expect('Cache-Control', 'no-store');
      expect(res.body).to.deep.equal({
        active: true,
        sub: 'alice',
        scope: 'read write',
        exp: issued.claims.exp,
        iat: issued.claims.iat,
        client_id: 'web',
        jti: issued.jti,
        iss: ISSUER,
        aud: ['https://api.test', 'https://other.test'],
        token_type: 'Bearer',
      });
      expect(res.body.exp).to.equal(Math.floor(issued.expiresAt / 1000));
    });

    it('members the token lacks are left out (no scope, single audience)', async () => {
      const plain = fx.store({ audience: 'https://api.test' });
      const app = makeApp(introspection(plain, { authorize: false }));
      const issued = await plain.issue('bob');
      const res = await post(app, tokenBody(issued.token)).expect(200);
      expect(res.body).to.deep.equal({
        active: true, sub: 'bob', exp: issued.claims.exp, iat: issued.claims.iat, client_id: ISSUER,
        jti: issued.jti, iss: ISSUER, aud: 'https://api.test', token_type: 'Bearer',
      });
    });

    it('a revoked token → 200 { active: false }', async () => {
      const issued = await store.issue('alice');
      expect((await post(t, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);
      expect(await store.revoke(issued.token)).to.equal(true);
      const res = await post(t, tokenBody(issued.token)).expect(200);
      expect(res.body).to.deep.equal({ active: false });
    });

    it('an expired token → 200 { active: false }', async () => {
      const issued = await store.issue('alice', { ttl: 1 });
      expect((await post(t, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);
      await untilTime(issued.expiresAt + 1); // Redis expires a key once its time is past the deadline
      const res = await post(t, tokenBody(issued.token)).expect(200);
      expect(res.body).to.deep.equal({ active: false });
    });

    const garbage: Array<[string, () => Promise<string>]> = [
      ['garbage text', async () => 'not a token at all'],
      ['three garbage segments', async () => 'a.b.c'],
      ['a bare jti', async () => 'AAAAAAAAAAAAAAAAAAAAAA'],
      ['a token signed with the right key but never issued', () => signedNotIssued()],
      ['a token signed with another secret', () => signedNotIssued(undefined, new TextEncoder().encode('x'.repeat(40)))],
      ['a signed token that expired', () => signedNotIssued(Math.floor(Date.now() / 1000) - 10)],
      ['a huge token (20 000 characters)', async () => `${'a'.repeat(10_000)}.${'b'.repeat(10_000)}`],
      ['unicode', async () => 'tökén ✓'],
    ];
    for (const [name, make] of garbage) {
      it(`${name} → 200 { active: false }`, async () => {
        const res = await post(t, tokenBody(await make())).expect(200).expect('Cache-Control', 'no-store');
        expect(res.body).to.deep.equal({ active: false });
        expect(t.appErrors).to.deep.equal([]);
      });
    }

    it('a live token whose jti is introspected alone → inactive (only a signed token counts)', async () => {
      const issued = await store.issue('alice');
      expect((await post(t, tokenBody(issued.jti)).expect(200)).body).to.deep.equal({ active: false });
    });

    it('token_type_hint is accepted and ignored; other parameters too', async () => {
      const issued = await store.issue('alice');
      const res = await post(t, `token_type_hint=refresh_token&client_id=x&${tokenBody(issued.token)}`).expect(200);
      expect(res.body.active).to.equal(true);
      expect(res.body.jti).to.equal(issued.jti);
    });

    const badRequests: Array<[string, string, string, string]> = [
      ['no token parameter', 'token_type_hint=access_token', FORM, 'token parameter missing'],
      ['an empty body', '', FORM, 'token parameter missing'],
      ['an empty token (RFC 6749 §3.1: treated as omitted)', 'token=', FORM, 'token parameter missing'],
      ['a token parameter without "="', 'token', FORM, 'token parameter missing'],
      ['a JSON body', JSON.stringify({ token: 'abc' }), 'application/json', `content type must be ${FORM}`],
      ['a text body', 'token=abc', 'text/plain', `content type must be ${FORM}`],
      ['a multipart content type', 'token=abc', 'multipart/form-data; boundary=x', `content type must be ${FORM}`],
      ['a bad percent-escape', 'token=%zz', FORM, 'request body is not valid form encoding'],
      ['a truncated percent-escape', 'token=abc%4', FORM, 'request body is not valid form encoding'],
      ['percent-encoded invalid UTF-8', 'token=%ff%fe', FORM, 'request body is not valid form encoding'],
      ['a repeated token', 'token=a.b.c&token=d.e.f', FORM, 'a parameter is repeated'],
      ['a charset other than UTF-8', 'token=abc', `${FORM}; charset=iso-8859-1`, 'charset must be utf-8'],
    ];
    for (const [name, body, type, description] of badRequests) {
      it(`${name} → 400 invalid_request`, async () => {
        const res = await post(t, body, type).expect(400).expect('Cache-Control', 'no-store');
        expect(res.body).to.deep.equal(INVALID_REQUEST(description));
        expect(t.appErrors).to.deep.equal([]);
      });
    }

    it('raw invalid UTF-8 bytes → 400 invalid_request', async () => {
      const raw = Buffer.from([0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x3d, 0xff, 0xfe]); // "token=" then two bytes that are not UTF-8
      const res = await request(t.app).post('/ep').set('Content-Type', FORM).serialize((data: unknown) => data as string).send(raw);
      expect(res.status).to.equal(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST('request body is not valid UTF-8'));
    });

    it('no content type → 400 invalid_request', async () => {
      const res = await request(t.app).post('/ep').send(Buffer.from('token=abc')).unset('Content-Type').expect(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST(`content type must be ${FORM}`));
    });

    it('a gzip-encoded body → 400 invalid_request', async () => {
      const res = await post(t, 'token=abc').set('Content-Encoding', 'gzip').expect(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST('content encoding not supported'));
    });

    it('a body over the limit (1 MiB) → 400 invalid_request, and the server keeps serving', async () => {
      const res = await post(t, `token=${'a'.repeat(1024 * 1024)}`).expect(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST('request body too large'));
      const issued = await store.issue('alice');
      expect((await post(t, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);
    });

    it('the limit option is honoured without a Content-Length (chunked body)', async () => {
      const small = makeApp(introspection(store, { authorize: false, limit: 1024 }));
      const issued = await store.issue('alice');
      // Under the limit: fine.
      expect((await post(small, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);
      const req = request(small.app).post('/ep').set('Content-Type', FORM).set('Transfer-Encoding', 'chunked');
      req.write('token=');
      req.write('a'.repeat(2000));
      const res = await req;
      expect(res.status).to.equal(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST('request body too large'));
    });

    it('another method than POST → 405 with Allow: POST', async () => {
      await request(t.app).get('/ep').expect(405).expect('Allow', 'POST');
    });

    describe('behind a body parser', () => {
      it('express.urlencoded() before it: the parsed body is used', async () => {
        const app = makeApp(introspection(store, { authorize: false }), [express.urlencoded({ extended: false })]);
        const issued = await store.issue('alice');
        expect((await post(app, tokenBody(issued.token)).expect(200)).body.jti).to.equal(issued.jti);
        expect((await post(app, 'token=a&token=b').expect(400)).body).to.deep.equal(INVALID_REQUEST('a parameter is repeated'));
        expect((await post(app, 'x=1').expect(400)).body).to.deep.equal(MISSING);
      });

      it('express.urlencoded({ extended: true }) with a nested token → 400', async () => {
        const app = makeApp(introspection(store, { authorize: false }), [express.urlencoded({ extended: true })]);
        expect((await post(app, 'token[a]=b').expect(400)).body).to.deep.equal(INVALID_REQUEST('parameters must be strings'));
      });

      it('express.json() before it: a JSON body → 400, a form body is still read', async () => {
        const app = makeApp(introspection(store, { authorize: false }), [express.json()]);
        expect((await post(app, JSON.stringify({ token: 'x' }), 'application/json').expect(400)).body.error).to.equal('invalid_request');
        const issued = await store.issue('alice');
        expect((await post(app, tokenBody(issued.token)).expect(200)).body.jti).to.equal(issued.jti);
      });

      it('express.text({ type: form }) before it: the string body is parsed', async () => {
        const app = makeApp(introspection(store, { authorize: false }), [express.text({ type: FORM })]);
        const issued = await store.issue('alice');
        expect((await post(app, tokenBody(issued.token)).expect(200)).body.jti).to.equal(issued.jti);
        expect((await post(app, 'token=%zz').expect(400)).body.error).to.equal('invalid_request');
      });
    });
  });

  describe('authorize', () => {
    let store: TokenStore;
    beforeEach(() => {
      store = fx.store();
    });

    for (const [name, make] of [['introspection', introspection], ['revocation', revocation]] as const) {
      describe(name, () => {
        const build = (options: EndpointOptions) => makeApp(make(store as TokenIntrospector & TokenRevoker, options));

        it('authorize returning the token\'s client → the request is served', async () => {
          const t = build({ authorize: () => ({ clientId: 'web' }) });
          const issued = await store.issue('alice', { clientId: 'web' });
          await post(t, tokenBody(issued.token)).expect(200);
        });

        for (const [label, result] of [['{ clientId: "" }', { clientId: '' }], ['{ clientId: 42 }', { clientId: 42 }], ['{}', {}], ['null', null]] as const) {
          it(`authorize returning ${label} → 401, the token untouched`, async () => {
            const t = build({ authorize: () => result as unknown as boolean });
            const issued = await store.issue('alice');
            await post(t, tokenBody(issued.token)).expect(401).expect('WWW-Authenticate', 'Bearer realm="api"');
            expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
          });
        }

        it('a failed HTTP Basic client authentication → 401 invalid_client with a Basic challenge (RFC 6749 §5.2)', async () => {
          const t = build({ authorize: () => false, realm: 'oauth' });
          const issued = await store.issue('alice');
          const basic = `Basic ${Buffer.from('rs:wrong').toString('base64')}`;
          for (const authorization of [basic, 'Basic', 'basic !!!not-base64', 'BASIC   ']) {
            const res = await post(t, tokenBody(issued.token)).set('Authorization', authorization)
              .expect(401).expect('WWW-Authenticate', 'Basic realm="oauth"').expect('Cache-Control', 'no-store');
            expect(res.body, authorization).to.deep.equal({ error: 'invalid_client', error_description: 'client authentication failed' });
          }
          // Another scheme, or none, keeps the Bearer challenge.
          await post(t, tokenBody(issued.token)).set('Authorization', 'Bearer abc').expect(401).expect('WWW-Authenticate', 'Bearer realm="oauth"');
          await post(t, tokenBody(issued.token)).set('Authorization', 'Basicx abc').expect(401).expect('WWW-Authenticate', 'Bearer realm="oauth"');
          expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
          expect(t.appErrors).to.deep.equal([]);
        });

        it('authorize throwing InvalidClientError → answered with it', async () => {
          const t = build({ authorize: () => { throw new InvalidClientError('unknown client', { realm: 'oauth' }); } });
          const res = await post(t, 'token=a.b.c').expect(401).expect('WWW-Authenticate', 'Basic realm="oauth"');
          expect(res.body).to.deep.equal({ error: 'invalid_client', error_description: 'unknown client' });
        });

        it('mounted with app.all as the README shows: GET, PUT, DELETE, HEAD → 405 with Allow: POST', async () => {
          const app = express();
          app.all('/oauth/endpoint', make(store as TokenIntrospector & TokenRevoker, { authorize: () => ({ clientId: 'web' }) }));
          for (const method of ['get', 'put', 'delete', 'patch'] as const) {
            const res = await request(app)[method]('/oauth/endpoint').expect(405).expect('Allow', 'POST');
            expect(res.body, method).to.deep.equal({ error: 'method_not_allowed' });
          }
          await request(app).head('/oauth/endpoint').expect(405).expect('Allow', 'POST');
        });

        for (const [label, result] of [['false', false], ['a truthy non-boolean', 'yes'], ['a promise of false', Promise.resolve(false)]] as const) {
          it(`authorize returning ${label} → 401 with WWW-Authenticate, and the token is untouched`, async () => {
            const t = build({ authorize: () => result as unknown as boolean, realm: 'oauth' });
            const issued = await store.issue('alice');
            const res = await post(t, tokenBody(issued.token)).expect(401).expect('WWW-Authenticate', 'Bearer realm="oauth"');
            expect(res.body).to.deep.equal({ error: 'unauthorized', error_description: 'authentication required' });
            expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
          });
        }

        it('unauthorized callers learn nothing about a missing token (401 before 400)', async () => {
          const t = build({ authorize: () => false });
          await post(t, 'x=1').expect(401).expect('WWW-Authenticate', 'Bearer realm="api"');
        });

        it('authorize sees the parsed form on req.body (client_secret_post) and can be async', async () => {
          const seen: unknown[] = [];
          const t = build({
            authorize: async (req: Request) => {
              seen.push({ ...req.body });
              return req.body.client_id === 'rs' && req.body.client_secret === 's3cret' && { clientId: 'rs' };
            },
          });
          const issued = await store.issue('alice', { clientId: 'rs' });
          await post(t, `client_id=rs&client_secret=wrong&${tokenBody(issued.token)}`).expect(401);
          await post(t, `client_id=rs&client_secret=s3cret&${tokenBody(issued.token)}`).expect(200);
          expect(seen).to.deep.equal([
            { client_id: 'rs', client_secret: 'wrong', token: issued.token },
            { client_id: 'rs', client_secret: 's3cret', token: issued.token },
          ]);
        });

        it('authorize throwing a plain error → passed to next (the app handler), the token untouched', async () => {
          const bug = new Error('bug in authorize');
          const t = build({ authorize: () => { throw bug; } });
          const issued = await store.issue('alice');
          const res = await post(t, tokenBody(issued.token)).expect(500);
          expect(res.body).to.deep.equal({ appHandler: true });
          expect(t.appErrors).to.deep.equal([bug]);
          expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
        });

        it('authorize throwing an AuthHttpError → answered with it', async () => {
          const t = build({ authorize: async () => { throw new InvalidTokenError('client token revoked', { realm: 'oauth' }); } });
          const res = await post(t, 'token=a.b.c').expect(401).expect('WWW-Authenticate', 'Bearer realm="oauth", error="invalid_token", error_description="client token revoked"');
          expect(res.body).to.deep.equal({ error: 'invalid_token', error_description: 'client token revoked' });
          expect(t.appErrors).to.deep.equal([]);
        });
      });
    }
  });

  describe('the README\'s timing-safe authorize', () => {
    // Copied from the README ("Standard endpoints"): keep the two the same.
    const clients = new Map([['resource-server', 'a-long-random-secret']]); // client_id → secret
    const sha256 = (text: string) => createHash('sha256').update(text).digest();
    const UNKNOWN = sha256('no client has this secret');

    function authenticateClient(req: Request): { clientId: string } | false {
      const basic = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(req.headers.authorization ?? '');
      if (!basic) return false;
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return false;
      let id: string;
      let secret: string;
      try {
        // RFC 6749 §2.3.1: both are form-encoded before they are put in the header.
        id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
        secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      } catch {
        return false;
      }
      const expected = clients.get(id);
      // Digests have one length whatever the secrets', and an unknown id costs the same.
      const same = timingSafeEqual(sha256(secret), expected === undefined ? UNKNOWN : sha256(expected));
      return same && expected !== undefined ? { clientId: id } : false;
    }

    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

    it('lets the right secret in, and answers any other 401 invalid_client with a Basic challenge', async () => {
      const store = fx.store({ clientId: 'resource-server' });
      const t = makeApp(revocation(store, { authorize: authenticateClient, realm: 'oauth' }));
      const issued = await store.issue('alice');
      for (const authorization of [
        basic('resource-server', 'wrong'),
        basic('resource-server', 'a-long-random-secret-plus'),
        basic('resource-server', ''),
        basic('someone-else', 'a-long-random-secret'),
        'Basic bm8tY29sb24=', // "no-colon"
        basic('resource-server', '%zz'),
      ]) {
        const res = await post(t, tokenBody(issued.token)).set('Authorization', authorization).expect(401).expect('WWW-Authenticate', 'Basic realm="oauth"');
        expect(res.body.error, authorization).to.equal('invalid_client');
      }
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
      await post(t, tokenBody(issued.token)).set('Authorization', basic('resource-server', 'a-long-random-secret')).expect(200, '');
      expect((await post(makeApp(introspection(store, { authorize: false })), tokenBody(issued.token)).expect(200)).body).to.deep.equal({ active: false });
    });
  });

  describe('revocation: only the client\'s own tokens (RFC 7009 §2.1)', () => {
    let store: TokenStore;
    /** Authenticates as whatever client the test names in the X-Client header (the check under test comes after). */
    const asClient = (req: Request) => typeof req.headers['x-client'] === 'string' && { clientId: req.headers['x-client'] };
    let revoke: TestApp;
    beforeEach(() => {
      store = fx.store();
      revoke = makeApp(revocation(store, { authorize: asClient }));
    });
    const revokeAs = (client: string, token: string) => post(revoke, tokenBody(token)).set('X-Client', client);

    it('a client revokes its own token', async () => {
      const mine = await store.issue('alice', { clientId: 'web' });
      await revokeAs('web', mine.token).expect(200, '');
      let error: unknown;
      await store.verify(mine.token).catch((err: unknown) => { error = err; });
      expect((error as { code?: string })?.code).to.equal('ERR_TOKEN_REVOKED');
    });

    it('another client\'s live token → 400 invalid_request, and it stays live', async () => {
      const theirs = await store.issue('alice', { clientId: 'web' });
      const mine = await store.issue('alice', { clientId: 'mobile' });
      const res = await revokeAs('mobile', theirs.token).expect(400).expect('Cache-Control', 'no-store').expect('Content-Type', /^application\/json/);
      expect(res.body).to.deep.equal({ error: 'invalid_request', error_description: 'token was not issued to this client' });
      expect((await store.verify(theirs.token)).jti).to.equal(theirs.jti);
      expect((await store.verify(mine.token)).jti).to.equal(mine.jti);
      expect(revoke.appErrors).to.deep.equal([]);
    });

    it('a client id differing only in case or by a prefix is another client', async () => {
      const theirs = await store.issue('alice', { clientId: 'web' });
      for (const client of ['Web', 'we', 'web2', 'web/']) {
        await revokeAs(client, theirs.token).expect(400);
      }
      expect((await store.verify(theirs.token)).jti).to.equal(theirs.jti);
    });

    it('another client\'s token that is already revoked, or a forged one naming the caller → 200, nothing revoked', async () => {
      const theirs = await store.issue('alice', { clientId: 'web' });
      await store.revoke(theirs.token);
      await revokeAs('mobile', theirs.token).expect(200, '');
      const live = await store.issue('alice', { clientId: 'web' });
      const forged = await new SignJWT({ client_id: 'mobile' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setSubject('alice').setIssuer(ISSUER).setJti(live.jti).setIssuedAt().setExpirationTime('10m')
        .sign(new TextEncoder().encode('z'.repeat(40)));
      await revokeAs('mobile', forged).expect(200, '');
      expect((await store.verify(live.token)).jti).to.equal(live.jti);
    });

    it('authorize returning true (no client named) → the app\'s error handler gets a ConfigError, nothing revoked', async () => {
      const t = makeApp(revocation(store, { authorize: () => true }));
      const issued = await store.issue('alice');
      await post(t, tokenBody(issued.token)).expect(500, { appHandler: true });
      expect(t.appErrors).to.have.length(1);
      expect(t.appErrors[0]).to.be.instanceOf(ConfigError);
      expect((t.appErrors[0] as ConfigError).option).to.equal('authorize');
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
    });

    it('introspection still answers a caller authorized with true, about any client\'s token', async () => {
      const t = makeApp(introspection(store, { authorize: () => true }));
      const issued = await store.issue('alice', { clientId: 'web' });
      expect((await post(t, tokenBody(issued.token)).expect(200)).body).to.include({ active: true, client_id: 'web' });
    });
  });

  describe('revocation (RFC 7009)', () => {
    let store: TokenStore;
    let revoke: TestApp;
    let introspect: TestApp;
    beforeEach(() => {
      store = fx.store();
      revoke = makeApp(revocation(store, { authorize: false }));
      introspect = makeApp(introspection(store, { authorize: false }));
    });

    it('revokes a live token: 200 with an empty body, then introspection says inactive', async () => {
      const issued = await store.issue('alice');
      const other = await store.issue('alice');
      expect((await post(introspect, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);
      const res = await post(revoke, tokenBody(issued.token)).expect(200).expect('Cache-Control', 'no-store');
      expect(res.text).to.equal('');
      expect((await post(introspect, tokenBody(issued.token)).expect(200)).body).to.deep.equal({ active: false });
      expect((await store.list('alice')).map((x) => x.jti)).to.deep.equal([other.jti]);
    });

    it('an already revoked token → 200', async () => {
      const issued = await store.issue('alice');
      await post(revoke, tokenBody(issued.token)).expect(200);
      await post(revoke, tokenBody(issued.token)).expect(200, '');
    });

    const invalid: Array<[string, () => Promise<string>]> = [
      ['an unknown (validly signed, never issued) token', () => signedNotIssued()],
      ['a garbage token', async () => 'garbage'],
      ['a three-segment garbage token', async () => 'a.b.c'],
      ['a token signed with another secret', () => signedNotIssued(undefined, new TextEncoder().encode('y'.repeat(40)))],
      ['an expired token', () => signedNotIssued(Math.floor(Date.now() / 1000) - 10)],
      ['a huge token', async () => `${'a'.repeat(10_000)}.${'b'.repeat(10_000)}`],
    ];
    for (const [name, make] of invalid) {
      it(`${name} → 200, nothing else revoked`, async () => {
        const live = await store.issue('alice');
        const res = await post(revoke, tokenBody(await make())).expect(200);
        expect(res.text).to.equal('');
        expect(revoke.appErrors).to.deep.equal([]);
        expect((await store.verify(live.token)).jti).to.equal(live.jti);
      });
    }

    it('a bare jti → 200 but NOT revoked (only a holder of the token may revoke it)', async () => {
      const issued = await store.issue('alice');
      await post(revoke, tokenBody(issued.jti)).expect(200, '');
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
    });

    it('a forged token naming a live jti → 200 but NOT revoked', async () => {
      const issued = await store.issue('alice');
      const forged = await new SignJWT({ client_id: ISSUER })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setSubject('alice').setIssuer(ISSUER).setJti(issued.jti).setIssuedAt().setExpirationTime('10m')
        .sign(new TextEncoder().encode('z'.repeat(40)));
      await post(revoke, tokenBody(forged)).expect(200);
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
    });

    it('a missing token → 400 invalid_request', async () => {
      expect((await post(revoke, 'token_type_hint=access_token').expect(400)).body).to.deep.equal(MISSING);
      expect((await post(revoke, 'token=').expect(400)).body).to.deep.equal(MISSING);
    });

    it('a JSON body → 400 invalid_request, the token is not revoked', async () => {
      const issued = await store.issue('alice');
      const res = await post(revoke, JSON.stringify({ token: issued.token }), 'application/json').expect(400);
      expect(res.body).to.deep.equal(INVALID_REQUEST(`content type must be ${FORM}`));
      expect((await store.verify(issued.token)).jti).to.equal(issued.jti);
    });

    it('a malformed body → 400, never 500', async () => {
      for (const body of ['token=%E0%A4%A', 'token=a&token=b']) {
        expect((await post(revoke, body).expect(400)).body.error).to.equal('invalid_request');
      }
      expect((await post(revoke, `token=${'x'.repeat(200_000)}`).expect(400)).body).to.deep.equal(INVALID_REQUEST('request body too large'));
      expect(revoke.appErrors).to.deep.equal([]);
    });

    it('another method than POST → 405', async () => {
      await request(revoke.app).delete('/ep').expect(405).expect('Allow', 'POST');
    });
  });

  describe('jwks', () => {
    const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    const ed2 = generateKeyPairSync('ed25519');
    const pub = (key: KeyObject) => key.export({ format: 'jwk' }) as Record<string, string>;

    it('an ES256 key plus an Ed25519 key in verifyKeys → both public keys with kid, alg, use; cacheable', async () => {
      const store = fx.store({
        key: es.privateKey,
        kid: 'es-1',
        verifyKeys: [
          { kid: 'ed-0', key: ed.privateKey }, // a private key given: only its public half may appear
          { ...(ed2.privateKey.export({ format: 'jwk' }) as JWK), kid: 'ed-jwk' }, // a private JWK, with d
        ],
      });
      const t = makeApp(jwks(store));
      const res = await request(t.app).get('/ep').expect(200).expect('Cache-Control', 'public, max-age=300').expect('Content-Type', /^application\/json/);
      expect(res.body).to.deep.equal({
        keys: [
          { kty: 'EC', crv: 'P-256', x: pub(es.publicKey).x, y: pub(es.publicKey).y, kid: 'es-1', alg: 'ES256', use: 'sig' },
          { kty: 'OKP', crv: 'Ed25519', x: pub(ed.publicKey).x, kid: 'ed-0', alg: 'EdDSA', use: 'sig' },
          { kty: 'OKP', crv: 'Ed25519', x: pub(ed2.publicKey).x, kid: 'ed-jwk', alg: 'EdDSA', use: 'sig' },
        ],
      });
      for (const key of res.body.keys) expect(key).to.not.have.any.keys('d', 'p', 'q', 'dp', 'dq', 'qi', 'k');
      expect(res.text).to.not.include(pub(es.privateKey).d!);
      expect(res.text).to.not.include(pub(ed.privateKey).d!);
    });

    it('a public JWK from the endpoint verifies tokens with jose (createLocalJWKSet), the current and a rotated key', async () => {
      const store = fx.store({ key: es.privateKey, kid: 'es-1', verifyKeys: [{ kid: 'ed-0', key: ed.publicKey }] });
      const t = makeApp(jwks(store));
      const set = createLocalJWKSet((await request(t.app).get('/ep').expect(200)).body);

      const issued = await store.issue('alice', { scope: 'read' });
      const { payload, protectedHeader } = await jwtVerify(issued.token, set, { issuer: ISSUER, typ: 'at+jwt' });
      expect(payload.jti).to.equal(issued.jti);
      expect(protectedHeader).to.include({ alg: 'ES256', kid: 'es-1' });

      // A token the rotated key signed before the rotation.
      const old = await new SignJWT({ client_id: ISSUER })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-0' })
        .setSubject('bob').setIssuer(ISSUER).setJti('BBBBBBBBBBBBBBBBBBBBBB').setIssuedAt().setExpirationTime('5m')
        .sign(ed.privateKey);
      expect((await jwtVerify(old, set)).payload.sub).to.equal('bob');

      // The set is not a pass-all: a key it does not publish fails.
      const stranger = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'ed-0' }).setSubject('eve').sign(ed2.privateKey);
      let failed: unknown;
      await jwtVerify(stranger, set).catch((err: unknown) => { failed = err; });
      expect((failed as { code?: string })?.code).to.equal('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    });

    it('an RS256 key → n and e only, no private members', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const store = fx.store({ key: rsa.privateKey, kid: 'rs-1' });
      const res = await request(makeApp(jwks(store)).app).get('/ep').expect(200);
      expect(res.body).to.deep.equal({ keys: [{ kty: 'RSA', n: pub(rsa.publicKey).n, e: 'AQAB', kid: 'rs-1', alg: 'RS256', use: 'sig' }] });
    });

    it('an HS256 store → { keys: [] }, its secret nowhere', async () => {
      const store = fx.store({ verifyKeys: [{ kid: 'old-hs', key: 'o'.repeat(40) }] });
      const res = await request(makeApp(jwks(store)).app).get('/ep').expect(200).expect('Cache-Control', 'public, max-age=300');
      expect(res.body).to.deep.equal({ keys: [] });
      expect(res.text).to.not.include(Buffer.from(SECRET).toString('base64url'));
    });

    it('an HS256 store with an asymmetric key still in verifyKeys → that public key only', async () => {
      const store = fx.store({ verifyKeys: [{ kid: 'es-old', key: es.publicKey }] });
      const res = await request(makeApp(jwks(store)).app).get('/ep').expect(200);
      expect(res.body.keys.map((k: JWK) => [k.kid, k.alg])).to.deep.equal([['es-old', 'ES256']]);
    });

    it('a current key without kid is published without one', async () => {
      const store = fx.store({ key: ed.privateKey });
      const res = await request(makeApp(jwks(store)).app).get('/ep').expect(200);
      expect(res.body).to.deep.equal({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: pub(ed.publicKey).x, alg: 'EdDSA', use: 'sig' }] });
    });

    it('maxAge option; POST → 405', async () => {
      const store = fx.store({ key: es.privateKey, kid: 'es-1' });
      const t = makeApp(jwks(store, { maxAge: 60 }));
      await request(t.app).get('/ep').expect(200).expect('Cache-Control', 'public, max-age=60');
      await request(t.app).post('/ep').expect(405).expect('Allow', 'GET, HEAD');
    });
  });

  describe('configuration errors', () => {
    const store = { verify: async () => { throw new Error('x'); }, revoke: async () => false } as unknown as TokenIntrospector & TokenRevoker;

    for (const [name, make] of [['introspection', introspection], ['revocation', revocation]] as const) {
      it(`${name}: authorize missing or not a function → option "authorize"`, () => {
        expect(configError(() => make(store, undefined as unknown as EndpointOptions)).option).to.equal('authorize');
        expect(configError(() => make(store, {} as EndpointOptions)).option).to.equal('authorize');
        expect(configError(() => make(store, { authorize: true } as unknown as EndpointOptions)).option).to.equal('authorize');
        expect(configError(() => make(store, { authorize: undefined } as unknown as EndpointOptions)).option).to.equal('authorize');
        expect(make(store, { authorize: false })).to.be.a('function');
        expect(make(store, { authorize: () => true })).to.be.a('function');
      });

      it(`${name}: bad store, realm or limit → named option`, () => {
        expect(configError(() => make({} as TokenIntrospector & TokenRevoker, { authorize: false })).option).to.equal('store');
        expect(configError(() => make(null as unknown as TokenIntrospector & TokenRevoker, { authorize: false })).option).to.equal('store');
        expect(configError(() => make(store, { authorize: false, realm: 'a"b' })).option).to.equal('realm');
        expect(configError(() => make(store, { authorize: false, limit: 10 })).option).to.equal('limit');
        expect(configError(() => make(store, { authorize: false, limit: 1.5e3 + 0.5 })).option).to.equal('limit');
      });
    }

    it('jwks: a store without publicJwks, or a bad maxAge', () => {
      expect(configError(() => jwks({} as JwksSource)).option).to.equal('store');
      const source: JwksSource = { publicJwks: async () => ({ keys: [] }) };
      expect(configError(() => jwks(source, { maxAge: -1 })).option).to.equal('maxAge');
      expect(jwks(source)).to.be.a('function');
    });

    it('defaults', () => {
      expect(ENDPOINT_DEFAULTS).to.deep.equal({ realm: 'api', limit: 65536 });
    });
  });
});

describe('endpoints with Redis down', () => {
  const fx = useRedis();

  it('introspection and revocation → 503 with Retry-After; jwks still answers', async () => {
    const store = fx.store({ timeout: 300, key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, kid: 'k' });
    const issued = await store.issue('alice');
    const introspect = makeApp(introspection(store, { authorize: false }));
    const revoke = makeApp(revocation(store, { authorize: false }));
    expect((await post(introspect, tokenBody(issued.token)).expect(200)).body.active).to.equal(true);

    await fx.server.kill();
    const a = await post(introspect, tokenBody(issued.token)).expect(503).expect('Retry-After', '1');
    expect(a.body).to.deep.equal({ error: 'service_unavailable', error_description: 'token store unavailable' });
    const b = await post(revoke, tokenBody(issued.token)).expect(503).expect('Retry-After', '1');
    expect(b.body).to.deep.equal({ error: 'service_unavailable', error_description: 'token store unavailable' });
    expect(introspect.appErrors).to.deep.equal([]);
    expect(revoke.appErrors).to.deep.equal([]);
    // Invalid tokens need no Redis: still their usual answers.
    expect((await post(introspect, tokenBody('a.b.c')).expect(200)).body).to.deep.equal({ active: false });
    await post(revoke, tokenBody('a.b.c')).expect(200);
    expect((await request(makeApp(jwks(store)).app).get('/ep').expect(200)).body.keys).to.have.length(1);
  });
});
