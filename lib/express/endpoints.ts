/**
 * Standard OAuth endpoints for a `TokenStore`, as Express handlers:
 *
 * - {@link introspection}: RFC 7662 token introspection (`POST`, form body `token=…`).
 * - {@link revocation}: RFC 7009 token revocation (`POST`, form body `token=…`).
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
import { AuthHttpError, InvalidRequestError, oauthErrorBody } from '../http/errors.js';
import { checkFormHeaders, parseForm } from '../http/form.js';
import type { AuthorizedClient } from '../http/oauth.js';

export type { AuthorizedClient, IntrospectionResponse } from '../http/oauth.js';
export { ENDPOINT_DEFAULTS, type TokenIntrospector, type TokenRevoker } from '../http/endpoints.js';

/**
 * Authenticates the caller of the endpoint (RFC 7662 §2.1 and RFC 7009 §2.1 require
 * it, e.g. by client credentials). It runs after the body is parsed, so form
 * parameters such as `client_id`/`client_secret` are on `req.body`.
 *
 * - `{ clientId }` (a non-empty string): the authenticated client. {@link revocation}
 *   then revokes only tokens whose `client_id` claim is that client's.
 * - `true`: allowed without naming a client; for {@link introspection} only (a resource
 *   server asking about any token). {@link revocation} refuses it as a server
 *   misconfiguration (500 through `next(err)`): it could not check whose token it is.
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

/** Options of {@link introspection} and {@link revocation}. */
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
  return formEndpoint(config, async (token, res) => {
    res.status(200).json(await introspect(store, token, config.realm));
  });
}

/**
 * RFC 7009 token revocation endpoint: `POST` with an
 * `application/x-www-form-urlencoded` body `token=…` (`token_type_hint` ignored).
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
 * | request | answer |
 * | --- | --- |
 * | a token of the calling client, live or not; an invalid token (RFC 7009 §2.2) | 200, empty body |
 * | a live token whose `client_id` is another client's | 400 `{ error: 'invalid_request', error_description: 'token was not issued to this client' }`, nothing revoked |
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
  return formEndpoint(config, async (token, res, caller) => {
    await revokeFor(store, token, caller, config.realm);
    res.status(200).end();
  });
}

// ---------------------------------------------------------------------------------
// Shared by the two form endpoints.

type Config = EndpointConfig<AuthorizeCaller>;

type TokenAction = (token: string, res: Response, caller: Caller) => Promise<void>;

/**
 * Method and content type, body, caller, `token` parameter, then the action. Every
 * failure a client can cause is answered here (400/401/405/503); anything else (a bug)
 * goes to `next(err)`.
 */
function formEndpoint(config: Config, action: TokenAction): RequestHandler {
  const { realm } = config;
  async function handle(req: Request, res: Response): Promise<void> {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ error: 'method_not_allowed' });
      return;
    }
    // RFC 6749 §5.1: answers about tokens must not be cached, errors included.
    res.set('Cache-Control', 'no-store');
    const params = await formParams(req, config);
    const { authorize } = config;
    const caller = await callerOf(authorize && (() => authorize(req)), req.headers.authorization, realm);
    await action(tokenParam(params, realm), res, caller);
  }
  // Not an async handler: Express 4 ignores rejections. Every failure arrives once.
  return (req, res, next) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof AuthHttpError && !res.headersSent) {
        res.status(err.status).set(err.headers).json(oauthErrorBody(err));
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
async function formParams(req: Request, config: Config): Promise<Map<string, string>> {
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
  for (const name of ['token', 'token_type_hint']) {
    const value = (body as Record<string, unknown>)[name];
    if (value === undefined || !Object.prototype.hasOwnProperty.call(body, name)) continue;
    if (Array.isArray(value)) throw bad('a parameter is repeated');
    if (typeof value !== 'string') throw bad('parameters must be strings');
    params.set(name, value);
  }
  return params;
}
