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

import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { ConfigError, StoreUnavailableError, TokenError, type TokenErrorCode } from '../errors.js';
import { fromCache, type SyncVerifier } from '../tokens/cached-answer.js';
import type { TokenInfo } from '../types.js';
import { extractBearer } from '../http/bearer.js';
import {
  AuthHttpError,
  InsufficientScopeError,
  InvalidTokenError,
  ServiceUnavailableError,
  UnauthorizedError,
} from '../http/errors.js';

export { extractBearer, MAX_AUTHORIZATION_LENGTH } from '../http/bearer.js';
export {
  AuthHttpError,
  InsufficientScopeError,
  InvalidClientError,
  InvalidRequestError,
  InvalidTokenError,
  ServiceUnavailableError,
  UnauthorizedError,
  type AuthHttpErrorInit,
  type AuthHttpErrorOptions,
  type BearerErrorCode,
  type OAuthErrorCode,
} from '../http/errors.js';
export { jwks, type JwksOptions, type JwksSource } from './jwks.js';
export { introspection, revocation, ENDPOINT_DEFAULTS, type EndpointOptions, type AuthorizeCaller, type TokenIntrospector, type TokenRevoker, type IntrospectionResponse, type AuthorizedClient } from './endpoints.js';

/** What a successful {@link TokenVerifier.verify} resolves to: a `TokenStore`'s `TokenInfo`. */
export type VerifiedToken = TokenInfo<Record<string, unknown>>;

/**
 * Anything that can verify a token: a `TokenStore` fits. Typed structurally so this
 * subpath need not import the store (and with it ioredis).
 */
export interface TokenVerifier {
  /**
   * Resolves when the token is valid and still live; rejects with a `TokenError`
   * when it is not, or a `StoreUnavailableError` when that cannot be known.
   */
  verify(token: string): Promise<VerifiedToken>;
}

/** Set on `req.auth` by {@link bearerAuth} once the token has been verified. */
export interface AuthInfo extends VerifiedToken {
  /** The raw bearer token, e.g. to revoke it on logout. */
  token: string;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `bearerAuth()` when the request carried a valid, live token. */
      auth?: AuthInfo;
    }
  }
}

/** Options of {@link bearerAuth}. */
export interface BearerAuthOptions {
  /**
   * The realm named in every `WWW-Authenticate` challenge.
   * @default 'api'
   */
  realm?: string;
}

/** Defaults of {@link BearerAuthOptions}. */
export const BEARER_AUTH_DEFAULTS = {
  /** @default 'api' */
  realm: 'api',
} as const satisfies Required<BearerAuthOptions>;

// Fixed descriptions rather than the verifier's message: that message is written for
// logs and may say more than a client should learn. `cause` keeps it.
const TOKEN_ERROR_DESCRIPTIONS: Record<TokenErrorCode, string> = {
  ERR_TOKEN_MALFORMED: 'token malformed',
  ERR_TOKEN_SIGNATURE: 'token signature invalid',
  ERR_TOKEN_EXPIRED: 'token expired',
  ERR_TOKEN_REVOKED: 'token revoked',
  ERR_TOKEN_CLAIMS: 'token claims invalid',
};

// The realm bearerAuth used for a request, so that requireScope's challenges name the
// same realm without the app repeating it. Weak: it goes away with the request.
const realms = new WeakMap<Request, string>();

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
 * Any other rejection of `verify` is a bug on the server side and is passed to
 * `next` unchanged, so it reaches the app's own error handling as a 500.
 *
 * @param store Verifies tokens; usually the `TokenStore`.
 * @throws {ConfigError} `store` has no `verify` method, or `realm` is not a non-empty
 *   string of printable ASCII without `"` or `\`.
 *
 * @example
 * ```ts
 * app.get('/me', bearerAuth(store, { realm: 'accounts' }), (req, res) => {
 *   res.json({ user: req.auth!.sub });
 * });
 * app.use(authErrorHandler()); // JSON bodies; without it Express still sends status and headers
 * ```
 */
export function bearerAuth(store: TokenVerifier, options: BearerAuthOptions = {}): RequestHandler {
  if (typeof store !== 'object' || store === null || typeof store.verify !== 'function') {
    throw new ConfigError('store', 'an object with a verify(token) method');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', 'an object');
  }
  const realm = options.realm ?? BEARER_AUTH_DEFAULTS.realm;
  // Checked here rather than escaped later: a realm is the app's constant, and a bad
  // one is a mistake to report at startup, not to paper over in every response.
  if (typeof realm !== 'string' || !/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/.test(realm)) {
    throw new ConfigError('realm', 'a non-empty string of printable ASCII without " or \\');
  }

  async function authenticate(req: Request): Promise<AuthInfo> {
    const token = extractBearer(req.headers.authorization, realm);
    if (token === undefined) throw new UnauthorizedError(undefined, { realm });
    let verified: VerifiedToken;
    try {
      verified = await store.verify(token);
    } catch (err) {
      throw toHttpError(err, realm);
    }
    return authInfo(token, verified);
  }

  // A token the store's cache holds passes at once, with no promise in between: for a
  // route that does little else, the hops would cost more than the check.
  const cached = typeof (store as Partial<SyncVerifier>)[fromCache] === 'function' ? store as unknown as SyncVerifier : undefined;
  function fromMemory(req: Request): AuthInfo | undefined {
    if (cached === undefined) return undefined;
    let token: string | undefined;
    try {
      token = extractBearer(req.headers.authorization, realm);
    } catch {
      return undefined; // `authenticate` answers it
    }
    if (token === undefined) return undefined;
    const hit = cached[fromCache](token);
    return hit === undefined ? undefined : authInfo(token, hit);
  }

  // Not an async handler: Express 4 would ignore its rejection. Every failure,
  // including a verifier that throws synchronously, arrives at `next` exactly once.
  return (req, _res, next) => {
    realms.set(req, realm);
    const known = fromMemory(req);
    if (known !== undefined) {
      req.auth = known;
      next();
      return;
    }
    authenticate(req).then((auth) => {
      req.auth = auth;
      next();
    }, next);
  };
}

/** Copied field by field: req.auth has exactly the documented shape, whatever else the verifier's result carries. */
function authInfo(token: string, verified: VerifiedToken): AuthInfo {
  return { token, jti: verified.jti, sub: verified.sub, expiresAt: verified.expiresAt, claims: verified.claims };
}

function toHttpError(err: unknown, realm: string): unknown {
  if (err instanceof TokenError) {
    return new InvalidTokenError(TOKEN_ERROR_DESCRIPTIONS[err.code] ?? 'invalid token', { realm, cause: err });
  }
  if (err instanceof StoreUnavailableError) {
    return new ServiceUnavailableError(undefined, { realm, cause: err });
  }
  return err;
}

// RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\` — which also
// means it can be put in the challenge's quoted `scope` attribute as is.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * Middleware that lets a request through only if its token grants *every* listed
 * scope (the `scope` claim, a space-separated string per RFC 9068). Put it after
 * {@link bearerAuth}.
 *
 * Otherwise `next(err)` with {@link InsufficientScopeError} (403,
 * `error="insufficient_scope"`, `scope="<the listed scopes>"`), or with
 * {@link UnauthorizedError} (401) when `req.auth` is missing — i.e. `bearerAuth` did
 * not run first, which fails closed instead of letting the request pass.
 *
 * @throws {ConfigError} No scope given, or a scope that is not an RFC 6749 scope
 *   token (a non-empty string without spaces, `"` or `\`).
 *
 * @example
 * ```ts
 * app.delete('/posts/:id', bearerAuth(store), requireScope('posts:write', 'posts:delete'), handler);
 * ```
 */
export function requireScope(...scopes: string[]): RequestHandler {
  if (scopes.length === 0) {
    throw new ConfigError('scopes', 'at least one scope');
  }
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw new ConfigError('scopes', 'non-empty strings of printable ASCII without spaces, " or \\');
    }
  }
  const required = [...scopes];

  return (req, _res, next) => {
    const realm = realms.get(req) ?? BEARER_AUTH_DEFAULTS.realm;
    const auth = req.auth;
    if (auth === undefined) {
      next(new UnauthorizedError(undefined, { realm }));
      return;
    }
    const claim = auth.claims.scope;
    const granted = new Set(typeof claim === 'string' ? claim.split(' ') : []);
    if (required.every((scope) => granted.has(scope))) {
      next();
    } else {
      next(new InsufficientScopeError(required, undefined, { realm }));
    }
  };
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
