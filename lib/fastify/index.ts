/**
 * Fastify glue: `redis-token-lifecycle/fastify`.
 *
 * `bearerAuth`, `requireScope` and `requireClaims` are hooks for a route's `onRequest`
 * (or `preHandler`); `tokenEndpoints` is a plugin with the standard endpoints. Like the
 * Express subpath, this module imports neither Fastify (types only) nor the token store
 * at run time; the work is done in lib/http, shared with Express.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { bearerAuth, requireScope, tokenEndpoints } from 'redis-token-lifecycle/fastify';
 *
 * const app = Fastify();
 * app.get('/me', { onRequest: [bearerAuth(store), requireScope('read')] }, async (request) => request.auth);
 * await app.register(tokenEndpoints, { store, authorize: authenticateClient });
 * ```
 *
 * @module
 */

import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import {
  bearerAuthenticator,
  claimsCheck,
  realmOf,
  rememberRealm,
  scopeCheck,
  type AuthCheck,
  type AuthInfo,
  type AuthOutcome,
  type BearerAuthOptions,
  type ClaimsPredicate,
  type RequireClaimsOptions,
  type TokenVerifier,
} from '../http/bearer-auth.js';
import { AuthHttpError, oauthErrorBody } from '../http/errors.js';

export * from '../http/public.js';
export {
  tokenEndpoints,
  TOKEN_ENDPOINTS_DEFAULTS,
  type TokenEndpointsOptions,
  type EndpointStore,
  type AuthorizeCaller,
  type AuthorizedClient,
  type IntrospectionResponse,
} from './endpoints.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `bearerAuth()` when the request carried a valid, live token. */
    auth?: AuthInfo;
  }
}

/**
 * A request hook: fits a route's `onRequest` and `preHandler` (or `addHook`). Callback
 * style, not async, so that a request that needs no I/O passes without a promise.
 */
export type AuthHook = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

/** Sends an auth error as the Express glue's `authErrorHandler()` renders it. */
function refuse(reply: FastifyReply, err: AuthHttpError): void {
  reply.code(err.status).headers(err.headers).send(oauthErrorBody(err));
}

/**
 * `onRequest` hook that authenticates a request by its `Authorization: Bearer` token:
 * the signature is checked *and* the token must still be live in Redis.
 *
 * On success `request.auth` is `{ token, jti, sub, expiresAt, claims }` and the route
 * runs. Otherwise the hook answers, per RFC 6750, with a JSON body
 * `{ error, error_description }`:
 *
 * | request | status |
 * | --- | --- |
 * | no bearer credentials (no header, or another scheme) | 401, `WWW-Authenticate: Bearer realm="api"`, `error: 'unauthorized'` |
 * | malformed `Authorization: Bearer` header | 400 `invalid_request` |
 * | bad, expired or revoked token (`verify` rejects with a `TokenError`) | 401 `invalid_token` |
 * | Redis unreachable (`StoreUnavailableError`) | 503, `Retry-After: 1`, `error: 'service_unavailable'` |
 *
 * With `required: false`, a request with no bearer credentials goes on with
 * `request.auth` undefined; the other rows stay as they are. Any other rejection of
 * `verify` is a server bug and goes to Fastify's error handling (a 500). A token the
 * store's verified-token cache holds passes synchronously.
 *
 * @param store Verifies tokens; usually the `TokenStore`.
 * @throws {ConfigError} `store` has no `verify` method, `realm` is not a non-empty
 *   string of printable ASCII without `"` or `\`, or `required` is not a boolean.
 *
 * @example
 * ```ts
 * app.get('/me', { onRequest: bearerAuth(store) }, async (request) => ({ user: request.auth!.sub }));
 * // Every route of a plugin:
 * app.register(async (api) => {
 *   api.addHook('onRequest', bearerAuth(store, { realm: 'accounts' }));
 *   api.get('/orders', listOrders);
 * });
 * ```
 */
export function bearerAuth(store: TokenVerifier, options: BearerAuthOptions = {}): AuthHook {
  const authenticator = bearerAuthenticator(store, options);
  const { realm } = authenticator;
  // `done` is called at most once, or the hook answers: never both.
  return function bearerAuthHook(request, reply, done) {
    rememberRealm(request, realm);
    const outcome = authenticator.authenticate(request.headers.authorization);
    if (outcome instanceof Promise) {
      outcome.then((answer) => settle(request, reply, answer, done), done);
      return;
    }
    settle(request, reply, outcome, done);
  };
}

function settle(request: FastifyRequest, reply: FastifyReply, outcome: AuthOutcome, done: HookHandlerDoneFunction): void {
  if (outcome instanceof AuthHttpError) {
    refuse(reply, outcome);
    return;
  }
  request.auth = outcome;
  done();
}

/** A hook for a check after bearerAuth; a check that throws (a bug) goes to Fastify's error handling. */
function checkHook(check: AuthCheck): AuthHook {
  return function authCheckHook(request, reply, done) {
    const refused = check(request.auth, realmOf(request));
    if (refused === undefined) done();
    else refuse(reply, refused);
  };
}

/**
 * Hook that lets a request through only if its token grants *every* listed scope (the
 * `scope` claim, a space-separated string per RFC 9068). Put it after
 * {@link bearerAuth}, in `onRequest` or `preHandler`. {@link requireScope.any} asks for
 * *one* of them instead.
 *
 * Otherwise 403 `insufficient_scope` with `scope="<the listed scopes>"` in the
 * challenge, or 401 with a bare challenge when `request.auth` is missing (`bearerAuth`
 * did not run first, or found no token with `required: false`): it fails closed.
 *
 * @throws {ConfigError} No scope given, or a scope that is not an RFC 6749 scope token
 *   (a non-empty string without spaces, `"` or `\`).
 *
 * @example
 * ```ts
 * app.delete('/posts/:id', { onRequest: [bearerAuth(store), requireScope('posts:write', 'posts:delete')] }, handler);
 * app.get('/posts', { onRequest: [bearerAuth(store), requireScope.any('posts:read', 'admin')] }, handler);
 * ```
 */
export function requireScope(...scopes: string[]): AuthHook {
  return checkHook(scopeCheck(scopes, 'all'));
}

/**
 * Like {@link requireScope}, but *one* of the listed scopes is enough. The 403's
 * `scope` attribute lists them all: any of them would do.
 */
requireScope.any = function requireAnyScope(...scopes: string[]): AuthHook {
  return checkHook(scopeCheck(scopes, 'any'));
};

/**
 * Hook that lets a request through only if `predicate(request.auth.claims,
 * request.auth)` returns `true`. Put it after {@link bearerAuth}.
 *
 * Otherwise 403 `insufficient_scope` with `error_description="insufficient claims"` (or
 * `options.description`) and no `scope` attribute: the token is valid but does not
 * grant this route (RFC 6750 §3.1); 401 `invalid_token` would tell the client to get
 * another token, which would be refused the same way. A missing `request.auth` is 401.
 * A predicate that throws, or returns anything but a boolean (a promise, say), is a
 * server bug: Fastify's error handling, a 500.
 *
 * @throws {ConfigError} `predicate` is not a function, or `description` is not a non-empty string.
 *
 * @example
 * ```ts
 * app.get('/tenants/acme', { onRequest: [bearerAuth(store), requireClaims((claims) => claims.tenant === 'acme')] }, handler);
 * ```
 */
export function requireClaims(predicate: ClaimsPredicate, options: RequireClaimsOptions = {}): AuthHook {
  return checkHook(claimsCheck(predicate, options));
}
