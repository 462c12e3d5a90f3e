// Verification outcomes for the cache specs.
import { expect } from 'chai';
import { StoreUnavailableError, TokenError, type TokenStore } from '../../lib/index.js';

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
