/**
 * HTTP errors of the bearer middleware (RFC 6750 §3) and of the standard endpoints
 * (RFC 6749 §5.2 `invalid_client` for a failed HTTP Basic client authentication).
 *
 * Each one carries everything a response needs — `status`, the RFC 6750 `error`
 * code and the `WWW-Authenticate` header — so that even without
 * `authErrorHandler()` Express' default handler (which honours `err.status`
 * and `err.headers`) answers with the right status and challenge.
 *
 * @module
 */

/** The error codes RFC 6750 §3.1 defines for the `WWW-Authenticate: Bearer` challenge. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

/** Every `error` code an {@link AuthHttpError} carries: RFC 6750's, and RFC 6749 §5.2's `invalid_client`. */
export type OAuthErrorCode = BearerErrorCode | 'invalid_client';

/** Options shared by every {@link AuthHttpError} subclass. */
export interface AuthHttpErrorOptions {
  /**
   * The protection space named in the challenge.
   * @default 'api'
   */
  realm?: string;
  /** The error that led to this one (a `TokenError`, a `StoreUnavailableError`…), kept for logs. */
  cause?: unknown;
}

/** What {@link AuthHttpError}'s constructor needs; subclasses fill it in. */
export interface AuthHttpErrorInit {
  status: number;
  error?: OAuthErrorCode | undefined;
  headers: Record<string, string>;
  cause?: unknown;
}

/**
 * Base class of the HTTP errors passed to `next(err)` by the middleware.
 * Test with `instanceof AuthHttpError` to render them yourself.
 */
export class AuthHttpError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** Same as {@link status}: some error handlers read one name, some the other. */
  readonly statusCode: number;
  /** RFC 6750 (or RFC 6749 §5.2) error code, or `undefined` when the request simply carried no credentials. */
  readonly error: OAuthErrorCode | undefined;
  /** Response headers to send with the status (`WWW-Authenticate`, `Retry-After`). */
  readonly headers: Record<string, string>;
  /**
   * The message was written for the client (it never repeats a cause's message),
   * so `http-errors`-style handlers may show it.
   */
  readonly expose = true;

  constructor(message: string, init: AuthHttpErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.statusCode = init.status;
    this.error = init.error;
    this.headers = init.headers;
  }
}

/**
 * The request carried no bearer credentials (no `Authorization` header, or another
 * scheme). RFC 6750 §3.1: the challenge then holds no error code, only the realm.
 * Status 401.
 */
export class UnauthorizedError extends AuthHttpError {
  constructor(message = 'authentication required', options: AuthHttpErrorOptions = {}) {
    super(message, {
      status: 401,
      headers: { 'WWW-Authenticate': challenge(options.realm) },
      cause: options.cause,
    });
  }
}

/**
 * The `Authorization: Bearer` header is malformed (no token, several tokens,
 * characters outside RFC 6750's `b64token`, absurdly long). Status 400.
 */
export class InvalidRequestError extends AuthHttpError {
  constructor(description = 'invalid request', options: AuthHttpErrorOptions = {}) {
    super(description, {
      status: 400,
      error: 'invalid_request',
      headers: { 'WWW-Authenticate': challenge(options.realm, 'invalid_request', description) },
      cause: options.cause,
    });
  }
}

/** The token is malformed, badly signed, expired, revoked or has wrong claims. Status 401. */
export class InvalidTokenError extends AuthHttpError {
  constructor(description = 'invalid token', options: AuthHttpErrorOptions = {}) {
    super(description, {
      status: 401,
      error: 'invalid_token',
      headers: { 'WWW-Authenticate': challenge(options.realm, 'invalid_token', description) },
      cause: options.cause,
    });
  }
}

/**
 * The token is valid but does not grant what the route needs (RFC 6750 §3.1: "the
 * request requires higher privileges than provided by the access token"). Status 403;
 * the challenge's `scope` attribute lists the scopes required, so a client knows what to
 * ask for. With no scopes (a failed claims check) the attribute is left out.
 */
export class InsufficientScopeError extends AuthHttpError {
  /** The scopes the route requires. */
  readonly scopes: readonly string[];

  constructor(
    scopes: readonly string[],
    description = 'insufficient scope',
    options: AuthHttpErrorOptions = {},
  ) {
    super(description, {
      status: 403,
      error: 'insufficient_scope',
      headers: {
        'WWW-Authenticate': challenge(options.realm, 'insufficient_scope', description, scopes.length === 0 ? undefined : scopes.join(' ')),
      },
      cause: options.cause,
    });
    this.scopes = [...scopes];
  }
}

/**
 * RFC 6749 §5.2 `invalid_client`: the caller of an endpoint authenticated as a client
 * with HTTP Basic (or tried to: any `Authorization: Basic …` header) and failed. Status
 * 401 with a challenge in the scheme the client used, `WWW-Authenticate: Basic
 * realm="…"`, as §5.2 requires; a Bearer challenge would tell a client with the wrong
 * secret to go and get a token instead.
 */
export class InvalidClientError extends AuthHttpError {
  constructor(description = 'client authentication failed', options: AuthHttpErrorOptions = {}) {
    super(description, {
      status: 401,
      error: 'invalid_client',
      headers: { 'WWW-Authenticate': `Basic realm=${quote(options.realm ?? 'api')}` },
      cause: options.cause,
    });
  }
}

/**
 * The token store could not answer (Redis down). Verification fails closed, so the
 * request is refused — with 503 rather than 401, because the client's token may be
 * perfectly good and retrying shortly is the right move.
 *
 * No `WWW-Authenticate`: the problem is not the client's credentials, and other
 * credentials would not help.
 */
export class ServiceUnavailableError extends AuthHttpError {
  constructor(message = 'token store unavailable', options: AuthHttpErrorOptions = {}) {
    super(message, {
      status: 503,
      headers: { 'Retry-After': '1' },
      cause: options.cause,
    });
  }
}

/**
 * The JSON body of an error answer of the OAuth endpoints (RFC 6749 §5.2, RFC 7009
 * §2.2.1, RFC 7662 §2.3): `error` and `error_description`.
 */
export function oauthErrorBody(err: AuthHttpError): { error: string; error_description: string } {
  return {
    error: err.error ?? (err instanceof ServiceUnavailableError ? 'service_unavailable' : 'unauthorized'),
    error_description: err.message,
  };
}

function challenge(realm = 'api', error?: BearerErrorCode, description?: string, scope?: string): string {
  let value = `Bearer realm=${quote(realm)}`;
  if (error !== undefined) value += `, error=${quote(error)}`;
  if (description !== undefined) value += `, error_description=${quote(description)}`;
  if (scope !== undefined) value += `, scope=${quote(scope)}`;
  return value;
}

/**
 * RFC 9110 quoted-string. Characters outside printable ASCII are replaced rather than
 * escaped: a CR/LF would make Node refuse the header and turn a 401 into a 500.
 */
function quote(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`;
}
