import { createServer, validateHeaderValue, type Server } from 'node:http';
import { expect } from 'chai';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import request from 'supertest';
import { ConfigError, StoreUnavailableError, TokenError, type TokenErrorCode } from '../lib/errors.js';
import {
  AuthHttpError,
  authErrorHandler,
  bearerAuth,
  InsufficientScopeError,
  InvalidRequestError,
  InvalidTokenError,
  requireClaims,
  requireScope,
  ServiceUnavailableError,
  UnauthorizedError,
  type BearerAuthOptions,
  type TokenVerifier,
  type VerifiedToken,
} from '../lib/express/index.js';

const EXPIRES_AT = 1_900_000_000_000;

function verified(jti: string, scope: unknown): VerifiedToken {
  const claims: Record<string, unknown> = { sub: 'alice', jti, exp: EXPIRES_AT / 1000, client_id: 'web' };
  if (scope !== undefined) claims.scope = scope;
  return { jti, sub: 'alice', expiresAt: EXPIRES_AT, claims };
}

const TOKEN_ERROR_CODES: Array<[TokenErrorCode, string]> = [
  ['ERR_TOKEN_MALFORMED', 'token malformed'],
  ['ERR_TOKEN_SIGNATURE', 'token signature invalid'],
  ['ERR_TOKEN_EXPIRED', 'token expired'],
  ['ERR_TOKEN_REVOKED', 'token revoked'],
  ['ERR_TOKEN_CLAIMS', 'token claims invalid'],
];

/**
 * A fake of our own TokenVerifier interface (not of Redis): the token string picks the
 * outcome. It uses `this`, so a middleware that detaches `verify` from its object fails.
 */
class FakeVerifier implements TokenVerifier {
  readonly calls: string[] = [];
  readonly bug = new Error('a bug in the verifier');
  readonly thrown: unknown[] = [];

  async verify(token: string): Promise<VerifiedToken> {
    this.calls.push(token);
    const result = this.outcome(token);
    if (result instanceof Error) {
      this.thrown.push(result);
      throw result;
    }
    return result;
  }

  private outcome(token: string): VerifiedToken | Error {
    switch (token) {
      case 'good':
        // An extra field the middleware must not copy into req.auth.
        return { ...verified('jti-good', 'read write'), extra: 'not part of req.auth' } as VerifiedToken;
      case 'writer':
        return verified('jti-writer', 'write');
      case 'reader':
        return verified('jti-reader', 'reader');
      case 'noscope':
        return verified('jti-noscope', undefined);
      case 'arrayscope':
        return verified('jti-array', ['read', 'write']);
      case 'down':
        return new StoreUnavailableError('connect ECONNREFUSED', { cause: new Error('ECONNREFUSED') });
      case 'bug':
        return this.bug;
      default: {
        const code = TOKEN_ERROR_CODES.find(([c]) => c === token);
        return code ? new TokenError(code[0], `details for logs only: ${token}`) : new Error(`unexpected token ${token}`);
      }
    }
  }
}

interface AppOptions {
  /** Install authErrorHandler(). */
  authHandler?: boolean;
  /** Install an app error handler after it, answering 500 `{ appHandler: true }`. */
  appHandler?: boolean;
  bearer?: BearerAuthOptions;
}

interface TestApp {
  server: Server;
  verifier: FakeVerifier;
  /** Every error that reached the error middleware chain, in order. */
  errors: unknown[];
  /** Errors that reached the app's own handler. */
  appErrors: unknown[];
}

function makeApp(options: AppOptions = {}, verifier: TokenVerifier = new FakeVerifier()): TestApp {
  const app = express();
  app.set('env', 'test'); // keeps Express' default handler from logging every 401
  const errors: unknown[] = [];
  const appErrors: unknown[] = [];
  const auth = bearerAuth(verifier, options.bearer);
  const echo: RequestHandler = (req, res) => {
    res.json(req.auth);
  };

  app.get('/me', auth, echo);
  app.get('/read', auth, requireScope('read'), echo);
  app.get('/read-write', auth, requireScope('read', 'write'), echo);
  app.get('/admin', auth, requireScope('read', 'admin'), echo);
  app.get('/forgot-auth', requireScope('read'), echo);

  const spy: ErrorRequestHandler = (err, _req, _res, next) => {
    errors.push(err);
    next(err);
  };
  app.use(spy);
  if (options.authHandler) app.use(authErrorHandler());
  if (options.appHandler) {
    const own: ErrorRequestHandler = (err, _req, res, _next) => {
      appErrors.push(err);
      res.status(500).json({ appHandler: true });
    };
    app.use(own);
  }
  // 64 KiB: Node's default 16 KiB header limit would answer the oversized-header test
  // with 431 before Express ever saw it.
  const server = createServer({ maxHeaderSize: 64 * 1024 }, app);
  return { server, verifier: verifier as FakeVerifier, errors, appErrors };
}

const BARE = 'Bearer realm="api"';
const challenge = (error: string, description: string, extra = '', realm = 'api') =>
  `Bearer realm="${realm}", error="${error}", error_description="${description}"${extra}`;

const MALFORMED: Array<[string, string]> = [
  ['Bearer alone', 'Bearer'],
  ['two tokens', 'Bearer a b'],
  ['characters outside token68', 'Bearer abc!def'],
  ['a quote', 'Bearer abc"def'],
  ['20 KB', `Bearer ${'a'.repeat(20 * 1024)}`],
];

describe('express', () => {
  for (const authHandler of [true, false]) {
    describe(authHandler ? 'with authErrorHandler()' : "with Express' default error handler only", () => {
      let t: TestApp;
      beforeEach(() => {
        t = makeApp({ authHandler });
      });

      /** With our handler a JSON body; without it Express' HTML page. */
      const body = (res: request.Response, error: string, description: string) => {
        if (authHandler) {
          expect(res.headers['content-type']).to.match(/^application\/json/);
          expect(res.body).to.deep.equal({ error, error_description: description });
        } else {
          expect(res.headers['content-type']).to.match(/^text\/html/);
        }
      };

      it('no Authorization header → 401 with a bare challenge', async () => {
        const res = await request(t.server).get('/me').expect(401).expect('www-authenticate', BARE);
        body(res, 'unauthorized', 'authentication required');
        expect(t.verifier.calls).to.deep.equal([]);
        expect(t.errors[0]).to.be.instanceOf(UnauthorizedError);
      });

      it('another scheme (Basic) → 401 with a bare challenge', async () => {
        const res = await request(t.server)
          .get('/me')
          .set('Authorization', 'Basic dXNlcjpwYXNz')
          .expect(401)
          .expect('www-authenticate', BARE);
        body(res, 'unauthorized', 'authentication required');
        expect(t.verifier.calls).to.deep.equal([]);
      });

      for (const [name, header] of MALFORMED) {
        it(`malformed Bearer header (${name}) → 400 invalid_request, verify not called`, async () => {
          const res = await request(t.server).get('/me').set('Authorization', header).expect(400);
          expect(res.headers['www-authenticate']).to.match(/^Bearer realm="api", error="invalid_request", error_description="[^"]+"$/);
          if (authHandler) expect(res.body.error).to.equal('invalid_request');
          expect(t.verifier.calls).to.deep.equal([]);
          expect(t.errors[0]).to.be.instanceOf(InvalidRequestError);
        });
      }

      for (const [code, description] of TOKEN_ERROR_CODES) {
        it(`verify rejects with TokenError ${code} → 401 invalid_token "${description}"`, async () => {
          const res = await request(t.server)
            .get('/me')
            .set('Authorization', `Bearer ${code}`)
            .expect(401)
            .expect('www-authenticate', challenge('invalid_token', description));
          body(res, 'invalid_token', description);
          expect(t.verifier.calls).to.deep.equal([code]);
          const err = t.errors[0] as InvalidTokenError;
          expect(err).to.be.instanceOf(InvalidTokenError);
          expect(err.cause).to.equal(t.verifier.thrown[0]);
          expect((err.cause as TokenError).code).to.equal(code);
          // The verifier's message is for logs, not for the client.
          expect(JSON.stringify(res.headers) + res.text).to.not.include('details for logs only');
        });
      }

      it('verify rejects with StoreUnavailableError → 503 with Retry-After, no challenge', async () => {
        const res = await request(t.server).get('/me').set('Authorization', 'Bearer down').expect(503).expect('retry-after', '1');
        expect(res.headers).to.not.have.property('www-authenticate');
        body(res, 'service_unavailable', 'token store unavailable');
        expect(JSON.stringify(res.headers) + res.text).to.not.include('ECONNREFUSED');
        const err = t.errors[0] as ServiceUnavailableError;
        expect(err).to.be.instanceOf(ServiceUnavailableError);
        expect((err.cause as StoreUnavailableError).code).to.equal('ERR_STORE_UNAVAILABLE');
      });

      it('verify rejects with any other error → passed on unchanged (500)', async () => {
        await request(t.server).get('/me').set('Authorization', 'Bearer bug').expect(500);
        expect(t.errors).to.deep.equal([t.verifier.bug]);
        expect(t.errors[0]).to.equal(t.verifier.bug);
      });

      it('a valid token → req.auth has exactly { token, jti, sub, expiresAt, claims }', async () => {
        const res = await request(t.server).get('/me').set('Authorization', 'Bearer good').expect(200);
        expect(res.body).to.deep.equal({
          token: 'good',
          jti: 'jti-good',
          sub: 'alice',
          expiresAt: EXPIRES_AT,
          claims: { sub: 'alice', jti: 'jti-good', exp: EXPIRES_AT / 1000, client_id: 'web', scope: 'read write' },
        });
        expect(t.verifier.calls).to.deep.equal(['good']);
        expect(t.errors).to.deep.equal([]);
      });

      it('the scheme is case-insensitive', async () => {
        const res = await request(t.server).get('/me').set('Authorization', 'bEARER good').expect(200);
        expect(res.body.jti).to.equal('jti-good');
      });

      describe('requireScope', () => {
        it('passes when every listed scope is granted', async () => {
          await request(t.server).get('/read').set('Authorization', 'Bearer good').expect(200);
          const res = await request(t.server).get('/read-write').set('Authorization', 'Bearer good').expect(200);
          expect(res.body.sub).to.equal('alice');
        });

        it('a missing scope → 403 insufficient_scope naming the required scopes', async () => {
          const res = await request(t.server)
            .get('/read')
            .set('Authorization', 'Bearer writer')
            .expect(403)
            .expect('www-authenticate', challenge('insufficient_scope', 'insufficient scope', ', scope="read"'));
          body(res, 'insufficient_scope', 'insufficient scope');
          expect((t.errors[0] as InsufficientScopeError).scopes).to.deep.equal(['read']);
        });

        it('requires all the scopes, not any of them', async () => {
          await request(t.server)
            .get('/admin')
            .set('Authorization', 'Bearer good')
            .expect(403)
            .expect('www-authenticate', challenge('insufficient_scope', 'insufficient scope', ', scope="read admin"'));
        });

        it('matches whole scopes, not prefixes ("reader" is not "read")', async () => {
          await request(t.server).get('/read').set('Authorization', 'Bearer reader').expect(403).expect('www-authenticate', /error="insufficient_scope"/);
        });

        it('no scope claim → 403', async () => {
          await request(t.server).get('/read').set('Authorization', 'Bearer noscope').expect(403).expect('www-authenticate', /error="insufficient_scope"/);
        });

        it('a scope claim that is not a string → 403 (fails closed)', async () => {
          await request(t.server).get('/read').set('Authorization', 'Bearer arrayscope').expect(403).expect('www-authenticate', /error="insufficient_scope"/);
        });

        it('without bearerAuth before it → 401 with a bare challenge, not a pass', async () => {
          const res = await request(t.server).get('/forgot-auth').set('Authorization', 'Bearer good').expect(401).expect('www-authenticate', BARE);
          body(res, 'unauthorized', 'authentication required');
          expect(t.verifier.calls).to.deep.equal([]);
        });
      });
    });
  }

  describe('error routing', () => {
    it("an unexpected error reaches the app's own handler, not converted", async () => {
      const t = makeApp({ authHandler: true, appHandler: true });
      const res = await request(t.server).get('/me').set('Authorization', 'Bearer bug').expect(500);
      expect(res.body).to.deep.equal({ appHandler: true });
      expect(t.appErrors).to.have.length(1);
      expect(t.appErrors[0]).to.equal(t.verifier.bug);
    });

    it("auth errors are answered by authErrorHandler and never reach the app's handler", async () => {
      const t = makeApp({ authHandler: true, appHandler: true });
      await request(t.server).get('/me').set('Authorization', 'Bearer ERR_TOKEN_REVOKED').expect(401);
      await request(t.server).get('/me').expect(401);
      await request(t.server).get('/me').set('Authorization', 'Bearer down').expect(503);
      expect(t.appErrors).to.deep.equal([]);
    });

    it('a verify that throws synchronously is still mapped (not an uncaught exception)', async () => {
      const syncVerifier: TokenVerifier = {
        verify(): Promise<VerifiedToken> {
          throw new TokenError('ERR_TOKEN_EXPIRED', 'expired');
        },
      };
      const t = makeApp({ authHandler: true }, syncVerifier);
      await request(t.server)
        .get('/me')
        .set('Authorization', 'Bearer abc')
        .expect(401)
        .expect('www-authenticate', challenge('invalid_token', 'token expired'));
    });

    it('a TokenError with a code this version does not know → 401 invalid_token, generic description', async () => {
      const future: TokenVerifier = {
        verify: async () => {
          throw new TokenError('ERR_TOKEN_FROM_THE_FUTURE' as TokenErrorCode, 'x');
        },
      };
      const t = makeApp({ authHandler: true }, future);
      await request(t.server)
        .get('/me')
        .set('Authorization', 'Bearer abc')
        .expect(401)
        .expect('www-authenticate', challenge('invalid_token', 'invalid token'));
    });

    it('authErrorHandler leaves an error alone once the response has started', async () => {
      const app = express();
      app.set('env', 'test');
      const late: unknown[] = [];
      const thrown = new InvalidTokenError();
      app.get('/stream', (_req, res, next) => {
        res.write('partial');
        next(thrown);
      });
      app.use(authErrorHandler());
      const after: ErrorRequestHandler = (err, _req, res, _next) => {
        late.push(err);
        res.end();
      };
      app.use(after);
      const res = await request(app).get('/stream').expect(200);
      expect(res.text).to.equal('partial');
      expect(late).to.deep.equal([thrown]);
    });

    it('a verify that resolves to nothing is a server bug (500), not a pass', async () => {
      const brokenVerifier = { verify: async () => undefined } as unknown as TokenVerifier;
      const t = makeApp({ authHandler: true, appHandler: true }, brokenVerifier);
      await request(t.server).get('/me').set('Authorization', 'Bearer abc').expect(500);
      expect(t.appErrors[0]).to.be.instanceOf(TypeError);
    });
  });

  describe('required: false', () => {
    let t: TestApp;
    beforeEach(() => {
      t = makeApp({ authHandler: true, bearer: { required: false } });
    });

    it('no header, or another scheme → the route runs with req.auth undefined', async () => {
      for (const authorization of [undefined, 'Basic dXNlcjpwYXNz']) {
        const req = request(t.server).get('/me');
        if (authorization !== undefined) req.set('Authorization', authorization);
        const res = await req.expect(200);
        expect(res.text, String(authorization)).to.equal(''); // res.json(undefined)
      }
      expect(t.verifier.calls).to.deep.equal([]);
      expect(t.errors).to.deep.equal([]);
    });

    it('a valid token → req.auth set', async () => {
      expect((await request(t.server).get('/me').set('Authorization', 'Bearer good').expect(200)).body.jti).to.equal('jti-good');
    });

    it('a bad token, a malformed header, Redis down: still refused', async () => {
      await request(t.server).get('/me').set('Authorization', 'Bearer ERR_TOKEN_REVOKED').expect(401).expect('www-authenticate', challenge('invalid_token', 'token revoked'));
      await request(t.server).get('/me').set('Authorization', 'Bearer a b').expect(400);
      await request(t.server).get('/me').set('Authorization', 'Bearer down').expect(503).expect('retry-after', '1');
    });

    it('requireScope after it still needs a token: 401 with a bare challenge', async () => {
      await request(t.server).get('/read').expect(401).expect('www-authenticate', BARE);
    });

    it('required must be a boolean', () => {
      expect(() => bearerAuth(new FakeVerifier(), { required: 'no' } as unknown as BearerAuthOptions)).to.throw(ConfigError, /"required"/);
    });
  });

  describe('requireScope.any and requireClaims', () => {
    function app(...guards: RequestHandler[]) {
      const a = express();
      a.set('env', 'test');
      a.get('/r', bearerAuth(new FakeVerifier()), ...guards, (req, res) => { res.json(req.auth); });
      a.use(authErrorHandler());
      const errors: unknown[] = [];
      const own: ErrorRequestHandler = (err, _req, res, _next) => {
        errors.push(err);
        res.status(500).json({ appHandler: true });
      };
      a.use(own);
      return { a, errors };
    }

    it('requireScope.any: one scope is enough; none → 403 listing them all', async () => {
      const { a } = app(requireScope.any('admin', 'write'));
      await request(a).get('/r').set('Authorization', 'Bearer good').expect(200);
      await request(a).get('/r').set('Authorization', 'Bearer writer').expect(200);
      const res = await request(a).get('/r').set('Authorization', 'Bearer reader').expect(403)
        .expect('www-authenticate', challenge('insufficient_scope', 'insufficient scope', ', scope="admin write"'));
      expect(res.body).to.deep.equal({ error: 'insufficient_scope', error_description: 'insufficient scope' });
      await request(a).get('/r').set('Authorization', 'Bearer noscope').expect(403);
      await request(a).get('/r').set('Authorization', 'Bearer arrayscope').expect(403);
    });

    it('requireScope.any checks its scopes like requireScope', () => {
      expect(() => requireScope.any()).to.throw(ConfigError, /"scopes"/);
      expect(() => requireScope.any('a b')).to.throw(ConfigError, /"scopes"/);
    });

    it('requireClaims: true → passes; false → 403 insufficient_scope, no scope attribute', async () => {
      const pass = app(requireClaims((claims) => claims.client_id === 'web'));
      await request(pass.a).get('/r').set('Authorization', 'Bearer good').expect(200);
      const refuse = app(requireClaims((claims, auth) => claims.client_id === 'web' && auth.sub === 'bob'));
      const res = await request(refuse.a).get('/r').set('Authorization', 'Bearer good').expect(403)
        .expect('www-authenticate', challenge('insufficient_scope', 'insufficient claims'));
      expect(res.body).to.deep.equal({ error: 'insufficient_scope', error_description: 'insufficient claims' });
      const described = app(requireClaims(() => false, { description: 'tenant not allowed' }));
      await request(described.a).get('/r').set('Authorization', 'Bearer good').expect(403)
        .expect('www-authenticate', challenge('insufficient_scope', 'tenant not allowed'));
    });

    it('requireClaims: a predicate returning a promise or throwing → next(err), a 500, never a pass', async () => {
      const bug = new Error('bug');
      for (const predicate of [async () => true, () => { throw bug; }]) {
        const { a, errors } = app(requireClaims(predicate as unknown as () => boolean));
        await request(a).get('/r').set('Authorization', 'Bearer good').expect(500, { appHandler: true });
        expect(errors).to.have.length(1);
      }
    });

    it('requireClaims: option errors', () => {
      expect(() => requireClaims(undefined as unknown as () => boolean)).to.throw(ConfigError, /"predicate"/);
      expect(() => requireClaims(() => true, { description: '' })).to.throw(ConfigError, /"description"/);
    });
  });

  describe('realm', () => {
    it('names the configured realm in every challenge, requireScope included', async () => {
      const t = makeApp({ authHandler: true, bearer: { realm: 'my accounts' } });
      await request(t.server).get('/me').expect(401).expect('www-authenticate', 'Bearer realm="my accounts"');
      await request(t.server)
        .get('/me')
        .set('Authorization', 'Bearer a b')
        .expect(400)
        .expect('www-authenticate', /^Bearer realm="my accounts", error="invalid_request"/);
      await request(t.server)
        .get('/me')
        .set('Authorization', 'Bearer ERR_TOKEN_REVOKED')
        .expect(401)
        .expect('www-authenticate', challenge('invalid_token', 'token revoked', '', 'my accounts'));
      await request(t.server)
        .get('/read')
        .set('Authorization', 'Bearer writer')
        .expect(403)
        .expect('www-authenticate', challenge('insufficient_scope', 'insufficient scope', ', scope="read"', 'my accounts'));
    });
  });

  describe('configuration errors at construction', () => {
    function configError(fn: () => unknown): ConfigError {
      try {
        fn();
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        expect((err as ConfigError).code).to.equal('ERR_CONFIG');
        return err as ConfigError;
      }
      expect.fail('expected a ConfigError');
    }
    const v = new FakeVerifier();

    for (const [name, store] of [
      ['undefined', undefined],
      ['null', null],
      ['an object without verify', {}],
      ['verify not a function', { verify: 'yes' }],
      ['a function', () => undefined],
    ] as const) {
      it(`bearerAuth(${name}) → option "store"`, () => {
        expect(configError(() => bearerAuth(store as unknown as TokenVerifier)).option).to.equal('store');
      });
    }

    for (const realm of ['', 'a"b', 'a\\b', 'a\nb', 'caf\u00e9', 42]) {
      it(`bearerAuth(store, { realm: ${JSON.stringify(realm)} }) → option "realm"`, () => {
        expect(configError(() => bearerAuth(v, { realm } as BearerAuthOptions)).option).to.equal('realm');
      });
    }

    it('bearerAuth(store, null) → option "options"', () => {
      expect(configError(() => bearerAuth(v, null as unknown as BearerAuthOptions)).option).to.equal('options');
    });

    it('accepts a valid store and realm', () => {
      expect(bearerAuth(v, { realm: 'my api' })).to.be.a('function');
      expect(bearerAuth(v)).to.be.a('function');
    });

    for (const [name, scopes] of [
      ['no scope', []],
      ['an empty scope', ['']],
      ['a scope with a space', ['read write']],
      ['a scope with a quote', ['a"b']],
      ['a scope with a backslash', ['a\\b']],
      ['a non-string scope', [42]],
      ['one bad scope among good ones', ['read', undefined]],
    ] as const) {
      it(`requireScope with ${name} → option "scopes"`, () => {
        expect(configError(() => requireScope(...(scopes as unknown as string[]))).option).to.equal('scopes');
      });
    }

    it('accepts RFC 6749 scope tokens', () => {
      expect(requireScope('read', 'posts:write', 'https://api.example/x')).to.be.a('function');
    });
  });

  describe('error classes', () => {
    it('carry status, statusCode, error, headers, expose and name', () => {
      const cases: Array<[AuthHttpError, number, string | undefined]> = [
        [new UnauthorizedError(), 401, undefined],
        [new InvalidRequestError(), 400, 'invalid_request'],
        [new InvalidTokenError(), 401, 'invalid_token'],
        [new InsufficientScopeError(['a']), 403, 'insufficient_scope'],
        [new ServiceUnavailableError(), 503, undefined],
      ];
      for (const [err, status, error] of cases) {
        expect(err).to.be.instanceOf(AuthHttpError).and.instanceOf(Error);
        expect(err.status, err.name).to.equal(status);
        expect(err.statusCode, err.name).to.equal(status);
        expect(err.error, err.name).to.equal(error);
        expect(err.expose, err.name).to.equal(true);
        expect(err.name).to.equal(err.constructor.name);
      }
      expect(new UnauthorizedError().headers).to.deep.equal({ 'WWW-Authenticate': BARE });
      expect(new ServiceUnavailableError().headers).to.deep.equal({ 'Retry-After': '1' });
      expect(new InsufficientScopeError(['a', 'b']).headers).to.deep.equal({
        'WWW-Authenticate': challenge('insufficient_scope', 'insufficient scope', ', scope="a b"'),
      });
    });

    it('keep cause', () => {
      const cause = new TokenError('ERR_TOKEN_EXPIRED', 'x');
      expect(new InvalidTokenError('token expired', { cause }).cause).to.equal(cause);
      expect(new UnauthorizedError(undefined, { cause }).cause).to.equal(cause);
      expect(new InvalidTokenError()).to.not.have.property('cause');
    });

    it('quote-escape header values so the header stays valid', () => {
      const err = new InvalidTokenError('say "hi" \\ now\r\nX-Evil: 1', { realm: 'r"\\' });
      const header = err.headers['WWW-Authenticate']!;
      expect(header).to.equal(
        'Bearer realm="r\\"\\\\", error="invalid_token", error_description="say \\"hi\\" \\\\ now??X-Evil: 1"',
      );
      expect(() => validateHeaderValue('WWW-Authenticate', header)).to.not.throw();
      const scoped = new InsufficientScopeError(['a"b'], undefined).headers['WWW-Authenticate']!;
      expect(scoped).to.match(/, scope="a\\"b"$/);
    });
  });
});
