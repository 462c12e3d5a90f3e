/**
 * Every error this library throws is a {@link RedisTokenError} with a stable `code`.
 * Tell failures apart by `code` (or `instanceof`), never by message.
 */

/** Codes of {@link TokenError}: why a token was refused. */
export type TokenErrorCode =
  /** Not a compact JWS/JWT this library could have issued (bad shape, encoding, header, or too long). */
  | 'ERR_TOKEN_MALFORMED'
  /** Well formed, but the signature does not verify with any key the store accepts. */
  | 'ERR_TOKEN_SIGNATURE'
  /** Signature fine, `exp` has passed. */
  | 'ERR_TOKEN_EXPIRED'
  /** Signature fine and not expired, but no longer live in Redis (revoked or deleted). */
  | 'ERR_TOKEN_REVOKED'
  /** Signature fine, but a claim is missing or wrong (`iss`, `aud`, `typ`, `nbf`, `sub`, `jti`, …). */
  | 'ERR_TOKEN_CLAIMS';

/** Codes of {@link RefreshError}: why a refresh was refused. */
export type RefreshErrorCode =
  /** Not a refresh token of this store, used already, or its session has ended (OAuth: invalid_grant). */
  | 'ERR_REFRESH_INVALID'
  /** A refresh token used before came back after the grace window: its session has just been ended (OAuth: invalid_grant). */
  | 'ERR_REFRESH_REUSED'
  /** The scope asked for is not within the session's (OAuth: invalid_scope). */
  | 'ERR_REFRESH_SCOPE'
  /** The refresh token's session belongs to another client (OAuth: invalid_grant; revocation: invalid_request). */
  | 'ERR_REFRESH_CLIENT';

export type ErrorCode = TokenErrorCode | RefreshErrorCode | 'ERR_STORE_UNAVAILABLE' | 'ERR_CONFIG' | 'ERR_DEAD_LETTER';

/** Base class of every error thrown by this library. */
export class RedisTokenError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A token was refused. Always the client's fault: safe to answer with HTTP 401.
 * `cause` keeps the underlying `jose` error when there is one.
 */
export class TokenError extends RedisTokenError {
  declare readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * A refresh token was refused (`TokenStore.refresh`): always the client's fault. The token
 * endpoints answer HTTP 400 `invalid_grant` (`invalid_scope` for ERR_REFRESH_SCOPE).
 */
export class RefreshError extends RedisTokenError {
  declare readonly code: RefreshErrorCode;

  constructor(code: RefreshErrorCode, message: string) {
    super(code, message);
  }
}

/**
 * Redis could not answer in time (down, unreachable, loading, read-only, out of memory…).
 * Verification fails closed with this error; answer with HTTP 503.
 * `cause` keeps the ioredis error.
 */
export class StoreUnavailableError extends RedisTokenError {
  declare readonly code: 'ERR_STORE_UNAVAILABLE';

  constructor(message = 'Redis is unavailable', options?: { cause?: unknown }) {
    super('ERR_STORE_UNAVAILABLE', message, options);
  }
}

/**
 * An option or argument is invalid. The message names the option and what it expects.
 * Thrown at construction (options) or synchronously-rejected at the call (arguments).
 */
export class ConfigError extends RedisTokenError {
  declare readonly code: 'ERR_CONFIG';
  /** The option or argument at fault, for example `"ttl"` or `"key"`. */
  readonly option: string;

  constructor(option: string, expected: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', `Invalid option "${option}": expected ${expected}`, options);
    this.option = option;
  }
}

/**
 * A consumer group gave up on an event: its handlers failed `maxDeliveries` times.
 * The event was moved to the group's dead-letter stream (`<prefix>{…}:dead:<group>`)
 * and is reported on the lifecycle's `error` event with this error.
 */
export class DeadLetterError extends RedisTokenError {
  declare readonly code: 'ERR_DEAD_LETTER';
  /** The event, as it would have been delivered. */
  readonly event: unknown;
  /** How many times it was delivered. */
  readonly deliveries: number;

  constructor(event: { id: string; type: string }, deliveries: number) {
    super('ERR_DEAD_LETTER', `event ${event.id} (${event.type}) failed ${deliveries} times and was moved to the dead-letter stream`);
    this.event = event;
    this.deliveries = deliveries;
  }
}
