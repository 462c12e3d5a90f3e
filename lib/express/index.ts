/**
 * Express glue: `redis-token-lifecycle/express`.
 *
 * Kept on its own subpath, and free of any runtime import of Express or of the
 * token store, so the core never loads Express and this module stays light.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { bearerAuth, requireScope, authErrorHandler } from 'redis-token-lifecycle/express';
 *
 * const app = express();
 * app.get('/me', bearerAuth(store), requireScope('read'), (req, res) => res.json(req.auth));
 * app.use(authErrorHandler());
 * ```
 *
 * @module
 */

import type { ErrorRequestHandler, NextFunction, Request, RequestHandler } from 'express';
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
import { AuthHttpError, ServiceUnavailableError } from '../http/errors.js';

export * from '../http/public.js';
export { jwks, type JwksOptions, type JwksSource } from './jwks.js';
export {
  introspection,
  revocation,
  tokenEndpoint,
  ENDPOINT_DEFAULTS,
  type EndpointOptions,
  type AuthorizeCaller,
  type TokenIntrospector,
  type TokenRevoker,
  type TokenRefresher,
  type RefreshedTokens,
  type TokenEndpointResponse,
  type IntrospectionResponse,
  type AuthorizedClient,
} from './endpoints.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `bearerAuth()` when the request carried a valid, live token. */
      auth?: AuthInfo;
    }
  }
}

/**
 * Middleware that authenticates a request by its `Authorization: Bearer` token:
 * the signature is checked *and* the token must still be live in Redis.
 *
 * On success `req.auth` is `{ token, jti, sub, expiresAt, claims }`. Otherwise it calls
 * `next(err)` with an {@link AuthHttpError}, per RFC 6750:
 *
 * | request | error | status |
 * | --- | --- | --- |
 * | no bearer credentials (no header, or another scheme) | {@link UnauthorizedError} | 401, bare challenge |
 * | malformed `Authorization: Bearer` header | {@link InvalidRequestError} | 400 `invalid_request` |
 * | `verify` rejects with a `TokenError` | {@link InvalidTokenError} | 401 `invalid_token` |
 * | `verify` rejects with a `StoreUnavailableError` | {@link ServiceUnavailableError} | 503, `Retry-After` |
 *
 * With `required: false`, a request with no bearer credentials goes on with `req.auth`
 * undefined; the other rows stay as they are.
 *
 * Any other rejection of `verify` is a bug on the server side and is passed to
 * `next` unchanged, so it reaches the app's own error handling as a 500.
 *
 * @param store Verifies tokens; usually the `TokenStore`.
 * @throws {ConfigError} `store` has no `verify` method, `realm` is not a non-empty
 *   string of printable ASCII without `"` or `\`, or `required` is not a boolean.
 *
 * @example
 * ```ts
 * app.get('/me', bearerAuth(store, { realm: 'accounts' }), (req, res) => {
 *   res.json({ user: req.auth!.sub });
 * });
 * app.get('/posts', bearerAuth(store, { required: false }), (req, res) => {
 *   res.json(req.auth ? postsFor(req.auth.sub) : publicPosts());
 * });
 * app.use(authErrorHandler()); // JSON bodies; without it Express still sends status and headers
 * ```
 */
export function bearerAuth(store: TokenVerifier, options: BearerAuthOptions = {}): RequestHandler {
  const authenticator = bearerAuthenticator(store, options);
  const { realm } = authenticator;
  // Not an async handler: Express 4 would ignore its rejection. Every failure,
  // including a verifier that throws synchronously, arrives at `next` exactly once.
  return (req, _res, next) => {
    rememberRealm(req, realm);
    let outcome: AuthOutcome | Promise<AuthOutcome>;
    try {
      outcome = authenticator.authenticate(req.headers.authorization);
    } catch (err) {
      next(err);
      return;
    }
    // A token the store's cache holds passes here at once, with no promise in between.
    if (outcome instanceof Promise) {
      outcome.then((answer) => settle(req, answer, next), next);
      return;
    }
    settle(req, outcome, next);
  };
}

function settle(req: Request, outcome: AuthOutcome, next: NextFunction): void {
  if (outcome instanceof AuthHttpError) {
    next(outcome);
    return;
  }
  req.auth = outcome;
  next();
}

/** Middleware for a check after bearerAuth: `next()` or `next(err)`, once. */
function checkMiddleware(check: AuthCheck): RequestHandler {
  return (req, _res, next) => {
    let refused: AuthHttpError | undefined;
    try {
      refused = check(req.auth, realmOf(req));
    } catch (err) {
      next(err);
      return;
    }
    next(refused);
  };
}

/**
 * Middleware that lets a request through only if its token grants *every* listed
 * scope (the `scope` claim, a space-separated string per RFC 9068). Put it after
 * {@link bearerAuth}. {@link requireScope.any} asks for *one* of them instead.
 *
 * Otherwise `next(err)` with {@link InsufficientScopeError} (403,
 * `error="insufficient_scope"`, `scope="<the listed scopes>"`), or with
 * {@link UnauthorizedError} (401) when `req.auth` is missing — i.e. `bearerAuth` did
 * not run first, or found no token with `required: false` — which fails closed instead
 * of letting the request pass.
 *
 * @throws {ConfigError} No scope given, or a scope that is not an RFC 6749 scope
 *   token (a non-empty string without spaces, `"` or `\`).
 *
 * @example
 * ```ts
 * app.delete('/posts/:id', bearerAuth(store), requireScope('posts:write', 'posts:delete'), handler);
 * app.get('/posts', bearerAuth(store), requireScope.any('posts:read', 'admin'), handler);
 * ```
 */
export function requireScope(...scopes: string[]): RequestHandler {
  return checkMiddleware(scopeCheck(scopes, 'all'));
}

/**
 * Like {@link requireScope}, but *one* of the listed scopes is enough. The 403's
 * `scope` attribute lists them all: any of them would do.
 *
 * @example
 * ```ts
 * app.get('/reports', bearerAuth(store), requireScope.any('reports:read', 'admin'), handler);
 * ```
 */
requireScope.any = function requireAnyScope(...scopes: string[]): RequestHandler {
  return checkMiddleware(scopeCheck(scopes, 'any'));
};

/**
 * Middleware that lets a request through only if `predicate(req.auth.claims, req.auth)`
 * returns `true`. Put it after {@link bearerAuth}.
 *
 * Otherwise `next(err)` with {@link InsufficientScopeError}: 403
 * `error="insufficient_scope"`, `error_description="insufficient claims"` (or
 * `options.description`), no `scope` attribute. RFC 6750 §3.1 keeps 401
 * `invalid_token` for a token that is bad in itself; this one is valid but does not
 * grant the route, which is what `insufficient_scope` means ("requires higher
 * privileges than provided by the access token"). A missing `req.auth` is 401, as for
 * {@link requireScope}. A predicate that throws, or returns anything but a boolean (a
 * promise, say), is a server bug: `next(err)`, a 500.
 *
 * @throws {ConfigError} `predicate` is not a function, or `description` is not a non-empty string.
 *
 * @example
 * ```ts
 * app.get('/tenants/:id', bearerAuth(store), requireClaims((claims) => claims.tenant === 'acme'), handler);
 * ```
 */
export function requireClaims(predicate: ClaimsPredicate, options: RequireClaimsOptions = {}): RequestHandler {
  return checkMiddleware(claimsCheck(predicate, options));
}

/**
 * Error middleware that renders {@link AuthHttpError}s: status, headers
 * (`WWW-Authenticate`, `Retry-After`) and a JSON body
 * `{ error, error_description }` — `error` being the RFC 6750 code, or
 * `"unauthorized"` / `"service_unavailable"` when there is none. Any other error is
 * passed on untouched. Optional: Express' default handler already sends the right
 * status and headers, only with an HTML body.
 *
 * @example
 * ```ts
 * app.use('/api', bearerAuth(store), apiRouter);
 * app.use(authErrorHandler());
 * app.use(myErrorHandler); // still sees everything else
 * ```
 */
export function authErrorHandler(): ErrorRequestHandler {
  return (err, _req, res, next) => {
    // Once headers are out, only Express' default handler can deal with it (by
    // closing the connection).
    if (!(err instanceof AuthHttpError) || res.headersSent) {
      next(err);
      return;
    }
    res.status(err.status).set(err.headers).json({
      error: err.error ?? (err instanceof ServiceUnavailableError ? 'service_unavailable' : 'unauthorized'),
      error_description: err.message,
    });
  };
}
