// The shapes every part of the library shares, each declared once. Types only: importing
// this module costs nothing at run time (the Express subpath uses it without the store).
import type { JWTPayload } from 'jose';

/** The JWT payload of an access token (RFC 9068). */
export interface TokenClaims extends JWTPayload {
  sub: string;
  jti: string;
  exp: number;
  iat: number;
  client_id?: string;
  scope?: string;
}

/**
 * A live token as `verify` and `list` return it, and as `bearerAuth` sets it on the
 * request (with the token string). Times are epoch milliseconds.
 */
export interface TokenInfo<Claims extends object = TokenClaims> {
  /** The token's unique id (`jti` claim). */
  jti: string;
  /** The subject (`sub` claim). */
  sub: string;
  /** `exp` in epoch milliseconds: the instant the token dies in Redis and in every verifier. */
  expiresAt: number;
  /** The whole JWT payload. */
  claims: Claims;
}

/** A freshly issued token. */
export interface IssuedToken<Claims extends object = TokenClaims> extends TokenInfo<Claims> {
  /** The compact JWT. It is not stored anywhere: hand it to the client. */
  token: string;
}

export type TokenEventType = 'issued' | 'expired' | 'revoked';

/**
 * Why a token was revoked: `revoke` / `revokeAll` by a store; `external` when its key
 * was deleted by another client; `evicted` when Redis evicted it under maxmemory.
 */
export type RevokeReason = 'revoke' | 'revokeAll' | 'external' | 'evicted';

/** One lifecycle event. */
export interface TokenEvent {
  /** `<bucket>:<stream id>`: unique per prefix, increasing within a bucket. (`keyevents` delivery: `ke:<ms>-<n>`.) */
  id: string;
  type: TokenEventType;
  jti: string;
  sub: string;
  /** The token's JWT payload (never the token itself). */
  claims: TokenClaims;
  /** When the event was journaled, epoch ms by Redis' clock. */
  at: number;
  /** Only on `revoked`. */
  reason?: RevokeReason;
}
