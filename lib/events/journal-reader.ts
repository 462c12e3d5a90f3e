// Journal -> listeners: reads a feed (broadcast cursor or consumer group) and hands each
// entry to the listeners, one at a time and in order, acknowledging it once they are
// done. One pump at a time; a trigger while it runs (a message on the wake channel, the poll)
// asks for another round, so nothing is read twice and nothing waits for the poll.
import type { KeySchema } from '../redis/keys.js';
import type { RedisClient } from '../redis/script.js';
import { compareIds, endOf, streamInfo } from '../redis/streams.js';
import type { TokenEvent } from '../types.js';
import { journalEvent, type TemplateLookup } from './event.js';
import type { Feed, StreamEntry } from './journal.js';
import type { GapEvent } from './options.js';
import { Templates } from './templates.js';

/** Entries read per bucket per round trip. */
export const READ_COUNT = 500;

/**
 * Sees every read of a broadcast reader before any of its entries is delivered (a store's
 * cache sharing the lifecycle, see lib/tokens/shared-feed.ts). `complete`: the read covered
 * every bucket and none had more to read, so everything journaled before `readAt` (local
 * ms, taken before the read was sent) has been seen. `generation` changes when the
 * lifecycle starts again (entries may have been skipped meanwhile).
 */
export type ReadTap = (readAt: number, batches: ReadonlyMap<number, StreamEntry[]>, complete: boolean, generation: number) => void;

/**
 * The entries of one read in the order they were journaled: each bucket's in its own
 * order, and across buckets by their ids, which are Redis times (ms-seq; a tie of ms
 * between buckets goes by bucket).
 * One read often holds several buckets (a script's run journals in many), and events of
 * one process's successive calls then still come in the order it made them.
 */
function chronological(batches: ReadonlyMap<number, StreamEntry[]>): { buckets: number[]; entries: StreamEntry[] } {
  const buckets: number[] = [];
  const entries: StreamEntry[] = [];
  const lists = [...batches];
  const next = lists.map(() => 0);
  // The ms part of each list's next id ("ms-seq"): a merge of sorted lists, the earliest first.
  const head = lists.map(([, read]) => (read.length > 0 ? parseInt(read[0]![0], 10) : Infinity));
  for (;;) {
    let k = -1;
    let earliest = Infinity;
    for (let j = 0; j < lists.length; j++) {
      if (head[j]! < earliest) {
        earliest = head[j]!;
        k = j;
      }
    }
    if (k < 0) return { buckets, entries };
    const [bucket, read] = lists[k]!;
    const i = next[k]!++;
    buckets.push(bucket);
    entries.push(read[i]!);
    head[k] = i + 1 < read.length ? parseInt(read[i + 1]![0], 10) : Infinity;
  }
}

/** The reader of each journal lifecycle, for a store's cache that shares it. */
export const readers = new WeakMap<object, JournalReader>();
const RETRY_DELAY = 200;

/** What the reader needs of its lifecycle. */
export interface ReaderHost {
  /** The lifecycle's current run; a pump of an older run stops. */
  generation(): number;
  running(): boolean;
  /** Every master's subscription is in effect (nothing can be missed once caught up). */
  subscribed(): boolean;
  setSynced(value: boolean): void;
  /** Runs the listeners of an event; rejects when one of them threw (nothing returned: all ran, synchronously, and none threw). */
  emit(event: TokenEvent): Promise<void> | undefined;
  gap(event: GapEvent): void;
  report(err: unknown): void;
  /** Reports a Redis failure (once per outage). */
  reportRedis(err: unknown): void;
  /** Redis answered: true if it had failed before (the outage is over). */
  answered(): boolean;
  /** An issued token's deadline, for the sweeper. */
  expect(bucket: number, deadline: number): void;
  /** The journal holds this token's end: a keyevent-triggered reap of it can be skipped. */
  ended(jti: string): void;
  /** True when {@link stats} is wanted (a MeterProvider is registered): only then are dead letters counted. */
  measuring(): boolean;
  /** What the last gap check saw, for the metrics' gauges (pending and dead letters: groups only). */
  stats(length: number, pending: number | undefined, deadLetters: number | undefined): void;
}

export class JournalReader {
  /** The pump under way, if any. */
  pumping: Promise<void> | undefined;
  /** The entry being handled (stop() waits for it). */
  delivering: Promise<void> = Promise.resolve();
  private readAll = false;
  private readonly dirty = new Set<number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly gapsReported: string[] = [];
  private readonly allBuckets: number[];
  private readonly templates: Templates;
  /** See {@link ReadTap}; broadcast readers only. */
  readonly taps = new Set<ReadTap>();
  /** The templates' claims this reader knows (journal entries carry records, see templates.ts). */
  readonly lookup: TemplateLookup;
  /** Reads sent so far, and who waits for one sent after they asked (see {@link nextRead}). */
  private reads = 0;
  private readWaiters: { after: number; resolve: () => void }[] = [];

  /** @param claimAfterMs a group's: a long handler renews its entry every third of it; undefined without a group. */
  constructor(
    private readonly feed: Feed,
    private readonly redis: RedisClient,
    private readonly keys: KeySchema,
    private readonly host: ReaderHost,
    private readonly claimAfterMs: number | undefined,
  ) {
    this.allBuckets = Array.from({ length: keys.buckets }, (_, b) => b);
    this.templates = new Templates(redis, keys);
    this.lookup = (bucket, id) => this.templates.get(bucket, id);
  }

  /** Asks for a read of one bucket, or of all. */
  request(bucket?: number): void {
    if (bucket === undefined) this.readAll = true;
    else this.dirty.add(bucket);
    if (!this.pumping && this.host.running()) {
      this.pumping = this.pump(this.host.generation()).finally(() => {
        this.pumping = undefined;
        this.readDone(Infinity);
      });
    }
  }

  /**
   * Resolves once a read sent after this call has come back and its ends are noted (see
   * ReaderHost.ended), or at once when no read is under way or asked for. A read that
   * fails, or a pump that stops, resolves it too: the caller then simply does not know.
   */
  nextRead(): Promise<void> {
    if (!this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.readWaiters.push({ after: this.reads, resolve }));
  }

  private readDone(seq: number): void {
    if (this.readWaiters.length === 0) return;
    const waiting: typeof this.readWaiters = [];
    for (const w of this.readWaiters) (w.after < seq ? w.resolve() : waiting.push(w));
    this.readWaiters = waiting;
  }

  /** Stops retrying and renewing (stop()); a pump of the old run ends by itself. */
  pause(): void {
    clearTimeout(this.retryTimer);
    clearInterval(this.keepAlive);
  }

  /** Reads and delivers until no bucket has news. Never runs twice at once. */
  private async pump(generation: number): Promise<void> {
    const live = () => this.host.running() && generation === this.host.generation();
    const feed = this.feed;
    while (live() && (this.readAll || this.dirty.size > 0)) {
      const buckets = this.readAll ? this.allBuckets : [...this.dirty];
      this.readAll = false;
      this.dirty.clear();
      let batches: Map<number, StreamEntry[]>;
      const readAt = Date.now();
      const seq = ++this.reads;
      try {
        batches = await feed.read(buckets, READ_COUNT);
        for (const [bucket, entries] of batches) await this.templates.load(bucket, entries);
        if (this.host.answered()) feed.outage();
      } catch (err) {
        for (const b of buckets) this.dirty.add(b);
        this.readFailed(err);
        return;
      }
      if (this.taps.size > 0) {
        const complete = buckets.length === this.allBuckets.length && [...batches.values()].every((entries) => entries.length < READ_COUNT);
        for (const tap of this.taps) tap(readAt, batches, complete, generation);
      }
      // Before any handler runs: the ends read here need no reap (see Sweeper.reap).
      for (const entries of batches.values()) for (const [, fields] of entries) this.noteEnd(fields);
      this.readDone(seq);
      for (const [bucket, entries] of batches) if (entries.length >= READ_COUNT) this.dirty.add(bucket);
      const { buckets: bucketOf, entries } = chronological(batches);
      for (let i = 0; i < entries.length; i++) {
        if (!live()) return;
        const [id, fields] = entries[i]!;
        const done = this.deliver(bucketOf[i]!, id, fields, readAt);
        if (done === undefined) continue;
        this.delivering = done;
        await done;
      }
    }
    // Caught up, and notifications flowing: nothing can be missed from here on.
    if (live() && this.host.subscribed()) this.host.setSynced(true);
  }

  private noteEnd(fields: string[]): void {
    const end = endOf(fields);
    if (end !== undefined) this.host.ended(end[1]);
  }

  private readFailed(err: unknown): void {
    this.host.setSynced(false);
    this.host.reportRedis(err);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.request(), RETRY_DELAY);
  }

  /**
   * Hands one entry to the listeners and moves past it. Returns nothing when that all
   * happened at once (a broadcast reader, synchronous listeners): no promise per event.
   */
  private deliver(bucket: number, id: string, fields: string[], readAt: number): Promise<void> | undefined {
    // A group member's entry that waited in its batch may have been taken over meanwhile:
    // then the member that took it delivers it, not this one. (Unknown: left pending, redelivered.)
    const mine = this.feed.mine(bucket, id, readAt);
    if (mine === true) return this.handle(bucket, id, fields);
    if (mine === false) return undefined;
    return mine.then((yes) => (yes ? this.handle(bucket, id, fields) : undefined), (err) => { this.host.reportRedis(err); });
  }

  private handle(bucket: number, id: string, fields: string[]): Promise<void> | undefined {
    const event = journalEvent(bucket, id, fields, this.lookup);
    // The sweeper's next deadlines: the token's exp, a session's.
    if ((event.type === 'issued' || event.type === 'session_started' || event.type === 'refreshed') && typeof event.claims.exp === 'number') {
      this.host.expect(bucket, event.claims.exp * 1000);
    }
    if (event.session !== undefined && event.type !== 'session_ended') this.host.expect(bucket, event.session.expiresAt);
    // A long handler keeps its group entry: no other member takes it over meanwhile.
    // Cleared by stop() too, so a handler that never settles does not hold its entry
    // (or the process) forever.
    const feed = this.feed;
    const keepAlive = this.claimAfterMs === undefined ? undefined
      : setInterval(() => { feed.busy(bucket, id).catch(() => {}); }, Math.max(50, Math.floor(this.claimAfterMs / 3))).unref();
    this.keepAlive = keepAlive;
    let emitted: Promise<void> | undefined;
    try {
      emitted = this.host.emit(event);
    } catch (err) {
      emitted = Promise.reject(err);
    }
    if (emitted === undefined) {
      clearInterval(keepAlive);
      return this.moveOn(bucket, id, true);
    }
    return emitted.then(() => true, (err: unknown) => { this.host.report(err); return false; })
      .then((ok) => { clearInterval(keepAlive); return this.moveOn(bucket, id, ok); });
  }

  /** Acknowledges the entry (or, when a handler threw, leaves it as the feed does). */
  private moveOn(bucket: number, id: string, ok: boolean): Promise<void> | undefined {
    let done: Promise<void> | void;
    try {
      done = ok ? this.feed.handled(bucket, id) : this.feed.failed(bucket, id);
    } catch (err) {
      this.host.reportRedis(err);
      return undefined;
    }
    // An unacknowledged group entry is delivered again after claimAfterMs.
    return done === undefined ? undefined : done.catch((err: unknown) => { this.host.reportRedis(err); });
  }

  /**
   * Reports journal entries trimmed before this reader got to them, once per range:
   * when the oldest retained entry is past the reader's position and the stream has
   * had more entries after that position than it still holds.
   */
  async checkGaps(): Promise<void> {
    if (!this.host.running()) return;
    const [progress, infos, deadLetters] = await Promise.all([
      this.feed.progress(),
      Promise.all(this.allBuckets.map((b) => streamInfo(this.redis, this.keys.log(b)))),
      this.host.measuring() ? this.feed.deadLetters?.() : undefined,
    ]);
    // The metrics' gauges report these until the next check: never a Redis call of their own.
    const pending = progress.some((p) => p.pending !== undefined) ? progress.reduce((sum, p) => sum + (p.pending ?? 0), 0) : undefined;
    this.host.stats(infos.reduce((sum, info) => sum + Number(info?.length ?? 0), 0), pending, deadLetters);
    for (const b of this.allBuckets) {
      const info = infos[b];
      const { position, read } = progress[b]!;
      if (!info || read === undefined) continue;
      const first = String(info['recorded-first-entry-id'] ?? '0-0');
      const lost = Number(info['entries-added']) - read - Number(info.length);
      if (lost <= 0 || compareIds(first, position) <= 0 || this.gapsReported[b] === first) continue;
      this.gapsReported[b] = first;
      this.host.gap({ reason: 'trimmed', bucket: b, after: `${b}:${position}`, before: `${b}:${first}`, lost });
    }
  }
}
