// The RFC 6749 token endpoint (refresh token grant) and RFC 7009 revocation of refresh
// tokens, through the Fastify plugin (`paths.token`). Express: token-endpoint.spec.ts.
import { expect } from 'chai';
import { refusal } from './support/wait.js';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { ConfigError, type TokenStore } from '../lib/index.js';
import { tokenEndpoints, TOKEN_ENDPOINTS_DEFAULTS, type TokenEndpointsOptions } from '../lib/fastify/index.js';
import type { TokenEndpointResponse } from '../lib/http/token-endpoint.js';
import { useRedis } from './support/fixture.js';

const FORM = 'application/x-www-form-urlencoded';
const oauthError = (error: string, description: string) => ({ error, error_description: description });
const INVALID_GRANT = oauthError('invalid_grant', 'refresh token is invalid, expired or revoked');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const refreshBody = (refreshToken: string, more: Record<string, string> = {}) => form({ grant_type: 'refresh_token', refresh_token: refreshToken, ...more });


/** Authenticates as whatever client the test names in X-Client. */
const asClient = (request: FastifyRequest) => typeof request.headers['x-client'] === 'string' && { clientId: request.headers['x-client'] };

describe('token endpoint (RFC 6749 §6), Fastify', () => {
  const fx = useRedis();
  let store: TokenStore;
  let app: FastifyInstance;
  let appErrors: unknown[];
  const post = (url: string, payload: string, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url, payload, headers: { 'content-type': FORM, ...headers } });
  const refresh = (refreshToken: string, headers: Record<string, string> = { 'x-client': 'web' }, more: Record<string, string> = {}) =>
    post('/oauth/token', refreshBody(refreshToken, more), headers);
  /** [status, Cache-Control, Pragma, WWW-Authenticate, body] of an answer. */
  const answer = (res: Awaited<ReturnType<typeof post>>) =>
    [res.statusCode, res.headers['cache-control'], res.headers.pragma, res.headers['www-authenticate'], res.payload === '' ? '' : res.json()];

  async function build(options: Partial<TokenEndpointsOptions> = {}) {
    await app?.close();
    app = Fastify();
    appErrors = [];
    app.setErrorHandler((err, _request, reply) => { appErrors.push(err); return reply.code(500).send({ appHandler: true }); });
    await app.register(tokenEndpoints, { store, authorize: asClient, paths: { token: '/oauth/token' }, ...options });
    await app.ready();
  }
  beforeEach(async () => {
    store = fx.store({ ttl: 600, sessions: { refreshGrace: 300 } });
    await build();
  });
  afterEach(() => app.close());

  it('a refresh token → 200 with the new pair and its scope, no-store, no-cache; a replay within the grace window, the same pair', async () => {
    const s = await store.startSession('alice', { scope: 'read write', clientId: 'web' });
    const res = await refresh(s.refreshToken);
    const body = res.json() as TokenEndpointResponse;
    expect(answer(res).slice(0, 4)).to.deep.equal([200, 'no-store', 'no-cache', undefined]);
    expect(Object.keys(body)).to.deep.equal(['access_token', 'token_type', 'expires_in', 'refresh_token', 'scope']);
    expect(body).to.deep.include({ token_type: 'Bearer', scope: 'read write' });
    expect(body.expires_in).to.be.within(598, 600);
    expect((await store.verify(body.access_token)).claims).to.deep.include({ sid: s.sid, client_id: 'web' });
    expect((await refresh(s.refreshToken)).json()).to.deep.include({ access_token: body.access_token, refresh_token: body.refresh_token });

    await sleep(450);
    expect(answer(await refresh(s.refreshToken))).to.deep.equal([400, 'no-store', 'no-cache', undefined,
      oauthError('invalid_grant', 'refresh token was used already: its session has been ended')]);
    expect(await refusal(store.verify(body.access_token))).to.equal('ERR_TOKEN_REVOKED');
    expect(await store.sessions('alice')).to.deep.equal([]);
  });

  it('each refusal with its status, code and headers, never 500', async () => {
    const s = await store.startSession('alice', { scope: 'read', clientId: 'web' });
    const cases: Array<[string, () => ReturnType<typeof post>, unknown[]]> = [
      ['garbage', () => refresh('garbage'), [400, 'no-store', 'no-cache', undefined, INVALID_GRANT]],
      ['an access token', () => refresh(s.token), [400, 'no-store', 'no-cache', undefined, INVALID_GRANT]],
      ['another client', () => refresh(s.refreshToken, { 'x-client': 'mobile' }), [400, 'no-store', 'no-cache', undefined, oauthError('invalid_grant', 'refresh token was not issued to this client')]],
      ['a wider scope', () => refresh(s.refreshToken, undefined, { scope: 'read write' }), [400, 'no-store', 'no-cache', undefined, oauthError('invalid_scope', 'scope exceeds the scope granted')]],
      ['a malformed scope', () => refresh(s.refreshToken, undefined, { scope: 'a"b' }), [400, 'no-store', 'no-cache', undefined, oauthError('invalid_scope', 'scope malformed')]],
      ['another grant', () => post('/oauth/token', form({ grant_type: 'password', username: 'a', password: 'b' }), { 'x-client': 'web' }),
        [400, 'no-store', 'no-cache', undefined, oauthError('unsupported_grant_type', 'grant type not supported')]],
      ['no refresh_token', () => post('/oauth/token', 'grant_type=refresh_token', { 'x-client': 'web' }),
        [400, 'no-store', 'no-cache', 'Bearer realm="api", error="invalid_request", error_description="refresh_token parameter missing"', oauthError('invalid_request', 'refresh_token parameter missing')]],
      ['a JSON body', () => post('/oauth/token', JSON.stringify({ grant_type: 'refresh_token' }), { 'content-type': 'application/json', 'x-client': 'web' }),
        [400, 'no-store', 'no-cache', `Bearer realm="api", error="invalid_request", error_description="content type must be ${FORM}"`, oauthError('invalid_request', `content type must be ${FORM}`)]],
      ['no client', () => refresh(s.refreshToken, {}), [401, 'no-store', 'no-cache', 'Basic realm="api"', oauthError('invalid_client', 'client authentication failed')]],
      ['a wrong Basic secret', () => refresh(s.refreshToken, { authorization: 'Basic d2ViOndyb25n' }), [401, 'no-store', 'no-cache', 'Basic realm="api"', oauthError('invalid_client', 'client authentication failed')]],
      ['a Bearer token', () => refresh(s.refreshToken, { authorization: 'Bearer abc' }), [401, 'no-store', 'no-cache', 'Bearer realm="api"', oauthError('invalid_client', 'client authentication failed')]],
    ];
    for (const [name, send, expected] of cases) expect(answer(await send()), name).to.deep.equal(expected);
    const get = await app.inject({ method: 'GET', url: '/oauth/token' });
    expect([get.statusCode, get.headers.allow]).to.deep.equal([405, 'POST']);
    expect(appErrors).to.deep.equal([]);
    // None of these used the refresh token up.
    expect(answer(await refresh(s.refreshToken))[0]).to.equal(200);
  });

  it('public clients (authorize: false): a client_id, when sent, must be the session\'s; authorize returning true → 500', async () => {
    await build({ authorize: false });
    const s = await store.startSession('alice', { clientId: 'spa' });
    expect(answer(await refresh(s.refreshToken, {}, { client_id: 'web' }))[4]).to.deep.equal(oauthError('invalid_grant', 'refresh token was not issued to this client'));
    expect(answer(await refresh(s.refreshToken, {}, { client_id: 'spa' }))[0]).to.equal(200);
    await build({ authorize: () => true });
    expect(answer(await refresh(s.refreshToken, {}))[0]).to.equal(500);
    expect((appErrors[0] as ConfigError).option).to.equal('authorize');
  });

  it('revocation (RFC 7009) ends a refresh token\'s session, with or without hint; another client\'s → 400; garbage → 200', async () => {
    for (const hint of [undefined, 'refresh_token']) {
      const s = await store.startSession('alice', { clientId: 'web' });
      const other = await post('/oauth/revoke', form({ token: s.refreshToken }), { 'x-client': 'mobile' });
      expect(answer(other), hint).to.deep.equal([400, 'no-store', undefined,
        'Bearer realm="api", error="invalid_request", error_description="token was not issued to this client"', oauthError('invalid_request', 'token was not issued to this client')]);
      for (const token of ['a.b.c.d', `${s.sid}.0.${'A'.repeat(22)}.${'B'.repeat(22)}`]) {
        expect((await post('/oauth/revoke', form({ token, token_type_hint: 'refresh_token' }), { 'x-client': 'web' })).statusCode, token).to.equal(200);
      }
      expect((await store.sessions('alice')).map((x) => x.sid)).to.deep.equal([s.sid]);
      const res = await post('/oauth/revoke', form({ token: s.refreshToken, ...(hint === undefined ? {} : { token_type_hint: hint }) }), { 'x-client': 'web' });
      expect(answer(res), hint).to.deep.equal([200, 'no-store', undefined, undefined, '']);
      expect(await store.sessions('alice')).to.deep.equal([]);
      expect(await refusal(store.verify(s.token))).to.equal('ERR_TOKEN_REVOKED');
      expect(answer(await refresh(s.refreshToken))[4]).to.deep.equal(INVALID_GRANT);
    }
  });

  it('the token endpoint is served only when paths.token names it; under the prefix; its store needs refresh', async () => {
    await build({ paths: {} });
    expect((await refresh('garbage')).statusCode).to.equal(404);
    expect(TOKEN_ENDPOINTS_DEFAULTS.paths).to.not.have.property('token');
    await build({ paths: { token: '/token', introspection: false, revocation: false, jwks: false }, prefix: '/auth' } as Partial<TokenEndpointsOptions>);
    const s = await store.startSession('alice', { clientId: 'web' });
    expect((await post('/auth/token', refreshBody(s.refreshToken), { 'x-client': 'web' })).statusCode).to.equal(200);

    const load = async (options: unknown) => {
      const other = Fastify();
      try {
        await other.register(tokenEndpoints, options as TokenEndpointsOptions);
        await other.ready();
        return 'loaded';
      } catch (err) {
        return (err as ConfigError).option;
      } finally {
        await other.close();
      }
    };
    const { refresh: _refresh, ...withoutRefresh } = { verify: store.verify.bind(store), revoke: store.revoke.bind(store), publicJwks: store.publicJwks.bind(store), refresh: store.refresh.bind(store) };
    expect(await load({ store: withoutRefresh, authorize: false })).to.equal('loaded');
    expect(await load({ store: withoutRefresh, authorize: false, paths: { token: '/oauth/token' } })).to.equal('store');
    expect(await load({ store, authorize: false, paths: { token: 'token' } })).to.equal('paths.token');
    expect(await load({ store, authorize: false, paths: { token: '/oauth/token' } })).to.equal('loaded');
  });
});

describe('token endpoint with Redis down, Fastify', () => {
  const fx = useRedis();

  it('refresh, and revocation of a refresh token → 503 with Retry-After', async () => {
    const store = fx.store({ timeout: 300 });
    const s = await store.startSession('alice', { clientId: 'web' });
    const app = Fastify();
    await app.register(tokenEndpoints, { store, authorize: false, paths: { token: '/oauth/token' } });
    await fx.server.kill();
    for (const [url, payload] of [['/oauth/token', refreshBody(s.refreshToken)], ['/oauth/revoke', form({ token: s.refreshToken })]] as const) {
      const res = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': FORM } });
      expect([res.statusCode, res.headers['retry-after'], res.headers['cache-control'], res.json()], url)
        .to.deep.equal([503, '1', 'no-store', oauthError('service_unavailable', 'token store unavailable')]);
    }
    const garbage = await app.inject({ method: 'POST', url: '/oauth/token', payload: refreshBody('garbage'), headers: { 'content-type': FORM } });
    expect([garbage.statusCode, garbage.json()]).to.deep.equal([400, INVALID_GRANT]);
    await app.close();
  });
});
