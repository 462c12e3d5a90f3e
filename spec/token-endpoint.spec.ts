// The RFC 6749 token endpoint (refresh token grant) and RFC 7009 revocation of refresh
// tokens, through the Express glue. The Fastify plugin: token-endpoint-fastify.spec.ts.
import { expect } from 'chai';
import { refusal } from './support/wait.js';
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import request from 'supertest';
import { ConfigError, type TokenStore } from '../lib/index.js';
import { revocation, tokenEndpoint, type EndpointOptions, type TokenEndpointResponse, type TokenRefresher } from '../lib/express/index.js';
import { parseRefreshToken } from '../lib/sessions/refresh-token.js';
import { useRedis } from './support/fixture.js';

const FORM = 'application/x-www-form-urlencoded';
const oauthError = (error: string, description: string) => ({ error, error_description: description });
const INVALID_GRANT = oauthError('invalid_grant', 'refresh token is invalid, expired or revoked');
const OTHER_CLIENT = oauthError('invalid_grant', 'refresh token was not issued to this client');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const refreshBody = (refreshToken: string, more: Record<string, string> = {}) => form({ grant_type: 'refresh_token', refresh_token: refreshToken, ...more });

/** Authenticates as whatever client the test names in X-Client. */
const asClient = (req: Request) => typeof req.headers['x-client'] === 'string' && { clientId: req.headers['x-client'] };


interface TestApp {
  app: express.Express;
  appErrors: unknown[];
}

/** The token endpoint at /token and revocation at /revoke, and an app error handler. */
function makeApp(store: TokenStore, options: EndpointOptions = { authorize: asClient }, before: RequestHandler[] = []): TestApp {
  const app = express();
  const appErrors: unknown[] = [];
  app.all('/token', ...before, tokenEndpoint(store, options));
  app.all('/revoke', ...before, revocation(store, options));
  const own: ErrorRequestHandler = (err, _req, res, _next) => {
    appErrors.push(err);
    res.status(500).json({ appHandler: true });
  };
  app.use(own);
  return { app, appErrors };
}

const post = (t: TestApp, url: string, body: string, headers: Record<string, string> = {}) =>
  request(t.app).post(url).set({ 'Content-Type': FORM, ...headers }).send(body);

describe('token endpoint (RFC 6749 §6), Express', () => {
  const fx = useRedis();
  let store: TokenStore;
  let t: TestApp;
  beforeEach(() => {
    store = fx.store({ ttl: 600, sessions: { refreshGrace: 300 } });
    t = makeApp(store);
  });

  it('a refresh token → 200 with a new access token and refresh token, no-store, no-cache', async () => {
    const s = await store.startSession('alice', { scope: 'read write', clientId: 'web' });
    const res = await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' })
      .expect(200).expect('Content-Type', /^application\/json/).expect('Cache-Control', 'no-store').expect('Pragma', 'no-cache');
    const body = res.body as TokenEndpointResponse;
    expect(Object.keys(body)).to.deep.equal(['access_token', 'token_type', 'expires_in', 'refresh_token', 'scope']);
    expect(body).to.deep.include({ token_type: 'Bearer', scope: 'read write' });
    expect(body.expires_in).to.be.within(598, 600);
    const verified = await store.verify(body.access_token);
    expect(verified.claims).to.deep.include({ sid: s.sid, sub: 'alice', client_id: 'web', scope: 'read write' });
    expect(Math.floor(verified.expiresAt / 1000) - Math.floor(Date.now() / 1000)).to.be.within(body.expires_in, body.expires_in + 1);
    expect(parseRefreshToken(body.refresh_token)).to.deep.include({ sid: s.sid, generation: 1 });
    expect(t.appErrors).to.deep.equal([]);

    const bare = await store.startSession('bob', { clientId: 'web' });
    const plain = await post(t, '/token', refreshBody(bare.refreshToken), { 'x-client': 'web' }).expect(200);
    expect(plain.body).to.not.have.property('scope');
  });

  it('rotation: a replay within the grace window gets the same pair; after it, invalid_grant and the session is ended', async () => {
    const s = await store.startSession('alice', { clientId: 'web' });
    const first = (await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200)).body as TokenEndpointResponse;
    const again = (await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200)).body as TokenEndpointResponse;
    expect([again.access_token, again.refresh_token]).to.deep.equal([first.access_token, first.refresh_token]);
    expect((await store.verify(first.access_token)).claims.sid).to.equal(s.sid);

    await sleep(450);
    const reused = await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(400).expect('Cache-Control', 'no-store');
    expect(reused.body).to.deep.equal(oauthError('invalid_grant', 'refresh token was used already: its session has been ended'));
    expect(reused.headers).to.not.have.property('www-authenticate');
    expect(await refusal(store.verify(first.access_token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await refusal(fx.store({ cache: false }).verify(first.access_token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await store.sessions('alice')).to.deep.equal([]);
    expect((await post(t, '/token', refreshBody(first.refresh_token), { 'x-client': 'web' }).expect(400)).body).to.deep.equal(INVALID_GRANT);
  });

  it('scope: narrowed on request; wider or malformed → invalid_scope, and the refresh token stays usable', async () => {
    const s = await store.startSession('alice', { scope: 'read write', clientId: 'web' });
    const narrow = (await post(t, '/token', refreshBody(s.refreshToken, { scope: 'read' }), { 'x-client': 'web' }).expect(200)).body as TokenEndpointResponse;
    expect(narrow.scope).to.equal('read');
    expect((await store.verify(narrow.access_token)).claims.scope).to.equal('read');
    for (const [scope, description] of [['read admin', 'scope exceeds the scope granted'], ['re"ad', 'scope malformed'], ['read\\', 'scope malformed'], ['\u00e9', 'scope malformed'], ['   ', 'scope malformed']]) {
      const res = await post(t, '/token', refreshBody(narrow.refresh_token, { scope: scope! }), { 'x-client': 'web' }).expect(400).expect('Cache-Control', 'no-store');
      expect(res.body, scope).to.deep.equal(oauthError('invalid_scope', description!));
    }
    // An empty scope is no scope (RFC 6749 §3.1): the session's, all of it.
    const all = (await post(t, '/token', refreshBody(narrow.refresh_token, { scope: '' }), { 'x-client': 'web' }).expect(200)).body as TokenEndpointResponse;
    expect(all.scope).to.equal('read write');
  });

  it('missing or repeated parameters, not a form → 400 invalid_request; another grant type → unsupported_grant_type', async () => {
    const s = await store.startSession('alice', { clientId: 'web' });
    const cases: Array<[string, string, string]> = [
      [`refresh_token=${s.refreshToken}`, FORM, 'grant_type parameter missing'],
      [`grant_type=&refresh_token=${s.refreshToken}`, FORM, 'grant_type parameter missing'],
      ['grant_type=refresh_token', FORM, 'refresh_token parameter missing'],
      ['grant_type=refresh_token&refresh_token=', FORM, 'refresh_token parameter missing'],
      [`grant_type=refresh_token&refresh_token=${s.refreshToken}&refresh_token=x`, FORM, 'a parameter is repeated'],
      [`grant_type=refresh_token&grant_type=refresh_token&refresh_token=${s.refreshToken}`, FORM, 'a parameter is repeated'],
      ['grant_type=refresh_token&refresh_token=%zz', FORM, 'request body is not valid form encoding'],
      [JSON.stringify({ grant_type: 'refresh_token', refresh_token: s.refreshToken }), 'application/json', `content type must be ${FORM}`],
    ];
    for (const [body, type, description] of cases) {
      const res = await post(t, '/token', body, { 'Content-Type': type, 'x-client': 'web' }).expect(400).expect('Cache-Control', 'no-store').expect('Pragma', 'no-cache');
      expect(res.body, body).to.deep.equal(oauthError('invalid_request', description));
    }
    for (const grant of ['authorization_code', 'password', 'client_credentials', 'Refresh_Token']) {
      const res = await post(t, '/token', form({ grant_type: grant, refresh_token: s.refreshToken, code: 'x' }), { 'x-client': 'web' }).expect(400).expect('Cache-Control', 'no-store');
      expect(res.body, grant).to.deep.equal(oauthError('unsupported_grant_type', 'grant type not supported'));
    }
    await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200);
    await request(t.app).get('/token').expect(405).expect('Allow', 'POST');
    expect(t.appErrors).to.deep.equal([]);
  });

  it('garbage, an access token, a forged refresh token → 400 invalid_grant, never 500; a forged one ends nothing', async () => {
    const s = await store.startSession('alice', { clientId: 'web' });
    const forged = `${s.sid}.0.${'A'.repeat(22)}.${'B'.repeat(22)}`;
    for (const token of ['garbage', 'a.b.c', 'a.b.c.d', s.token, forged, `${s.sid}.zzzzzzzzz.${'A'.repeat(22)}.${'B'.repeat(22)}`, 'x'.repeat(20_000), '\u00e9.\u00e9.\u00e9.\u00e9']) {
      const res = await post(t, '/token', refreshBody(token), { 'x-client': 'web' }).expect(400).expect('Cache-Control', 'no-store');
      expect(res.body, token.slice(0, 40)).to.deep.equal(INVALID_GRANT);
      expect(res.headers).to.not.have.property('www-authenticate');
    }
    expect(t.appErrors).to.deep.equal([]);
    expect((await store.sessions('alice')).map((x) => x.sid)).to.deep.equal([s.sid]);
    expect((await store.verify(s.token)).jti).to.equal(s.jti);
  });

  it('another client\'s refresh token → 400 invalid_grant, nothing changes', async () => {
    const s = await store.startSession('alice', { clientId: 'web' });
    const res = await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'mobile' }).expect(400);
    expect(res.body).to.deep.equal(OTHER_CLIENT);
    expect((await store.verify(s.token)).jti).to.equal(s.jti);
    await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200);
  });

  it('client authentication refused → 401 invalid_client (Basic challenge, or the scheme used); authorize returning true → 500', async () => {
    const s = await store.startSession('alice', { clientId: 'web' });
    for (const [authorization, challenge] of [[undefined, 'Basic realm="api"'], ['Basic d2ViOndyb25n', 'Basic realm="api"'], ['Bearer abc', 'Bearer realm="api"']] as const) {
      const req = post(t, '/token', refreshBody(s.refreshToken), authorization === undefined ? {} : { authorization });
      const res = await req.expect(401).expect('WWW-Authenticate', challenge).expect('Cache-Control', 'no-store');
      expect(res.body, authorization).to.deep.equal(oauthError('invalid_client', 'client authentication failed'));
    }
    const misconfigured = makeApp(store, { authorize: () => true });
    await post(misconfigured, '/token', refreshBody(s.refreshToken)).expect(500);
    expect((misconfigured.appErrors[0] as ConfigError).option).to.equal('authorize');
    // Nothing was used up.
    await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200);
  });

  it('public clients (authorize: false): a client_id, when sent, must be the session\'s', async () => {
    const open = makeApp(store, { authorize: false });
    const s = await store.startSession('alice', { clientId: 'spa' });
    expect((await post(open, '/token', refreshBody(s.refreshToken, { client_id: 'other' })).expect(400)).body).to.deep.equal(OTHER_CLIENT);
    const a = (await post(open, '/token', refreshBody(s.refreshToken, { client_id: 'spa' })).expect(200)).body as TokenEndpointResponse;
    const b = (await post(open, '/token', refreshBody(a.refresh_token)).expect(200)).body as TokenEndpointResponse;
    expect((await store.verify(b.access_token)).claims.client_id).to.equal('spa');
  });

  it('a body express.urlencoded() parsed already', async () => {
    const parsed = makeApp(store, { authorize: asClient }, [express.urlencoded({ extended: false })]);
    const s = await store.startSession('alice', { scope: 'read write', clientId: 'web' });
    const res = await post(parsed, '/token', refreshBody(s.refreshToken, { scope: 'write' }), { 'x-client': 'web' }).expect(200);
    expect(res.body.scope).to.equal('write');
    expect((await post(parsed, '/token', 'grant_type=refresh_token', { 'x-client': 'web' }).expect(400)).body.error).to.equal('invalid_request');
  });

  describe('RFC 7009 revocation of refresh tokens', () => {
    async function ended(s: { sid: string; sub: string; token: string; refreshToken: string }): Promise<void> {
      expect((await store.sessions(s.sub)).map((x) => x.sid)).to.not.include(s.sid);
      expect(await refusal(store.verify(s.token))).to.equal('ERR_TOKEN_REVOKED');
      expect((await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(400)).body).to.deep.equal(INVALID_GRANT);
    }

    it('ends the session, with or without token_type_hint (whatever it says)', async () => {
      for (const hint of [undefined, 'refresh_token', 'access_token', 'something_else']) {
        const s = await store.startSession('alice', { clientId: 'web' });
        const res = await post(t, '/revoke', form({ token: s.refreshToken, ...(hint === undefined ? {} : { token_type_hint: hint }) }), { 'x-client': 'web' })
          .expect(200).expect('Cache-Control', 'no-store');
        expect(res.text, hint).to.equal('');
        await ended(s);
      }
      expect(await store.sessions('alice')).to.deep.equal([]);
      // An access token hinted as a refresh token is still found, and revoked alone.
      const s = await store.startSession('alice', { clientId: 'web' });
      await post(t, '/revoke', form({ token: s.token, token_type_hint: 'refresh_token' }), { 'x-client': 'web' }).expect(200);
      expect(await refusal(store.verify(s.token))).to.equal('ERR_TOKEN_REVOKED');
      expect((await store.sessions('alice')).map((x) => x.sid)).to.deep.equal([s.sid]);
    });

    it('another client\'s → 400 invalid_request, the session lives on; garbage and forged ones → 200, nothing ends', async () => {
      const s = await store.startSession('alice', { clientId: 'web' });
      const res = await post(t, '/revoke', form({ token: s.refreshToken, token_type_hint: 'refresh_token' }), { 'x-client': 'mobile' }).expect(400).expect('Cache-Control', 'no-store');
      expect(res.body).to.deep.equal(oauthError('invalid_request', 'token was not issued to this client'));
      const forged = `${s.sid}.0.${'A'.repeat(22)}.${'B'.repeat(22)}`;
      for (const token of ['a.b.c.d', forged, `${s.sid}.1.x.y`, 'garbage']) {
        await post(t, '/revoke', form({ token, token_type_hint: 'refresh_token' }), { 'x-client': 'web' }).expect(200);
      }
      expect((await store.sessions('alice')).map((x) => x.sid)).to.deep.equal([s.sid]);
      expect((await store.verify(s.token)).jti).to.equal(s.jti);
      expect(t.appErrors).to.deep.equal([]);
      // Used refresh tokens are still the session's: revoking one ends it (RFC 7009 §2.1).
      const next = (await post(t, '/token', refreshBody(s.refreshToken), { 'x-client': 'web' }).expect(200)).body as TokenEndpointResponse;
      await post(t, '/revoke', form({ token: s.refreshToken }), { 'x-client': 'web' }).expect(200);
      await ended({ ...s, token: next.access_token, refreshToken: next.refresh_token });
    });

    it('authorize: false: whoever holds the refresh token may revoke it', async () => {
      const open = makeApp(store, { authorize: false });
      const s = await store.startSession('alice', { clientId: 'spa' });
      await post(open, '/revoke', form({ token: s.refreshToken })).expect(200);
      await ended(s);
    });
  });

  it('types: a TokenStore is a TokenRefresher', () => {
    const refresher: TokenRefresher = store;
    expect(refresher.refresh).to.be.a('function');
    expect(() => tokenEndpoint({} as TokenRefresher, { authorize: false })).to.throw(ConfigError).with.property('option', 'store');
  });
});

describe('token endpoint with Redis down, Express', () => {
  const fx = useRedis();

  it('refresh and revocation of a refresh token → 503 with Retry-After; garbage still invalid_grant', async () => {
    const store = fx.store({ timeout: 300 });
    const s = await store.startSession('alice', { clientId: 'web' });
    const t = makeApp(store, { authorize: false });
    await fx.server.kill();
    for (const [url, body] of [['/token', refreshBody(s.refreshToken)], ['/revoke', form({ token: s.refreshToken })]] as const) {
      const res = await post(t, url, body).expect(503).expect('Retry-After', '1').expect('Cache-Control', 'no-store');
      expect(res.body, url).to.deep.equal(oauthError('service_unavailable', 'token store unavailable'));
    }
    expect((await post(t, '/token', refreshBody('garbage')).expect(400)).body).to.deep.equal(INVALID_GRANT);
    await post(t, '/revoke', form({ token: 'a.b.c' })).expect(200);
    expect(t.appErrors).to.deep.equal([]);
  });
});
