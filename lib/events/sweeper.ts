// The sweeper: reaps tokens whose deadline has passed, by Redis server time, so
// `expired` is timely however many keys are resident and nothing depends on a
// notification arriving. It knows each bucket's next deadline (from the sweep
// script, and from `issued` events) and wakes up for it; a slow poll is the net.
import { secondOf, type KeySchema } from '../redis/keys.js';
import { scripts, type RedisClient } from '../redis/script.js';

/** Due entries reaped per bucket per script call (short scripts keep Redis responsive). */
const SWEEP_LIMIT = 500;
/** Closest two sweeps may follow each other, in ms. */
const SWEEP_SPACING = 20;
const RETRY_DELAY = 200;
/** Due entries looked at per script call when rechecking after a reconnect. */
const RECHECK_COUNT = 1000;
/**
 * How long a keyevent-triggered reap waits, ms, before it also waits for the lifecycle's
 * next journal read (at most REAP_WAIT in all): a store's own revoke deletes the key and
 * journals `revoked` in one script, whose `del` notification comes just before the
 * journal's, so that read shows the token's end journaled already, and no reap is sent
 * for it. Under load the read can be tens of ms behind; a reap sent meanwhile would find
 * nothing, at the cost of a script call per token. Past REAP_WAIT (a handler that runs
 * long holds the next read back) the reap is sent anyway: it is idempotent.
 */
const REAP_DELAY = 15;
const REAP_WAIT = 250;
/** A token this close to its deadline (ms) is reaped after REAP_DELAY, without waiting for the read. */
const REAP_MARGIN = 2000;
/** How long a token read as ended is remembered for that, ms (between this and twice as long). */
const ENDED_MEMORY = 5_000;

/** Keyevent-triggered reaps of one bucket and reason. */
interface ReapBatch { bucket: number; reason: string; seen: boolean; jtis: Set<string> }

export class Sweeper {
  private running = false;
  /** The next deadline of each bucket in local ms (Infinity: none known). */
  private nextDue: number[];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private sweeping: Promise<void> | undefined;
  private clockOffset = 0;
  private readonly all: number[];
  // Keyevent-triggered reaps, batched per bucket and reason until the next tick.
  private readonly reapQueue = new Map<number, ReapBatch>();
  private reapScheduled = false;
  /** jtis whose end the journal holds (read by the lifecycle): read since `endedSince`, and in the period before. */
  private ended = new Set<string>();
  private endedBefore = new Set<string>();
  private endedSince = Date.now();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeySchema,
    private readonly retention: string,
    private readonly report: (err: unknown) => void,
    /** Resolves after the lifecycle's next journal read (see JournalReader.nextRead). */
    private readonly journalRead: () => Promise<void> = () => Promise.resolve(),
  ) {
    this.all = Array.from({ length: keys.buckets }, (_, b) => b);
    this.nextDue = this.all.map(() => Infinity);
  }

  /** Reaps what is overdue now; resolves when done. */
  async start(): Promise<void> {
    this.running = true;
    this.nextDue = this.all.map(() => Infinity);
    await this.sweep(this.all);
    this.schedule();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timerAt = Infinity;
  }

  /** A token of `bucket` dies at `deadline` (epoch ms, Redis time). */
  expect(bucket: number, deadline: number): void {
    const local = deadline - this.clockOffset;
    if (local < this.nextDue[bucket]!) {
      this.nextDue[bucket] = local;
      this.schedule();
    }
  }

  /** Sweeps every bucket (the poll, and after a reconnect). */
  sweepAll(): void {
    this.request(this.all);
  }

  /**
   * A keyevent named a token key that is gone: reap it (batched per bucket). `seen`:
   * the key is known to be gone now (a `del` or `evicted` notification), so a reap that
   * runs late (queued across an outage, after the deadline) still says revoked.
   */
  reap(bucket: number, jti: string, reason: 'external' | 'evicted', seen = false): void {
    const id = bucket * 4 + (reason === 'evicted' ? 2 : 0) + (seen ? 1 : 0); // one batch per bucket, reason and seen
    let entry = this.reapQueue.get(id);
    if (!entry) this.reapQueue.set(id, (entry = { bucket, reason, seen, jtis: new Set() }));
    entry.jtis.add(jti);
    if (this.reapScheduled) return;
    this.reapScheduled = true;
    const seenAt = Math.floor(Date.now() + this.clockOffset);
    setTimeout(() => {
      this.reapScheduled = false;
      // Tokens near their deadline are reaped now: held up by a stall, a reap that comes
      // after the deadline's sweep would be too late to say `revoked` (the sweep sees only
      // a key that is gone, and says `expired`).
      const soon = Date.now() + this.clockOffset + REAP_MARGIN;
      const now: ReapBatch[] = [];
      const later: ReapBatch[] = [];
      for (const entry of this.reapQueue.values()) {
        const urgent = new Set<string>();
        for (const jti of entry.jtis) if ((secondOf(jti) ?? 0) * 1000 <= soon) urgent.add(jti);
        for (const jti of urgent) entry.jtis.delete(jti);
        if (urgent.size > 0) now.push({ ...entry, jtis: urgent });
        if (entry.jtis.size > 0) later.push(entry);
      }
      this.reapQueue.clear();
      this.sendReaps(now, seenAt);
      if (later.length === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, REAP_WAIT - REAP_DELAY); });
      void Promise.race([this.journalRead(), waited]).then(() => {
        clearTimeout(timer);
        this.sendReaps(later, seenAt);
      });
    }, REAP_DELAY);
  }

  private sendReaps(batch: ReapBatch[], seenAt: number): void {
    for (const { bucket: b, reason: r, seen, jtis } of batch) {
      for (const jti of jtis) if (this.ended.delete(jti) || this.endedBefore.delete(jti)) jtis.delete(jti);
      if (jtis.size === 0) continue;
      scripts.reap.run(this.redis, [this.keys.log(b)],
        [this.keys.bases[b]!, this.retention, r, seen ? seenAt : 0, ...jtis]).catch((err) => {
        // The sweep reaps these at their deadline anyway; only the reason may be lost.
        this.report(err);
      });
    }
  }

  /** The journal holds the end of `jti` (`revoked` or `expired`): a reap of it would find nothing. */
  journaled(jti: string): void {
    this.ended.add(jti);
    if (this.ended.size % 1024 === 0) this.forgetEnded();
  }

  /** Forgets the period before, once this one is ENDED_MEMORY old (checked as the set grows: no timer). */
  private forgetEnded(): void {
    if (Date.now() - this.endedSince < ENDED_MEMORY) return;
    this.endedBefore = this.ended;
    this.ended = new Set();
    this.endedSince = Date.now();
  }


  /** Finds tokens deleted while notifications were missed (see recheck-2.lua). */
  async recheck(): Promise<void> {
    await Promise.all(this.all.map(async (b) => {
      for (const second of await this.redis.zrange(this.keys.due(b), 0, -1)) {
        let cursor = '0';
        do {
          if (!this.running) return;
          [cursor] = (await scripts.recheck.run(this.redis, [this.keys.window(b, Number(second)), this.keys.log(b)],
            [this.keys.bases[b]!, this.retention, cursor, RECHECK_COUNT])) as [string, number];
        } while (cursor !== '0');
      }
    }));
  }

  private schedule(): void {
    if (!this.running) return;
    const at = Math.min(...this.nextDue);
    if (!Number.isFinite(at) || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timerAt = Infinity;
      const now = Date.now();
      const due = this.all.filter((b) => this.nextDue[b]! <= now + 1);
      if (due.length > 0) this.request(due);
      else this.schedule();
    }, Math.max(SWEEP_SPACING, at - Date.now()));
  }

  private request(buckets: number[]): void {
    if (!this.running || buckets.length === 0) return;
    if (this.sweeping) {
      for (const b of buckets) this.nextDue[b] = Math.min(this.nextDue[b]!, Date.now());
      return;
    }
    this.sweeping = this.sweep(buckets).finally(() => {
      this.sweeping = undefined;
      this.schedule();
    });
  }

  private async sweep(buckets: number[]): Promise<void> {
    await Promise.all(buckets.map(async (b) => {
      const expected = this.nextDue[b];
      try {
        const before = Date.now();
        const [, nextIn, more, now] = (await scripts.sweep.run(this.redis,
          [this.keys.due(b), this.keys.log(b)],
          [this.keys.bases[b]!, this.retention, SWEEP_LIMIT])) as number[];
        const after = Date.now();
        this.clockOffset = now! - (before + after) / 2;
        const next = more ? after : nextIn! < 0 ? Infinity : after + nextIn!;
        // A deadline learned while this sweep ran (an `issued` event) must survive it.
        this.nextDue[b] = this.nextDue[b] === expected ? next : Math.min(this.nextDue[b]!, next);
      } catch (err) {
        this.nextDue[b] = Date.now() + RETRY_DELAY;
        this.report(err);
      }
    }));
  }
}
