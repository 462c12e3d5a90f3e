// The synchronous half of `TokenStore.verify`: an answer from the verified-token cache,
// for `bearerAuth` to let a request through without a promise in between. Keyed by a
// module-private symbol so it is not public API; a verifier without it (or another copy
// of this package) simply goes through `verify`.

import type { CachedToken } from './cache.js';

/** A verifier's cached answer for `token`, or undefined when only `verify` can tell. */
export const fromCache: unique symbol = Symbol('redis-token-lifecycle: verify from cache');

export interface SyncVerifier {
  [fromCache](token: string): CachedToken | undefined;
}
