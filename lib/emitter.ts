// A small typed event emitter whose `emit` awaits async listeners, one after the
// other: an event counts as handled when every listener's promise has resolved.

type Listener<T> = (value: T) => unknown;

export class AsyncEmitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Listener<never>[]>();

  /** Adds a listener. Async listeners are awaited before the next event is delivered. */
  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => unknown): this {
    const list = this.listeners.get(name) ?? [];
    this.listeners.set(name, [...list, listener as Listener<never>]);
    return this;
  }

  /** Adds a listener removed after its first call. */
  once<K extends keyof Events>(name: K, listener: (value: Events[K]) => unknown): this {
    const wrapper = (value: Events[K]) => {
      this.off(name, wrapper);
      return listener(value);
    };
    (wrapper as { listener?: unknown }).listener = listener;
    return this.on(name, wrapper);
  }

  /** Removes a listener added with `on` or `once`. */
  off<K extends keyof Events>(name: K, listener: (value: Events[K]) => unknown): this {
    const list = this.listeners.get(name);
    if (!list) return this;
    const index = list.findIndex((l) => l === listener || (l as { listener?: unknown }).listener === listener);
    if (index >= 0) this.listeners.set(name, [...list.slice(0, index), ...list.slice(index + 1)]);
    return this;
  }

  listenerCount(name: keyof Events): number {
    return this.listeners.get(name)?.length ?? 0;
  }

  /** Calls every listener in turn, awaiting each; rejects with the first failure after all ran. */
  protected async emitAsync<K extends keyof Events>(name: K, value: Events[K]): Promise<void> {
    const list = this.listeners.get(name);
    if (!list) return;
    let failure: { error: unknown } | undefined;
    for (const listener of list) {
      try {
        await (listener as Listener<Events[K]>)(value);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  /** Calls listeners without waiting (for `error` and `warning`); a throwing listener cannot break the caller. */
  protected emitSync<K extends keyof Events>(name: K, value: Events[K]): boolean {
    const list = this.listeners.get(name);
    if (!list?.length) return false;
    for (const listener of list) {
      try {
        const result = (listener as Listener<Events[K]>)(value);
        if (result instanceof Promise) result.catch(() => {});
      } catch {
        // A failing error listener has nowhere left to report to.
      }
    }
    return true;
  }
}
