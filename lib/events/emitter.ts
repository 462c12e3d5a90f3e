// A typed EventEmitter whose own events are delivered by `emitAsync`, which awaits
// async listeners one after the other (sync ones cost no promise): an event counts as
// handled when every listener's promise has resolved.
//
// It extends Node's EventEmitter (as bullmq's QueueEvents does) so that the usual
// idioms work: `off` / `removeListener`, `prependListener`, `listeners()`, and
// `events.on(emitter, name)` / `events.once(emitter, name)` from `node:events`, which
// add their listeners with `on` / `once` and remove them with `removeListener`.
// The methods below only narrow the types to the event map: a misspelt event name or
// a listener of the wrong type does not compile.
import { EventEmitter } from 'node:events';

/** A listener of one event: it gets the event's value; a returned promise is awaited. */
export type EventListener<T> = (value: T) => unknown;

/** The event names of a map (string keys only: the map is typed, never open-ended). */
export type EventName<Events> = keyof Events & string;

// Node's EventEmitter methods take `(...args: any[]) => void`; ours are narrower.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the cast into Node's signature
type NodeListener = (...args: any[]) => void;

export class AsyncEmitter<Events extends object> extends EventEmitter {
  /** Adds a listener. Async listeners are awaited before the next event is delivered. */
  override on<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.on(name, listener as NodeListener);
  }

  /** Same as {@link on}. */
  override addListener<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.addListener(name, listener as NodeListener);
  }

  /** Adds a listener called before the others. */
  override prependListener<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.prependListener(name, listener as NodeListener);
  }

  /** Adds a listener removed before its first call (its promise is still awaited). */
  override once<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.once(name, listener as NodeListener);
  }

  /** {@link once}, called before the others. */
  override prependOnceListener<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.prependOnceListener(name, listener as NodeListener);
  }

  /** Removes a listener added with `on` or `once`. */
  override off<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.off(name, listener as NodeListener);
  }

  /** Same as {@link off}. */
  override removeListener<K extends EventName<Events>>(name: K, listener: EventListener<Events[K]>): this {
    return super.removeListener(name, listener as NodeListener);
  }

  /**
   * Calls the listeners synchronously, as Node's `emit` does: async ones are not
   * awaited, and `error` with no listener throws. The emitter's own events do not go
   * through here.
   */
  override emit<K extends EventName<Events>>(name: K, value: Events[K]): boolean;
  // Node itself emits `newListener` / `removeListener` with two arguments: pass them all on.
  override emit(name: string | symbol, ...args: unknown[]): boolean {
    return super.emit(name, ...args);
  }

  override listenerCount<K extends EventName<Events>>(name: K, listener?: EventListener<Events[K]>): number {
    return super.listenerCount(name, listener as NodeListener | undefined);
  }

  /**
   * Calls every listener in turn, awaiting each one that returns a promise; rejects with
   * the first failure after all ran. Like `emit`, it calls the listeners registered when
   * it starts (`once` ones are removed then). Returns nothing when every listener returned
   * without a promise and none threw: most listeners are synchronous, and an event then
   * costs no promise and no turn of the microtask queue.
   */
  protected emitAsync<K extends EventName<Events>>(name: K, value: Events[K]): Promise<void> | undefined {
    // rawListeners: `once` wrappers, which remove themselves and return the listener's result.
    const list = this.rawListeners(name) as EventListener<Events[K]>[];
    let failure: { error: unknown } | undefined;
    for (let i = 0; i < list.length; i++) {
      let result: unknown;
      try {
        result = list[i]!.call(this, value);
      } catch (error) {
        failure ??= { error };
        continue;
      }
      if (isThenable(result)) return this.emitRest(list, i, result, value, failure);
    }
    return failure ? Promise.reject(failure.error) : undefined;
  }

  /** {@link emitAsync} from the listener at `at`, whose promise is `pending`, on. */
  private async emitRest<T>(list: EventListener<T>[], at: number, pending: PromiseLike<unknown>, value: T, failed: { error: unknown } | undefined): Promise<void> {
    let failure = failed;
    for (let i = at; i < list.length; i++) {
      try {
        await (i === at ? pending : list[i]!.call(this, value));
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  /** Calls listeners without waiting (for `error` and `warning`); a throwing listener cannot break the caller. */
  protected emitSync<K extends EventName<Events>>(name: K, value: Events[K]): boolean {
    const list = this.rawListeners(name) as EventListener<Events[K]>[];
    if (list.length === 0) return false;
    for (const listener of list) {
      try {
        const result = listener.call(this, value);
        if (result instanceof Promise) result.catch(() => {});
      } catch {
        // A failing error listener has nowhere left to report to.
      }
    }
    return true;
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
