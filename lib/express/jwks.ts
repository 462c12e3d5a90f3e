// `GET /.well-known/jwks.json` for a `TokenStore`, as an Express handler.
import type { RequestHandler } from 'express';
import { ConfigError } from '../errors.js';
import { checkStore, jwksMaxAge, type JwksSource } from '../http/endpoints.js';

export type { JwksSource } from '../http/endpoints.js';

/** Options of {@link jwks}. */
export interface JwksOptions {
  /**
   * `max-age` of `Cache-Control: public, max-age=…`, in seconds. Keep it shorter than the
   * time between publishing a new key (in `verifyKeys`) and signing with it.
   * @default 300
   */
  maxAge?: number;
}

/**
 * `GET /.well-known/jwks.json`: the JWK Set of the store's public keys (the current
 * signing key and the rotated ones still in `verifyKeys`, asymmetric only, never a
 * private part), with `Cache-Control: public, max-age=300`. A store signing with an
 * HMAC secret answers `{ keys: [] }`. Redis is not involved. Methods other than
 * `GET`/`HEAD` → 405 with `Allow: GET, HEAD` (mount with `app.all`).
 *
 * @param store Usually the `TokenStore` (its `publicJwks()`).
 * @throws {ConfigError} `store` has no `publicJwks`, or `maxAge` is not a whole number >= 0.
 *
 * @example
 * ```ts
 * app.all('/.well-known/jwks.json', jwks(store));
 * // elsewhere: jwtVerify(token, createRemoteJWKSet(new URL('https://api.example/.well-known/jwks.json')))
 * ```
 */
export function jwks(store: JwksSource, options: JwksOptions = {}): RequestHandler {
  checkStore(store, ['publicJwks'], 'an object with a publicJwks() method');
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
  const maxAge = jwksMaxAge(options.maxAge);
  return (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(405).set('Allow', 'GET, HEAD').json({ error: 'method_not_allowed' });
      return;
    }
    store.publicJwks().then((set) => {
      res.status(200).set('Cache-Control', `public, max-age=${maxAge}`).json({ keys: set.keys });
    }, next);
  };
}
