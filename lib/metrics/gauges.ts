// The observable gauges of lib/metrics/metrics.ts, observed from what the units last
// saw: never a Redis call inside the callback.
import type { Attributes, BatchObservableResult, ObservableGauge } from '@opentelemetry/api';

/** What the gauges read of a store's cache and feed. */
export interface CacheSource {
  readonly size: number;
  readonly bytes: number;
  /** Seconds since the feed last proved it is fresh; undefined when it never did (not started). */
  staleness(now: number): number | undefined;
}

/** What the gauges read of a running lifecycle (its LifecycleMetrics). */
export interface LifecycleSource {
  readonly prefix: string;
  readonly group: string | undefined;
  readonly attributes: Readonly<Attributes>;
  length: number | undefined;
  pending: number | undefined;
  deadLetters: number | undefined;
  synced: boolean;
}

const caches = new Set<WeakRef<CacheSource>>();
/** The running lifecycles. */
export const lifecycles = new Set<LifecycleSource>();

/** Reports a store's cache until the returned function is called (a store never closed is dropped when collected). */
export function watchCache(source: CacheSource): () => void {
  const ref = new WeakRef(source);
  caches.add(ref);
  return () => { caches.delete(ref); };
}

/** The batch callback of the gauges (in the order metrics.ts creates them). */
export function observe(result: BatchObservableResult, gauges: readonly ObservableGauge[]): void {
  const [journalLength, pending, deadLetters, cacheEntries, cacheMemory, staleness, synced] = gauges as [ObservableGauge, ObservableGauge, ObservableGauge, ObservableGauge, ObservableGauge, ObservableGauge, ObservableGauge];
  if (caches.size > 0) {
    const now = Date.now();
    let entries = 0;
    let bytes = 0;
    let oldest: number | undefined;
    for (const ref of caches) {
      const cache = ref.deref();
      if (cache === undefined) {
        caches.delete(ref);
        continue;
      }
      entries += cache.size;
      bytes += cache.bytes;
      const s = cache.staleness(now);
      if (s !== undefined) oldest = Math.max(oldest ?? 0, s);
    }
    result.observe(cacheEntries, entries);
    result.observe(cacheMemory, bytes);
    if (oldest !== undefined) result.observe(staleness, oldest);
  }
  if (lifecycles.size === 0) return;
  // Several lifecycles may read one journal: each prefix (and group) is counted once.
  const lengths = new Map<string, number>();
  const groups = new Map<string, { attributes: Readonly<Attributes>; pending: Map<string, number>; dead: Map<string, number> }>();
  const syncedBy = new Map<Readonly<Attributes>, number>();
  for (const l of lifecycles) {
    if (l.length !== undefined) lengths.set(l.prefix, Math.max(lengths.get(l.prefix) ?? 0, l.length));
    const a = l.attributes;
    syncedBy.set(a, Math.min(syncedBy.get(a) ?? 1, l.synced ? 1 : 0));
    if (l.group === undefined) continue;
    let g = groups.get(l.group);
    if (g === undefined) groups.set(l.group, g = { attributes: a, pending: new Map(), dead: new Map() });
    if (l.pending !== undefined) g.pending.set(l.prefix, l.pending);
    if (l.deadLetters !== undefined) g.dead.set(l.prefix, l.deadLetters);
  }
  if (lengths.size > 0) result.observe(journalLength, sum(lengths));
  for (const g of groups.values()) {
    if (g.pending.size > 0) result.observe(pending, sum(g.pending), g.attributes);
    if (g.dead.size > 0) result.observe(deadLetters, sum(g.dead), g.attributes);
  }
  for (const [a, value] of syncedBy) result.observe(synced, value, a);
}

function sum(values: Map<string, number>): number {
  let total = 0;
  for (const v of values.values()) total += v;
  return total;
}
