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
 * was deleted by another client; `evicted` when Redis evicted it under maxmemory;
 * `session` when its session ended (see {@link SessionEndReason}).
 */
export type RevokeReason = 'revoke' | 'revokeAll' | 'external' | 'evicted' | 'session';

/** Events of sessions (see docs/sessions.md). */
export type SessionEventType = 'session_started' | 'refreshed' | 'session_ended' | 'reuse_detected';

/**
 * Why a session ended: `idle` (no refresh within its idle timeout), `absolute` (its
 * lifetime is over), `revoked` (revokeSession, revokeAll, a revoked refresh token),
 * `reuse` (a used refresh token came back after the grace window: theft), `limit` (its
 * subject started one session too many), `logout`.
 */
export type SessionEndReason = 'idle' | 'absolute' | 'revoked' | 'reuse' | 'limit' | 'logout';

/** Where a session was started from, as the application gave it. */
export interface SessionDevice {
  userAgent?: string;
  ip?: string;
  /** A name for the device, e.g. "Alice's phone". */
  label?: string;
}

/** A live session (see `TokenStore.sessions`), or the session an event is about. */
export interface SessionInfo {
  sid: string;
  sub: string;
  device?: SessionDevice;
  /** Epoch ms (Redis' clock). */
  createdAt: number;
  /** The last start or refresh, epoch ms. */
  lastUsed: number;
  /** When it ends unless refreshed before: lastUsed + its idle timeout, capped at absoluteExpiresAt. */
  expiresAt: number;
  /** When it ends however it is used. */
  absoluteExpiresAt: number;
  /** How many times its refresh token rotated. */
  generation: number;
  clientId?: string;
  /** The scope it was granted (a refresh may narrow a token's scope, never this). */
  scope?: string;
  /** The further claims its access tokens carry. */
  claims?: Record<string, unknown>;
}

/** Sessions and refresh tokens (see docs/sessions.md). */
export interface SessionOptions {
  /** Seconds without a refresh after which a session ends (reason `idle`). @default 1209600 (14 days) */
  idleTimeout?: number;
  /** Seconds after its start at which a session ends however it is used (reason `absolute`). @default 2592000 (30 days) */
  lifetime?: number;
  /**
   * Milliseconds during which presenting the refresh token just used again (a client
   * retry, two tabs) returns the same new pair instead of ending the session. At most 10000. @default 2000
   */
  refreshGrace?: number;
  /** Live sessions per subject; starting one more ends the oldest (reason `limit`). @default 100 */
  maxSessions?: number;
  /**
   * Also slide the idle deadline when `verify` accepts one of the session's access tokens
   * (at most once per 1% of `idleTimeout`, and per second, per session and process; a write
   * Redis does after `verify` has answered). @default false
   */
  slideOnVerify?: boolean;
}

/** A session's tokens, from `startSession` or `refresh`. */
export interface SessionTokens<Claims extends object = TokenClaims> extends IssuedToken<Claims> {
  sid: string;
  /** Opaque, single use: hand it to the client. Only its hash is stored. */
  refreshToken: string;
}

/** One lifecycle event. */
export interface TokenEvent {
  /** `<bucket>:<stream id>`: unique per prefix, increasing within a bucket. (`keyevents` delivery: `ke:<ms>-<n>`.) */
  id: string;
  type: TokenEventType | SessionEventType;
  jti: string;
  sub: string;
  /** The token's JWT payload (never the token itself). */
  claims: TokenClaims;
  /** When the event was journaled, epoch ms by Redis' clock. */
  at: number;
  /** On `revoked` (a {@link RevokeReason}) and `session_ended` (a {@link SessionEndReason}). */
  reason?: RevokeReason | SessionEndReason;
  /** Session events: the session. (`jti` is then the access token a start or refresh issued, or ''.) */
  sid?: string;
  session?: SessionInfo;
}

/** A session event: `session_started`, `refreshed`, `session_ended` or `reuse_detected`. */
export interface SessionEvent extends TokenEvent {
  type: SessionEventType;
  sid: string;
  session: SessionInfo;
}
