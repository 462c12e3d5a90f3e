/**
 * Standard OAuth endpoints for a `TokenStore`, as Express handlers:
 *
 * - {@link introspection}: RFC 7662 token introspection (`POST`, form body `token=…`).
 * - {@link revocation}: RFC 7009 token revocation (`POST`, form body `token=…`).
 * - {@link tokenEndpoint}: the RFC 6749 token endpoint, refresh token grant (`POST`,
 *   form body `grant_type=refresh_token&refresh_token=…`).
 * - `jwks` (jwks.ts): the JWK Set of the store's public keys (`GET /.well-known/jwks.json`).
 *
 * They parse their own `application/x-www-form-urlencoded` body when no body parser
 * ran before them (and accept one parsed by `express.urlencoded()`), so they can be
 * mounted directly. Mount them with `app.all`: they answer other methods 405 with an
 * `Allow` header themselves, which `app.post` would turn into Express' 404. Like the
 * rest of this subpath they import neither Express nor the store at run time: the store
 * is typed structurally.
 *
 * @example
 * ```ts
 * // checkClient(req): { clientId } of the client the request authenticates, or false.
 * app.all('/oauth/introspect', introspection(store, { authorize: checkClient }));
 * app.all('/oauth/revoke', revocation(store, { authorize: checkClient }));
 * app.all('/oauth/token', tokenEndpoint(store, { authorize: checkClient }));
 * app.all('/.well-known/jwks.json', jwks(store));
 * ```
 *
 * @module
 */

import type { Request, RequestHandler, Response } from 'express';
import {
  callerOf,
  checkStore,
  endpointConfig,
  formObject,
  introspect,
  readForm,
  revokeFor,
  tokenParam,
  type Caller,
  type EndpointConfig,
  type TokenIntrospector,
  type TokenRevoker,
} from '../http/endpoints.js';
import { InvalidRequestError } from '../http/errors.js';
import { checkFormHeaders, parseForm } from '../http/form.js';
import type { AuthorizedClient } from '../http/oauth.js';
import { errorAnswer, refreshGrant, tokenClientOf, TOKEN_HEADERS, TOKEN_PARAMS, type TokenRefresher } from '../http/token-endpoint.js';

export type { AuthorizedClient, IntrospectionResponse } from '../http/oauth.js';
export { ENDPOINT_DEFAULTS, type TokenIntrospector, type TokenRevoker } from '../http/endpoints.js';
export type { RefreshedTokens, TokenEndpointResponse, TokenRefresher } from '../http/token-endpoint.js';

/**
 * Authenticates the caller of the endpoint (RFC 7662 §2.1 and RFC 7009 §2.1 require
 * it, e.g. by client credentials). It runs after the body is parsed, so form
 * parameters such as `client_id`/`client_secret` are on `req.body`.
 *
 * - `{ clientId }` (a non-empty string): the authenticated client. {@link revocation}
 *   then revokes only tokens whose `client_id` claim is that client's.
 * - `true`: allowed without naming a client; for {@link introspection} only (a resource
 *   server asking about any token). {@link revocation} and {@link tokenEndpoint} refuse
 *   it as a server misconfiguration (500 through `next(err)`): they could not check
 *   whose token it is.
 * - Anything else: 401. When the request carried `Authorization: Basic …`, the answer is
 *   RFC 6749 §5.2 `invalid_client` with `WWW-Authenticate: Basic realm="…"`; otherwise
 *   `unauthorized` with a `Bearer` challenge.
 *
 * Compare secrets in constant time (`crypto.timingSafeEqual` over digests of equal
 * length): see the README's "Standard endpoints".
 *
 * Throwing an `AuthHttpError` (e.g. `new InvalidClientError(…)`) answers with that
 * error; a `StoreUnavailableError` with 503; any other error is passed to `next(err)`
 * (a server bug: the request is refused either way).
 */
export type AuthorizeCaller = (req: Request) => boolean | AuthorizedClient | Promise<boolean | AuthorizedClient>;

/** Options of {@link introspection}, {@link revocation} and {@link tokenEndpoint}. */
export interface EndpointOptions {
  /**
   * Who may call the endpoint: see {@link AuthorizeCaller}. Required; `false` allows
   * unauthenticated calls (demos, or an endpoint protected by other means). Behind
   * `bearerAuth(store)`, the client is the bearer token's:
   * `authorize: (req) => typeof req.auth?.claims.client_id === 'string' && { clientId: req.auth.claims.client_id }`.
   */
  authorize: AuthorizeCaller | false;
  /**
   * The realm named in the `WWW-Authenticate` challenge of a 401.
   * @default 'api'
   */
  realm?: string;
  /**
   * Largest request body read, in bytes; a larger one is answered 400 `invalid_request`.
   * @default 65536
   */
  limit?: number;
}

/** Form parameters of introspection and revocation. */
const TOKEN_PARAM = ['token', 'token_type_hint'] as const;

/**
 * RFC 7662 token introspection endpoint: `POST` with an
 * `application/x-www-form-urlencoded` body `token=…` (`token_type_hint` is accepted and
 * ignored: only access tokens exist here).
 *
 * | request | answer |
 * | --- | --- |
 * | a valid token, live in Redis | 200 `{ active: true, sub, scope, exp, iat, client_id, jti, iss, aud, token_type: 'Bearer' }` (members the token lacks are left out) |
 * | revoked, expired, badly signed, malformed, unknown | 200 `{ active: false }` — never why |
 * | no `token`, or an empty one; not form-encoded; bad encoding; repeated parameter; body over `limit` | 400 `{ error: 'invalid_request', … }` |
 * | `authorize` returned neither `true` nor `{ clientId }` | 401 (see {@link AuthorizeCaller}) |
 * | Redis unavailable | 503 with `Retry-After` |
 * | another method than `POST` (mount with `app.all`) | 405 with `Allow: POST` |
 *
 * Responses carry `Cache-Control: no-store`.
 *
 * @param store Verifies tokens; usually the `TokenStore`.
 * @throws {ConfigError} `store` has no `verify`; `authorize` is neither a function nor
 *   `false`; bad `realm` or `limit`.
 */
export function introspection(store: TokenIntrospector, options: EndpointOptions): RequestHandler {
  checkStore(store, ['verify'], 'an object with a verify(token) method');
  const config = endpointConfig(options);
  return formEndpoint(config, TOKEN_PARAM, async (params, res) => {
    res.status(200).json(await introspect(store, tokenParam(params, config.realm), config.realm));
  });
}

/**
 * RFC 7009 token revocation endpoint: `POST` with an
 * `application/x-www-form-urlencoded` body `token=…`: an access token, or a refresh
 * token (`token_type_hint` is accepted; the token's shape tells which it is, §2.1).
 *
 * RFC 7009 §2.1: the server "verifies whether the token was issued to the client making
 * the revocation request". So `authorize` names the client (`{ clientId }`), the token
 * is verified (`store.verify`: signature and liveness), and only if its `client_id`
 * claim is that client's is it revoked (`store.revoke`). A token of another client is
 * left alone and the request refused with 400 `invalid_request`, as other servers
 * answer it. A bare `jti` is *not* accepted (it would let any caller revoke any token
 * by id): it is treated as an invalid token. With `authorize: false` there is no client
 * to compare, and whoever holds a token may revoke it.
 *
 * A refresh token ends its session (`store.revokeRefreshToken`, with the calling
 * client's id): the session's access tokens are revoked with it. One of another
 * client's session is refused like an access token of another client.
 *
 * | request | answer |
 * | --- | --- |
 * | a token of the calling client, live or not; an invalid token (RFC 7009 §2.2) | 200, empty body |
 * | a live token (or refresh token) of another client | 400 `{ error: 'invalid_request', error_description: 'token was not issued to this client' }`, nothing revoked |
 * | no `token`, or an empty one; not form-encoded; bad encoding; repeated parameter; body over `limit` | 400 `{ error: 'invalid_request', … }` |
 * | `authorize` returned neither `{ clientId }` nor `true` | 401 (see {@link AuthorizeCaller}) |
 * | `authorize` returned `true` | `next(err)` with a `ConfigError` (500): no client to check the token against |
 * | Redis unavailable | 503 with `Retry-After` (RFC 7009 §2.2.1: the client retries) |
 * | another method than `POST` (mount with `app.all`) | 405 with `Allow: POST` |
 *
 * @param store Verifies and revokes tokens; usually the `TokenStore`.
 * @throws {ConfigError} as {@link introspection}, for `verify` and `revoke`.
 */
export function revocation(store: TokenRevoker, options: EndpointOptions): RequestHandler {
  checkStore(store, ['verify', 'revoke'], 'an object with verify(token) and revoke(token) methods');
  const config = endpointConfig(options);
  return formEndpoint(config, TOKEN_PARAM, async (params, res, caller) => {
    await revokeFor(store, tokenParam(params, config.realm), caller, config.realm);
    res.status(200).end();
  });
}

/**
 * RFC 6749 token endpoint for the refresh token grant (§6): `POST` with an
 * `application/x-www-form-urlencoded` body `grant_type=refresh_token&refresh_token=…`
 * and an optional `scope` narrowing the new access token's. The refresh token rotates:
 * the answer carries a new one, and the one sent is used up.
 *
 * `authorize` authenticates the client (RFC 6749 §2.3): a refresh token of another
 * client's session is refused. With `authorize: false` (public clients, §2.1), a
 * `client_id` parameter, when sent, must be the session's client.
 *
 * | request | answer |
 * | --- | --- |
 * | a live refresh token of the client | 200 `{ access_token, token_type: 'Bearer', expires_in, refresh_token, scope }` (`scope` left out when the token has none) |
 * | a refresh token unknown, used, expired, revoked, of an ended session, of another client, or not one at all | 400 `{ error: 'invalid_grant', … }` |
 * | `scope` malformed or wider than the session's | 400 `invalid_scope` |
 * | `grant_type` other than `refresh_token` | 400 `unsupported_grant_type` |
 * | no `grant_type` or `refresh_token`; not form-encoded; bad encoding; repeated parameter; body over `limit` | 400 `invalid_request` |
 * | `authorize` returned neither `{ clientId }` nor `true` | 401 `invalid_client` (`WWW-Authenticate: Basic realm="…"`; `Bearer realm="…"` when the request's `Authorization` has another scheme) |
 * | `authorize` returned `true` | `next(err)` with a `ConfigError` (500): no client to check the session's against |
 * | Redis unavailable | 503 with `Retry-After` |
 * | another method than `POST` (mount with `app.all`) | 405 with `Allow: POST` |
 *
 * Responses carry `Cache-Control: no-store` and `Pragma: no-cache` (§5.1).
 *
 * @param store Refreshes sessions; usually the `TokenStore`.
 * @throws {ConfigError} as {@link introspection}, for `refresh`.
 */
export function tokenEndpoint(store: TokenRefresher, options: EndpointOptions): RequestHandler {
  checkStore(store, ['refresh'], 'an object with a refresh(refreshToken, options) method');
  const config = endpointConfig(options);
  return formEndpoint(config, TOKEN_PARAMS, async (params, res, caller) => {
    res.status(200).json(await refreshGrant(store, params, caller, config.realm));
  }, { headers: TOKEN_HEADERS, callerOf: tokenClientOf });
}

// ---------------------------------------------------------------------------------
// Shared by the form endpoints.

type Config = EndpointConfig<AuthorizeCaller>;

type FormAction = (params: ReadonlyMap<string, string>, res: Response, caller: Caller) => Promise<void>;

/** How an endpoint differs: its headers on every answer, and how a refused caller is answered. */
interface FormEndpointStyle {
  headers: Readonly<Record<string, string>>;
  callerOf: typeof callerOf;
}

// RFC 6749 §5.1: answers about tokens must not be cached, errors included.
const NO_STORE: FormEndpointStyle = { headers: { 'Cache-Control': 'no-store' }, callerOf };

/**
 * Method and content type, body, caller, then the action. Every failure a client can
 * cause is answered here (400/401/405/503); anything else (a bug) goes to `next(err)`.
 * `names`: the parameters read from a body a body parser already parsed into an object.
 */
function formEndpoint(config: Config, names: readonly string[], action: FormAction, style: FormEndpointStyle = NO_STORE): RequestHandler {
  const { realm } = config;
  async function handle(req: Request, res: Response): Promise<void> {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ error: 'method_not_allowed' });
      return;
    }
    res.set(style.headers);
    const params = await formParams(req, config, names);
    const { authorize } = config;
    const caller = await style.callerOf(authorize && (() => authorize(req)), req.headers.authorization, realm);
    await action(params, res, caller);
  }
  // Not an async handler: Express 4 ignores rejections. Every failure arrives once.
  return (req, res, next) => {
    handle(req, res).catch((err: unknown) => {
      const answer = errorAnswer(err);
      if (answer !== undefined && !res.headersSent) {
        res.status(answer.status).set(answer.headers).json(answer.body);
        return;
      }
      next(err);
    });
  };
}

/**
 * The form parameters of the request: read from the body stream unless a body parser
 * already consumed it, in which case `req.body` is used. When this function read the
 * stream and `req.body` was unset, it sets `req.body` to the parameters (a
 * null-prototype object), for `authorize`.
 * @throws {InvalidRequestError} not a form, bad encoding, repeated parameter, too large.
 */
async function formParams(req: Request, config: Config, names: readonly string[]): Promise<Map<string, string>> {
  const { realm } = config;
  const bad = (description: string, cause?: unknown) => new InvalidRequestError(description, { realm, cause });
  const consumed = req.readableEnded || (req as { _body?: unknown })._body === true;
  if (!consumed) {
    const params = await readForm(req, req.headers, config, () => req.res?.set('Connection', 'close'));
    if (req.body === undefined) req.body = formObject(params);
    return params;
  }
  checkFormHeaders(req.headers, bad);
  const body: unknown = req.body;
  if (typeof body === 'string') return parseForm(Buffer.from(body, 'utf8'), bad);
  if (Buffer.isBuffer(body)) return parseForm(body, bad);
  const params = new Map<string, string>();
  if (typeof body !== 'object' || body === null) return params;
  for (const name of names) {
    const value = (body as Record<string, unknown>)[name];
    if (value === undefined || !Object.prototype.hasOwnProperty.call(body, name)) continue;
    if (Array.isArray(value)) throw bad('a parameter is repeated');
    if (typeof value !== 'string') throw bad('parameters must be strings');
    params.set(name, value);
  }
  return params;
}
