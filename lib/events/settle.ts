// Settling a start within a deadline: a timeout, an AbortSignal, or being abandoned
// (stop() during start()) each end the wait at once, whatever Redis is doing.

/** `start()` was overtaken by `stop()` (or by a newer start after it). */
export class StartAborted extends Error {
  override name = 'AbortError';
}

export interface SettleOptions {
  timeout: number;
  signal: AbortSignal | undefined;
  /** The error for a timeout. */
  onTimeout(): Error;
  /** Receives the function that abandons the wait (it rejects with the error given). */
  abandon(reject: (err: unknown) => void): void;
}

/**
 * `task`'s result, unless the time runs out (rejects with `onTimeout()`), the signal
 * aborts (rejects with `signal.reason`) or the wait is abandoned first. A task left
 * behind settles when it may; its rejection is not reported as unhandled.
 */
export async function settle<T>(task: Promise<T>, options: SettleOptions): Promise<T> {
  const { timeout, signal } = options;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(options.onTimeout()), timeout);
    if (signal) {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    options.abandon(reject);
  });
  try {
    return await Promise.race([task, interrupted]);
  } catch (err) {
    task.catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal!.removeEventListener('abort', onAbort);
  }
}

/** Resolves once `done()` holds, looking every 10 ms; `check` throws to give up (a stop). */
export async function until(done: () => boolean, check: () => void): Promise<void> {
  while (!done()) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    check();
  }
}
