// The RFC 6749 token endpoint (§3.2) for the refresh token grant (§6), once a framework
// has handed over the request: the grant's parameters, the client, the store's answer,
// and the §5.1/§5.2 responses. The Express and Fastify glue only route, read the body
// and send, as for introspection and revocation (endpoints.ts).
import { ConfigError, RefreshError, type RefreshErrorCode } from '../errors.js';
import { callerOf, unavailable, type Caller } from './endpoints.js';
import { AuthHttpError, InvalidClientError, InvalidRequestError, oauthErrorBody } from './errors.js';

/** What the token endpoint needs of the store: a `TokenStore` fits. */
export interface TokenRefresher {
  /**
   * Trades a refresh token for a new access token and a new refresh token. Rejects with
   * a `RefreshError` for a refresh token it refuses, a `StoreUnavailableError` when Redis
   * does not answer, a `ConfigError` (option `scope`) for a malformed scope.
   */
  refresh(refreshToken: string, options?: { scope?: string; clientId?: string }): Promise<RefreshedTokens>;
}

/** What {@link TokenRefresher.refresh} resolves to (the parts the endpoint sends). */
export interface RefreshedTokens {
  /** The new access token. */
  token: string;
  /** Its `exp`, in epoch milliseconds. */
  expiresAt: number;
  /** The new refresh token. */
  refreshToken: string;
  /** The new access token's claims: `scope` is answered. */
  claims: { scope?: unknown };
}

/** RFC 6749 §5.1: the successful answer of the token endpoint. */
export interface TokenEndpointResponse {
  access_token: string;
  token_type: 'Bearer';
  /** Whole seconds until the access token expires. */
  expires_in: number;
  refresh_token: string;
  /** The access token's scope; left out when it has none. */
  scope?: string;
}

/** The RFC 6749 §5.2 error codes the token endpoint answers with a 400, beside `invalid_request`. */
export type GrantErrorCode = 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope';

/**
 * A token request refused with 400 and an RFC 6749 §5.2 code that is not about bearer
 * tokens (so it is no `AuthHttpError`, whose codes are RFC 6750's). No
 * `WWW-Authenticate`: no credentials would help. The glue answers it with
 * {@link errorAnswer}.
 */
export class GrantError extends Error {
  readonly status = 400;
  readonly statusCode = 400;
  readonly error: GrantErrorCode;
  readonly headers: Record<string, string> = {};
  /** The message is written for the client. */
  readonly expose = true;

  constructor(error: GrantErrorCode, description: string, options?: { cause?: unknown }) {
    super(description, options);
    this.name = 'GrantError';
    this.error = error;
  }
}

/** Form parameters the token endpoint reads (also from a body `express.urlencoded()` parsed). */
export const TOKEN_PARAMS = ['grant_type', 'refresh_token', 'scope', 'client_id'] as const;

/** Headers of every answer of the token endpoint about a grant (RFC 6749 §5.1). */
export const TOKEN_HEADERS: Readonly<Record<string, string>> = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by spaces.
const SCOPE_CHARS = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;

const DESCRIPTIONS: Record<RefreshErrorCode, [GrantErrorCode, string]> = {
  ERR_REFRESH_INVALID: ['invalid_grant', 'refresh token is invalid, expired or revoked'],
  ERR_REFRESH_REUSED: ['invalid_grant', 'refresh token was used already: its session has been ended'],
  ERR_REFRESH_CLIENT: ['invalid_grant', 'refresh token was not issued to this client'],
  ERR_REFRESH_SCOPE: ['invalid_scope', 'scope exceeds the scope granted'],
};

/**
 * RFC 6749 §6: the refresh token grant, for `caller` (who `authorize` said the client
 * is), with the request's form parameters.
 *
 * - `grant_type` missing → `InvalidRequestError`; anything but `refresh_token` →
 *   `unsupported_grant_type`. `refresh_token` missing → `InvalidRequestError`.
 * - `scope` (optional) narrows the new access token's; malformed, or wider than the
 *   session's → `invalid_scope`.
 * - The client: `{ clientId }` from `authorize`; with `authorize: false` (public
 *   clients), the `client_id` parameter if the request has one. A refresh token of
 *   another client's session → `invalid_grant`, as any refresh token the store refuses.
 *
 * @throws {ConfigError} `caller === true`: `authorize` named no client to check against.
 * @throws `GrantError`, `InvalidRequestError`, `ServiceUnavailableError` (Redis down),
 *   or a bug of the store.
 */
export async function refreshGrant(store: TokenRefresher, params: ReadonlyMap<string, string>, caller: Caller, realm: string): Promise<TokenEndpointResponse> {
  if (caller === true) {
    throw new ConfigError('authorize', 'for the token endpoint, { clientId } of the authenticated client (RFC 6749 §6: a refresh token is bound to its client), not true');
  }
  // RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
  const param = (name: string) => {
    const value = params.get(name);
    return value === '' ? undefined : value;
  };
  const grantType = param('grant_type');
  if (grantType === undefined) throw new InvalidRequestError('grant_type parameter missing', { realm });
  if (grantType !== 'refresh_token') throw new GrantError('unsupported_grant_type', 'grant type not supported');
  const refreshToken = param('refresh_token');
  if (refreshToken === undefined) throw new InvalidRequestError('refresh_token parameter missing', { realm });
  const scope = param('scope');
  if (scope !== undefined && (!SCOPE_CHARS.test(scope) || scope.trim() === '')) throw new GrantError('invalid_scope', 'scope malformed');
  const clientId = caller === false ? param('client_id') : caller.clientId;

  const options: { scope?: string; clientId?: string } = {};
  if (scope !== undefined) options.scope = scope;
  if (clientId !== undefined) options.clientId = clientId;
  let tokens: RefreshedTokens;
  try {
    tokens = await store.refresh(refreshToken, options);
  } catch (err) {
    if (err instanceof RefreshError) {
      const [code, description] = DESCRIPTIONS[err.code] ?? DESCRIPTIONS.ERR_REFRESH_INVALID;
      throw new GrantError(code, description, { cause: err });
    }
    if (err instanceof ConfigError && err.option === 'scope') throw new GrantError('invalid_scope', 'scope malformed', { cause: err });
    throw unavailable(err, realm);
  }
  const answer: TokenEndpointResponse = {
    access_token: tokens.token,
    token_type: 'Bearer',
    // Whole seconds, rounded down: never more than the token has left.
    expires_in: Math.max(0, Math.floor((tokens.expiresAt - Date.now()) / 1000)),
    refresh_token: tokens.refreshToken,
  };
  const granted = tokens.claims.scope;
  if (typeof granted === 'string' && granted !== '') answer.scope = granted;
  return answer;
}

/**
 * {@link callerOf} for the token endpoint: a refused client is always RFC 6749 §5.2
 * `invalid_client` (401). The challenge is Basic (the scheme §2.3.1 makes every server
 * support) unless the request authenticated with another scheme, whose challenge it
 * then gets, as from the other endpoints.
 */
export async function tokenClientOf(authorize: (() => unknown) | false, authorization: string | undefined, realm: string): Promise<Caller> {
  try {
    return await callerOf(authorize, authorization, realm);
  } catch (err) {
    if (!(err instanceof AuthHttpError) || err.status !== 401 || err.error === 'invalid_client') throw err;
    if (authorization === undefined || authorization === '') throw new InvalidClientError(undefined, { realm, cause: err });
    throw new AuthHttpError('client authentication failed', { status: 401, error: 'invalid_client', headers: err.headers, cause: err });
  }
}

/** The status, headers and JSON body with which to answer an endpoint's error, or undefined for a bug. */
export function errorAnswer(err: unknown): { status: number; headers: Record<string, string>; body: { error: string; error_description: string } } | undefined {
  if (err instanceof AuthHttpError) return { status: err.status, headers: err.headers, body: oauthErrorBody(err) };
  if (err instanceof GrantError) return { status: err.status, headers: err.headers, body: { error: err.error, error_description: err.message } };
  return undefined;
}
