/**
 * Bearer authentication with no framework in sight: options, token extraction, the
 * store's answer mapped to RFC 6750 errors, and the scope and claims checks. The
 * Express and Fastify glue (lib/express, lib/fastify) only read the header, store the
 * result on their request object and send or pass on the error — as auth0's
 * `oauth2-bearer` sits under `express-oauth2-jwt-bearer`.
 *
 * Answers are returned, not thrown: an {@link AuthHttpError} is an answer to send, and
 * a thrown error (or a rejected promise) is a bug on the server side.
 *
 * @module
 */

import { ConfigError, StoreUnavailableError, TokenError, type TokenErrorCode } from '../errors.js';
import { fromCache, type SyncVerifier } from '../tokens/cached-answer.js';
import type { TokenInfo } from '../types.js';
import { extractBearer } from './bearer.js';
import {
  AuthHttpError,
  InsufficientScopeError,
  InvalidTokenError,
  ServiceUnavailableError,
  UnauthorizedError,
} from './errors.js';

/** What a successful {@link TokenVerifier.verify} resolves to: a `TokenStore`'s `TokenInfo`. */
export type VerifiedToken = TokenInfo<Record<string, unknown>>;

/**
 * Anything that can verify a token: a `TokenStore` fits. Typed structurally so the
 * framework glue need not import the store (and with it ioredis).
 */
export interface TokenVerifier {
  /**
   * Resolves when the token is valid and still live; rejects with a `TokenError`
   * when it is not, or a `StoreUnavailableError` when that cannot be known.
   */
  verify(token: string): Promise<VerifiedToken>;
}

/** Set on the request (`req.auth`, `request.auth`) once the token has been verified. */
export interface AuthInfo extends VerifiedToken {
  /** The raw bearer token, e.g. to revoke it on logout. */
  token: string;
}

/** Options of `bearerAuth`, the same for every framework. */
export interface BearerAuthOptions {
  /**
   * The realm named in every `WWW-Authenticate` challenge.
   * @default 'api'
   */
  realm?: string;
  /**
   * `false` makes authentication optional: a request with no bearer credentials (no
   * `Authorization` header, or another scheme) goes on with `auth` undefined. A request
   * that does carry a bearer token is still refused when the token is malformed, bad,
   * expired or revoked, or when Redis cannot tell (503): a client that sent a token
   * expects it to count, and must learn when it does not.
   * @default true
   */
  required?: boolean;
}

/** Defaults of {@link BearerAuthOptions}. */
export const BEARER_AUTH_DEFAULTS = {
  /** @default 'api' */
  realm: 'api',
  /** @default true */
  required: true,
} as const satisfies Required<BearerAuthOptions>;

/**
 * The answer for one request: the verified token, the error to answer with, or
 * `undefined` (no bearer credentials, and `required: false`).
 */
export type AuthOutcome = AuthInfo | AuthHttpError | undefined;

/** The framework-free half of `bearerAuth`; see {@link bearerAuthenticator}. */
export interface BearerAuthenticator {
  /** The realm, checked. */
  readonly realm: string;
  /** Whether a request without bearer credentials is refused. */
  readonly required: boolean;
  /**
   * Authenticates a request by its `Authorization` header value. Synchronous when the
   * answer needs no I/O: no credentials, a malformed header, or a token the store's
   * verified-token cache holds (a route that does little else would spend more on the
   * promise hops than on the check). Otherwise a promise, which rejects only for a bug
   * (an error of `verify` that is neither a `TokenError` nor a `StoreUnavailableError`,
   * or a `verify` that resolves to nothing).
   */
  authenticate(authorization: string | undefined): AuthOutcome | Promise<AuthOutcome>;
}

// Fixed descriptions rather than the verifier's message: that message is written for
// logs and may say more than a client should learn. `cause` keeps it.
const TOKEN_ERROR_DESCRIPTIONS: Record<TokenErrorCode, string> = {
  ERR_TOKEN_MALFORMED: 'token malformed',
  ERR_TOKEN_SIGNATURE: 'token signature invalid',
  ERR_TOKEN_EXPIRED: 'token expired',
  ERR_TOKEN_REVOKED: 'token revoked',
  ERR_TOKEN_CLAIMS: 'token claims invalid',
};

// Printable ASCII without `"` or `\`, so it goes into the quoted realm as is. Checked
// rather than escaped later: a realm is the app's constant, and a bad one is a mistake
// to report at startup, not to paper over in every response.
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * Checks a realm option.
 * @throws {ConfigError} not a non-empty string of printable ASCII without `"` or `\`.
 */
export function checkRealm(realm: unknown, option = 'realm'): string {
  if (typeof realm !== 'string' || !REALM.test(realm)) {
    throw new ConfigError(option, 'a non-empty string of printable ASCII without " or \\');
  }
  return realm;
}

/**
 * Validates `store` and `options` once, and returns the authenticator every request
 * goes through.
 *
 * | request | outcome |
 * | --- | --- |
 * | no bearer credentials (no header, or another scheme) | {@link UnauthorizedError} (401, bare challenge); `undefined` with `required: false` |
 * | malformed `Authorization: Bearer` header | `InvalidRequestError` (400 `invalid_request`) |
 * | `verify` rejects with a `TokenError` | {@link InvalidTokenError} (401 `invalid_token`, a fixed description per code) |
 * | `verify` rejects with a `StoreUnavailableError` | {@link ServiceUnavailableError} (503, `Retry-After`) |
 * | `verify` resolves | `{ token, jti, sub, expiresAt, claims }` |
 *
 * @throws {ConfigError} `store` has no `verify` method; `options` is not an object;
 *   `realm` is not a non-empty string of printable ASCII without `"` or `\`; `required`
 *   is not a boolean.
 */
export function bearerAuthenticator(store: TokenVerifier, options: BearerAuthOptions = {}): BearerAuthenticator {
  if (typeof store !== 'object' || store === null || typeof store.verify !== 'function') {
    throw new ConfigError('store', 'an object with a verify(token) method');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', 'an object');
  }
  const realm = checkRealm(options.realm ?? BEARER_AUTH_DEFAULTS.realm);
  const required = options.required ?? BEARER_AUTH_DEFAULTS.required;
  if (typeof required !== 'boolean') throw new ConfigError('required', 'a boolean');

  const cached = typeof (store as Partial<SyncVerifier>)[fromCache] === 'function' ? store as unknown as SyncVerifier : undefined;

  function authenticate(authorization: string | undefined): AuthOutcome | Promise<AuthOutcome> {
    let token: string | undefined;
    try {
      token = extractBearer(authorization, realm);
    } catch (err) {
      if (err instanceof AuthHttpError) return err;
      throw err;
    }
    if (token === undefined) return required ? new UnauthorizedError(undefined, { realm }) : undefined;
    const hit = cached?.[fromCache](token);
    if (hit !== undefined) return authInfo(token, hit);
    let pending: Promise<VerifiedToken>;
    try {
      pending = store.verify(token);
    } catch (err) {
      // A verifier that throws instead of rejecting still gets its error mapped.
      const answer = httpErrorOf(err, realm);
      if (answer !== undefined) return answer;
      return Promise.reject(err);
    }
    const known = token;
    return Promise.resolve(pending).then(
      (verified) => authInfo(known, verified),
      (err: unknown) => {
        const answer = httpErrorOf(err, realm);
        if (answer !== undefined) return answer;
        throw err;
      },
    );
  }

  return { realm, required, authenticate };
}

/** Copied field by field: `auth` has exactly the documented shape, whatever else the verifier's result carries. */
function authInfo(token: string, verified: VerifiedToken): AuthInfo {
  return { token, jti: verified.jti, sub: verified.sub, expiresAt: verified.expiresAt, claims: verified.claims };
}

/**
 * The HTTP answer for an error of `verify`: `TokenError` → 401 `invalid_token` with a
 * fixed description, `StoreUnavailableError` → 503. `undefined` for anything else (a
 * bug, for the app's own error handling).
 */
export function httpErrorOf(err: unknown, realm: string): AuthHttpError | undefined {
  if (err instanceof TokenError) {
    return new InvalidTokenError(TOKEN_ERROR_DESCRIPTIONS[err.code] ?? 'invalid token', { realm, cause: err });
  }
  if (err instanceof StoreUnavailableError) {
    return new ServiceUnavailableError(undefined, { realm, cause: err });
  }
  return undefined;
}

// The realm bearerAuth used for a request, so that the checks after it name the same
// realm without the app repeating it. Keyed by the framework's request object; weak, so
// it goes away with the request.
const realms = new WeakMap<object, string>();

/** Notes the realm `bearerAuth` used for `request` (any framework's request object). */
export function rememberRealm(request: object, realm: string): void {
  // The default realm is what realmOf answers anyway: no entry, no cost per request.
  if (realm !== BEARER_AUTH_DEFAULTS.realm || realms.has(request)) realms.set(request, realm);
}

/** The realm `bearerAuth` used for `request`, or the default one. */
export function realmOf(request: object): string {
  return realms.get(request) ?? BEARER_AUTH_DEFAULTS.realm;
}

/**
 * A check run after `bearerAuth`: `undefined` lets the request through, an error is the
 * answer. A request with no `auth` (bearerAuth did not run, or found no credentials
 * with `required: false`) gets 401 with a bare challenge: the checks fail closed.
 */
export type AuthCheck = (auth: AuthInfo | undefined, realm: string) => AuthHttpError | undefined;

/** How the scopes given to a scope check combine. */
export type ScopeMatch = 'all' | 'any';

// RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\` — which also
// means it can be put in the challenge's quoted `scope` attribute as is.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * A check that the token's `scope` claim (a space-separated string, RFC 9068) grants
 * every listed scope (`match: 'all'`) or at least one of them (`'any'`). Otherwise
 * {@link InsufficientScopeError}: 403 `insufficient_scope`, the challenge's `scope`
 * attribute listing the scopes given. Scopes are compared whole and case-sensitively; a
 * `scope` claim that is not a string grants nothing.
 *
 * @throws {ConfigError} (option `scopes`) No scope given, or one that is not an RFC 6749
 *   scope token (a non-empty string without spaces, `"` or `\`).
 */
export function scopeCheck(scopes: readonly string[], match: ScopeMatch): AuthCheck {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw new ConfigError('scopes', 'at least one scope');
  }
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw new ConfigError('scopes', 'non-empty strings of printable ASCII without spaces, " or \\');
    }
  }
  const required = [...scopes];
  return (auth, realm) => {
    if (auth === undefined) return new UnauthorizedError(undefined, { realm });
    const claim = auth.claims.scope;
    const granted = new Set(typeof claim === 'string' ? claim.split(' ') : []);
    const ok = match === 'all' ? required.every((s) => granted.has(s)) : required.some((s) => granted.has(s));
    return ok ? undefined : new InsufficientScopeError(required, undefined, { realm });
  };
}

/**
 * Decides whether a verified token may use a route, from its claims. Must return a
 * boolean, synchronously: anything else (a promise, say) is a server bug, answered 500
 * rather than taken for a yes.
 */
export type ClaimsPredicate = (claims: Readonly<Record<string, unknown>>, auth: AuthInfo) => boolean;

/** Options of `requireClaims`. */
export interface RequireClaimsOptions {
  /**
   * The `error_description` of the 403.
   * @default 'insufficient claims'
   */
  description?: string;
}

/**
 * A check that `predicate(claims, auth)` is `true`. Otherwise 403 `insufficient_scope`
 * with no `scope` attribute: the token is valid, it just does not grant this route
 * (RFC 6750 §3.1). Not 401 `invalid_token`, which tells the client its token is bad and
 * to get another — which would be refused the same way.
 *
 * @throws {ConfigError} `predicate` is not a function; `description` is not a non-empty string.
 */
export function claimsCheck(predicate: ClaimsPredicate, options: RequireClaimsOptions = {}): AuthCheck {
  if (typeof predicate !== 'function') throw new ConfigError('predicate', 'a function (claims, auth) => boolean');
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
  const description = options.description ?? 'insufficient claims';
  if (typeof description !== 'string' || description === '') throw new ConfigError('description', 'a non-empty string');
  return (auth, realm) => {
    if (auth === undefined) return new UnauthorizedError(undefined, { realm });
    const verdict: unknown = predicate(auth.claims, auth);
    if (verdict === true) return undefined;
    if (verdict === false) return new InsufficientScopeError([], description, { realm });
    throw new TypeError(`requireClaims: the predicate returned ${verdict instanceof Promise ? 'a promise' : typeof verdict}, not a boolean`);
  };
}
