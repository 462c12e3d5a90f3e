// Every Redis round trip of a store is bounded in time, and any failure to get an
// answer (down, refused, too slow) is the one fail-closed error: StoreUnavailableError.
import { RedisTokenError, StoreUnavailableError } from '../errors.js';

/** Any failure to get an answer from Redis, as the fail-closed error. */
function unavailable(err: unknown): never {
  if (err instanceof RedisTokenError) throw err;
  throw new StoreUnavailableError(`Redis is unavailable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** `pending`, or `StoreUnavailableError` once `timeout` ms pass or Redis fails. */
export function failClosed<T>(pending: Promise<T>, timeout: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer within ${timeout} ms`)), timeout);
  });
  return Promise.race([pending, late]).catch(unavailable).finally(() => clearTimeout(timer));
}
