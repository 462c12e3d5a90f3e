// Waiting with a deadline: a test either sees what it waits for in time or fails
// with a message saying what it was waiting for. Never a bare sleep.

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  timeoutMs = 5000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false && value !== null) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves with the first value an event emits that matches, or rejects at the deadline. */
export function nextEvent<T>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any typed emitter (ours, Node's)
  emitter: { on(name: any, fn: (value: any) => unknown): unknown; off(name: any, fn: (value: any) => unknown): unknown },
  name: string,
  match: (value: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${name}"`));
    }, timeoutMs);
    const listener = (value: T) => {
      if (!match(value)) return;
      clearTimeout(timer);
      emitter.off(name, listener);
      resolve(value);
    };
    emitter.on(name, listener);
  });
}

/**
 * Waits for the clock to reach `epochMs` (Date.now()), for a test that needs time to
 * pass (a deadline). A timer can fire a millisecond early: this checks the clock itself.
 */
export async function untilTime(epochMs: number): Promise<void> {
  while (Date.now() < epochMs) await new Promise((r) => setTimeout(r, Math.max(1, epochMs - Date.now())));
}

/** The `code` of the error a promise rejects with; throws if it resolves. */
export async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { code: string }).code;
  }
  throw new Error('expected a refusal');
}
