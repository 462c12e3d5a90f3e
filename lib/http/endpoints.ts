// What the standard endpoints (RFC 7662 introspection, RFC 7009 revocation, the JWKS)
// do once a framework has handed over the request: options, the caller, the `token`
// parameter, and the answer about the token. The Express and Fastify glue only route,
// read the body and send.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { JWK } from 'jose';
import { ConfigError, RefreshError, StoreUnavailableError, TokenError } from '../errors.js';
import type { TokenInfo } from '../types.js';
import { checkRealm } from './bearer-auth.js';
import { InvalidRequestError, ServiceUnavailableError } from './errors.js';
import { checkFormHeaders, parseForm, readBody } from './form.js';
import { authorizedClient, clientRefused, introspectionResponse, type AuthorizedClient, type IntrospectionResponse } from './oauth.js';

type VerifiedToken = TokenInfo<Record<string, unknown>>;

/** What introspection needs of the store: a `TokenStore` fits. */
export interface TokenIntrospector {
  verify(token: string): Promise<VerifiedToken>;
}

/**
 * What revocation needs of the store: a `TokenStore` fits. `verify` reads the
 * `client_id` of a token before it is revoked (and is not called with `authorize: false`).
 */
export interface TokenRevoker {
  verify(token: string): Promise<VerifiedToken>;
  revoke(token: string): Promise<boolean>;
  /**
   * Ends the session of a refresh token; with `clientId`, only if the session is that
   * client's (else a `RefreshError` `ERR_REFRESH_CLIENT`). Without it, refresh tokens
   * are invalid tokens to revocation (200, nothing revoked).
   */
  revokeRefreshToken?(refreshToken: string, options?: { clientId?: string }): Promise<boolean>;
}

/** What the JWKS endpoint needs of the store: a `TokenStore` fits. */
export interface JwksSource {
  publicJwks(): Promise<{ keys: JWK[] }>;
}

/** Defaults of the endpoint options, whatever the framework. */
export const ENDPOINT_DEFAULTS = {
  /** @default 'api' */
  realm: 'api',
  /** @default 65536 */
  limit: 64 * 1024,
} as const;

/** The checked options of an endpoint. `A` is the framework's `authorize` function. */
export interface EndpointConfig<A> {
  authorize: A | false;
  realm: string;
  limit: number;
}

/**
 * Checks `authorize`, `realm` and `limit`.
 * @throws {ConfigError} naming the option at fault.
 */
export function endpointConfig<A>(options: { authorize: A | false; realm?: string; limit?: number }): EndpointConfig<A> {
  const expected = 'a function (req) => { clientId } | boolean (or a promise of one), or false to allow unauthenticated calls';
  if (typeof options !== 'object' || options === null) throw new ConfigError('authorize', `options with authorize: ${expected}`);
  const { authorize } = options;
  if (authorize !== false && typeof authorize !== 'function') throw new ConfigError('authorize', expected);
  const realm = checkRealm(options.realm ?? ENDPOINT_DEFAULTS.realm);
  const limit = options.limit ?? ENDPOINT_DEFAULTS.limit;
  if (!Number.isInteger(limit) || limit < 1024) throw new ConfigError('limit', 'a whole number of bytes >= 1024');
  return { authorize, realm, limit };
}

/** Checks the JWKS `maxAge` option (seconds). @throws {ConfigError} */
export function jwksMaxAge(value: unknown): number {
  const maxAge = value ?? 300;
  if (!Number.isInteger(maxAge) || (maxAge as number) < 0) throw new ConfigError('maxAge', 'a whole number of seconds >= 0');
  return maxAge as number;
}

/**
 * @param expected What the message says is expected, e.g. "an object with a verify(token) method".
 * @throws {ConfigError} (option `store`) when `store` lacks one of `methods`.
 */
export function checkStore(store: unknown, methods: readonly string[], expected: string): void {
  if (typeof store !== 'object' || store === null || methods.some((m) => typeof (store as Record<string, unknown>)[m] !== 'function')) {
    throw new ConfigError('store', expected);
  }
}

/**
 * Who the caller is: the client `authorize` named, `true` when it allowed the request
 * without naming one, `false` when there is no `authorize` (`authorize: false`).
 */
export type Caller = AuthorizedClient | boolean;

/**
 * Runs `authorize` (already bound to the request) and turns its answer into a
 * {@link Caller}.
 * @throws the 401 of `clientRefused` for a refused caller; `ServiceUnavailableError`
 *   when `authorize` threw a `StoreUnavailableError`; whatever else it threw.
 */
export async function callerOf(authorize: (() => unknown) | false, authorization: string | undefined, realm: string): Promise<Caller> {
  if (authorize === false) return false;
  let allowed: unknown;
  try {
    allowed = await authorize();
  } catch (err) {
    throw unavailable(err, realm);
  }
  const client = authorizedClient(allowed);
  if (allowed !== true && client === undefined) throw clientRefused(authorization, realm);
  return client ?? true;
}

/** A `StoreUnavailableError` as the 503 to answer; anything else as it is. */
export function unavailable(err: unknown, realm: string): unknown {
  return err instanceof StoreUnavailableError ? new ServiceUnavailableError(undefined, { realm, cause: err }) : err;
}

/**
 * The `token` parameter. RFC 6749 §3.1: a parameter sent without a value is treated as
 * omitted. @throws {InvalidRequestError}
 */
export function tokenParam(params: ReadonlyMap<string, string>, realm: string): string {
  const token = params.get('token');
  if (token === undefined || token === '') throw new InvalidRequestError('token parameter missing', { realm });
  return token;
}

/**
 * Reads and parses a strict form body (see form.ts) from a Node request or a stream
 * standing for its body, whose headers are `headers`.
 * @throws {InvalidRequestError} not a form, bad encoding, repeated parameter, too large.
 */
export async function readForm(
  body: Readable,
  headers: IncomingHttpHeaders,
  config: { realm: string; limit: number },
  tooLarge?: () => void,
): Promise<Map<string, string>> {
  const bad = (description: string, cause?: unknown) => new InvalidRequestError(description, { realm: config.realm, cause });
  checkFormHeaders(headers, bad);
  return parseForm(await readBody(body, config.limit, bad, tooLarge, headers), bad);
}

/** Form parameters as a null-prototype object, for `authorize` to read (`client_secret_post`). */
export function formObject(params: ReadonlyMap<string, string>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(params));
}

/**
 * RFC 7662 §2.2: what introspection answers about `token`. Only a signed token may be
 * introspected (a `jti` alone is not a token): anything `verify` refuses is
 * `{ active: false }`, and nothing says why.
 * @throws `ServiceUnavailableError` (Redis down), or a bug of `verify`.
 */
export async function introspect(store: TokenIntrospector, token: string, realm: string): Promise<IntrospectionResponse> {
  let verified: VerifiedToken;
  try {
    verified = await store.verify(token);
  } catch (err) {
    if (err instanceof TokenError) return { active: false };
    throw unavailable(err, realm);
  }
  return introspectionResponse(verified.claims);
}

/**
 * RFC 7009: revokes `token` if it was issued to `caller` (§2.1). A live token of another
 * client is left alone: `InvalidRequestError` ("token was not issued to this client").
 * An invalid token is no error (§2.2), and a bare `jti` is treated as one: it would let
 * any caller revoke any token by id. With `caller === false` (`authorize: false`) there
 * is no client to compare, and whoever holds a token may revoke it.
 *
 * A refresh token (four dot-separated parts; an access token, a JWT, has three) ends its
 * session, through `store.revokeRefreshToken`. Its shape tells which it is, whatever
 * `token_type_hint` says: §2.1 makes the hint only a hint.
 * @throws {ConfigError} `caller === true`: `authorize` named no client to check against.
 * @throws `InvalidRequestError`, `ServiceUnavailableError`, or a bug of the store.
 */
export async function revokeFor(store: TokenRevoker, token: string, caller: Caller, realm: string): Promise<void> {
  if (caller === true) {
    throw new ConfigError('authorize', 'for revocation, { clientId } of the authenticated client (RFC 7009 §2.1: only its own tokens may be revoked), not true');
  }
  if (!token.includes('.')) return;
  const notThisClients = () => new InvalidRequestError('token was not issued to this client', { realm });
  if (token.split('.', 5).length === 4) {
    if (typeof store.revokeRefreshToken !== 'function') return;
    try {
      await store.revokeRefreshToken(token, caller === false ? {} : { clientId: caller.clientId });
    } catch (err) {
      if (err instanceof RefreshError && err.code === 'ERR_REFRESH_CLIENT') throw notThisClients();
      if (err instanceof RefreshError || err instanceof ConfigError) return;
      throw unavailable(err, realm);
    }
    return;
  }
  try {
    if (caller !== false) {
      const { claims } = await store.verify(token);
      if (claims.client_id !== caller.clientId) throw notThisClients();
    }
    await store.revoke(token);
  } catch (err) {
    // ConfigError is what revoke throws for a string that is neither a token nor a jti.
    if (err instanceof TokenError || err instanceof ConfigError) return;
    throw unavailable(err, realm);
  }
}
