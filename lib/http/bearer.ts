/**
 * Bearer token extraction from an `Authorization` header (RFC 6750 §2.1), with no
 * framework in sight so that any HTTP server can use it.
 *
 * @module
 */

import { InvalidRequestError } from './errors.js';

/**
 * Longest `Authorization` value accepted, in characters (16 KiB). Our tokens are far
 * shorter; anything this long is abuse, refused before any parsing or crypto work.
 * (Node's own default `maxHeaderSize` is 16 KiB for all headers together, so behind a
 * default Node server such a request is already answered 431.)
 */
export const MAX_AUTHORIZATION_LENGTH = 16 * 1024;

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; b64token is RFC 7235's token68.
// The class and `=*` cannot overlap, so matching stays linear.
const BEARER_CREDENTIALS = /^ +([A-Za-z0-9\-._~+/]+=*)$/;
// The form nearly every client sends, in one pass; anything else takes the general path.
const COMMON_FORM = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/;

/**
 * Returns the bearer token of an `Authorization` header value.
 *
 * - `undefined` when the request carries no bearer credentials: no header, an empty
 *   one, or another scheme (`Basic …`) — RFC 6750 answers those with a bare challenge.
 * - the token when the header is `Bearer <token68>` (scheme case-insensitive).
 * - throws {@link InvalidRequestError} (400) when the scheme is Bearer but the rest is
 *   malformed (`Bearer`, `Bearer a b`, characters outside token68), or when the value
 *   is longer than {@link MAX_AUTHORIZATION_LENGTH}, whatever its scheme.
 *
 * Only the header form is supported: tokens in query strings or form bodies leak into
 * logs and caches, and RFC 9700 advises against them.
 *
 * @param authorizationHeader The raw header value, e.g. `req.headers.authorization`.
 * @param realm The realm named in the error's challenge.
 *
 * @example
 * ```ts
 * import { extractBearer, AuthHttpError } from 'redis-token-lifecycle/express';
 *
 * try {
 *   const token = extractBearer(request.headers.authorization);
 *   if (token === undefined) return reply401();
 *   const verified = await store.verify(token);
 * } catch (err) {
 *   if (err instanceof AuthHttpError) return reply(err.status, err.headers);
 *   throw err;
 * }
 * ```
 */
export function extractBearer(authorizationHeader: string | undefined, realm?: string): string | undefined {
  if (authorizationHeader === undefined) return undefined;
  // Untyped callers may hand over an array (a raw header list); it is not one credential.
  if (typeof authorizationHeader !== 'string') {
    throw new InvalidRequestError('authorization header must be a single value', { realm });
  }
  if (authorizationHeader.length > MAX_AUTHORIZATION_LENGTH) {
    throw new InvalidRequestError('authorization header too long', { realm });
  }
  const common = COMMON_FORM.exec(authorizationHeader);
  if (common !== null) return common[1];
  // Field values are defined with surrounding whitespace stripped (RFC 9110 §5.5);
  // Node already does that, callers parsing raw headers may not.
  const value = authorizationHeader.replace(/^[ \t]+|[ \t]+$/g, '');
  const scheme = /^[^ \t]*/.exec(value)![0];
  if (scheme.toLowerCase() !== 'bearer') return undefined;

  const rest = value.slice(scheme.length);
  if (rest === '') throw new InvalidRequestError('bearer token missing', { realm });
  const match = BEARER_CREDENTIALS.exec(rest);
  if (match === null) throw new InvalidRequestError('bearer token malformed', { realm });
  return match[1];
}
