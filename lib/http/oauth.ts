// The OAuth parts of the standard endpoints that no framework shapes: who the caller
// is, how a refused one is answered (RFC 6749 §5.2), and what introspection discloses
// (RFC 7662 §2.2). The Express glue (and any other) builds on these.
import { InvalidClientError, UnauthorizedError, type AuthHttpError } from './errors.js';

/** The client an {@link AuthorizeCaller} authenticated. */
export interface AuthorizedClient {
  /** Its client id, compared with the `client_id` claim of the tokens it revokes. */
  clientId: string;
}

/** An RFC 7662 §2.2 introspection response. An inactive token gets `{ active: false }` and nothing else. */
export interface IntrospectionResponse {
  active: boolean;
  sub?: string;
  scope?: string;
  client_id?: string;
  /** Seconds since the epoch, as in the JWT. */
  exp?: number;
  /** Seconds since the epoch, as in the JWT. */
  iat?: number;
  nbf?: number;
  jti?: string;
  iss?: string;
  aud?: string | string[];
  token_type?: 'Bearer';
}

/** The RFC 7662 members of an active token's claims; custom claims are not disclosed. */
export function introspectionResponse(claims: Record<string, unknown>): IntrospectionResponse {
  const out: IntrospectionResponse = { active: true };
  const str = (name: 'sub' | 'scope' | 'client_id' | 'jti' | 'iss') => {
    if (typeof claims[name] === 'string') out[name] = claims[name] as string;
  };
  const num = (name: 'exp' | 'iat' | 'nbf') => {
    if (typeof claims[name] === 'number') out[name] = claims[name] as number;
  };
  str('sub');
  str('scope');
  num('exp');
  num('iat');
  num('nbf');
  str('client_id');
  str('jti');
  str('iss');
  const aud = claims.aud;
  if (typeof aud === 'string' || (Array.isArray(aud) && aud.every((a) => typeof a === 'string'))) out.aud = aud;
  out.token_type = 'Bearer';
  return out;
}

/** `{ clientId }` with a non-empty string, copied; anything else is no client. */
export function authorizedClient(value: unknown): AuthorizedClient | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { clientId } = value as Partial<AuthorizedClient>;
  return typeof clientId === 'string' && clientId !== '' ? { clientId } : undefined;
}

/**
 * The 401 for a caller `authorize` refused. RFC 6749 §5.2: a client that used the
 * `Authorization` header gets a challenge "matching the authentication scheme used by
 * the client", so Basic (even malformed) is answered `invalid_client` with a Basic one.
 */
export function clientRefused(authorization: string | undefined, realm: string): AuthHttpError {
  if (/^basic(?:\s|$)/i.test(authorization ?? '')) return new InvalidClientError(undefined, { realm });
  return new UnauthorizedError(undefined, { realm });
}
