// Verification outcomes for the cache specs.
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { StoreUnavailableError, TokenError, type TokenStore } from '../../lib/index.js';
import type { TokenCache } from '../../lib/tokens/cache.js';
import { waitFor } from './wait.js';

/** The store's verified-token cache. */
export const cacheOf = (store: TokenStore) => (store as unknown as { cache: TokenCache }).cache;

/** Verifies until the cache holds the token (its feed, or the lifecycle it shares, has proved itself fresh). */
export async function warm(store: TokenStore, token: string): Promise<void> {
  await waitFor('the cache to take the token', async () => { await store.verify(token); return cacheOf(store).size > 0; }, 5000, 5);
}

/** What a verification ends in: 'ok' or the error's code. */
export async function outcome(store: TokenStore, token: string): Promise<string> {
  try {
    await store.verify(token);
    return 'ok';
  } catch (err) {
    expect(err).to.satisfy((e: unknown) => e instanceof TokenError || e instanceof StoreUnavailableError);
    return (err as TokenError).code;
  }
}

/** Verifies `token` every 10 ms until it stops passing; resolves with the ms that took and the first refusal. */
export async function untilRefused(store: TokenStore, token: string, deadlineMs: number): Promise<{ ms: number; code: string }> {
  const start = performance.now();
  for (;;) {
    const code = await outcome(store, token);
    const ms = performance.now() - start;
    if (code !== 'ok') return { ms, code };
    if (ms > deadlineMs) throw new Error(`still passing after ${Math.round(ms)} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Warms the cache with a token, then runs FLUSHALL: how long the token kept passing, and its first refusal. */
export async function refusedAfterFlush(redis: Redis, store: TokenStore): Promise<{ ms: number; code: string }> {
  const { token } = await store.issue('alice');
  await warm(store, token);
  const refused = untilRefused(store, token, 1500);
  await redis.flushall();
  return refused;
}
