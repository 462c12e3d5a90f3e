// Group commit: requests made in the same tick (the requests of concurrent callers) go to
// Redis as one command per group instead of one each. Each command a client sends costs
// ioredis and Redis a fixed price (and each script call more), so under load this is where
// most of the time goes; a lone request still goes out at once, in the next tick.
//
// A group is what one command may cover: everything on a single Redis node, one hash slot
// (a bucket) on a Cluster.

interface Group<I, R> {
  items: I[];
  waiters: { resolve: (value: R) => void; reject: (err: unknown) => void }[];
}

export class Batcher<I, R> {
  private groups = new Map<number, Group<I, R>>();
  private scheduled = false;

  /**
   * @param send runs one command for a group's items and resolves with one result per item,
   *   in order. A rejection rejects every item of the group.
   * @param max most items per command (a long script holds Redis up for the others).
   */
  constructor(private readonly send: (group: number, items: I[]) => Promise<R[]>, private readonly max: number) {}

  add(group: number, item: I): Promise<R> {
    let pending = this.groups.get(group);
    if (!pending || pending.items.length >= this.max) {
      if (pending) this.flush(group, pending);
      this.groups.set(group, (pending = { items: [], waiters: [] }));
    }
    pending.items.push(item);
    const result = new Promise<R>((resolve, reject) => pending.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      // After the promise jobs of this tick: every caller resumed by the same reply gets in.
      process.nextTick(this.run);
    }
    return result;
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    for (const [group, pending] of groups) this.flush(group, pending);
  };

  private flush(group: number, { items, waiters }: Group<I, R>): void {
    let sent: Promise<R[]>;
    try {
      sent = this.send(group, items);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (results) => waiters.forEach((w, i) => w.resolve(results[i]!)),
      (err: unknown) => waiters.forEach((w) => w.reject(err)),
    );
  }
}
