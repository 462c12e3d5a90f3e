// Reading the journal: one capped stream per bucket. Two ways to read it:
// - broadcast: a cursor per bucket in this process; every listener reads everything;
// - group: a Redis consumer group per bucket; each entry goes to one member, is
//   acknowledged when handled, and is taken over from a member that stops answering.
// With a single node one command names every bucket's stream; on a Cluster a command
// cannot span slots, so each bucket is read on its own.
import type { Cluster, Redis } from 'ioredis';
import type { KeySchema } from '../redis/keys.js';
import { scripts, type RedisClient } from '../redis/script.js';
import { infoOf, streamInfo } from '../redis/streams.js';

export type StreamEntry = [id: string, fields: string[]];
type XReadReply = [key: string, entries: [string, string[] | null][]][] | null;

/** What a lifecycle needs from a way of reading the journal. */
export interface Feed {
  /** Sets the starting point (broadcast: the journal's end now; group: creates the groups). */
  init(): Promise<void>;
  /** Entries to deliver, at most `count` per bucket. */
  read(buckets: readonly number[], count: number): Promise<Map<number, StreamEntry[]>>;
  /** The entry's handlers resolved (a promise only when Redis is asked). */
  handled(bucket: number, id: string): Promise<void> | void;
  /** A handler threw: broadcast moves on; a group leaves the entry for redelivery. */
  failed(bucket: number, id: string): Promise<void> | void;
  /** Called while a handler runs long, so a group does not hand its entry to another member. */
  busy(bucket: number, id: string): Promise<void>;
  /**
   * Before handling an entry read at `readAt` (local ms, taken before the read was sent):
   * is it still this reader's? A group member's entry that waited long in its batch
   * (or across an outage) may have been taken over by another member meanwhile.
   */
  mine(bucket: number, id: string, readAt: number): Promise<boolean> | boolean;
  /** Redis was unreachable for a while: pending entries' idle times include the outage. */
  outage(): void;
  /**
   * Per bucket: the last entry id the reader moved past, and how many entries of
   * the stream it has moved past in all (undefined when unknown), for gap detection.
   */
  progress(): Promise<Progress[]>;
  /** A group's entries in its dead-letter streams, over every bucket (for the metrics); none without a group. */
  deadLetters?(): Promise<number>;
}

export interface Progress {
  position: string;
  read: number | undefined;
  /** A group's entries delivered and not yet acknowledged (XINFO GROUPS `pending`). */
  pending?: number;
}

function isCluster(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/** XREAD / XREADGROUP over several buckets: one command on a single node, one per bucket on a Cluster. */
async function readStreams(
  redis: RedisClient,
  keys: KeySchema,
  head: (string | number)[],
  buckets: readonly number[],
  idOf: (bucket: number) => string,
  command: 'xread' | 'xreadgroup',
): Promise<Map<number, [string, string[] | null][]>> {
  const out = new Map<number, [string, string[] | null][]>();
  const bucketOfKey = new Map(buckets.map((b) => [keys.log(b), b]));
  const collect = (reply: XReadReply) => {
    for (const [key, entries] of reply ?? []) out.set(bucketOfKey.get(key)!, entries);
  };
  const send = (client: RedisClient, bs: readonly number[]) =>
    (client as Redis).call(command.toUpperCase(), ...head, 'STREAMS', ...bs.map((b) => keys.log(b)), ...bs.map(idOf)) as Promise<XReadReply>;
  if (isCluster(redis)) (await Promise.all(buckets.map((b) => send(redis, [b])))).forEach(collect);
  else collect(await send(redis, buckets));
  return out;
}

/** Every running listener reads every entry, from where it started. */
export class BroadcastFeed implements Feed {
  private cursors: string[] = [];
  /** Entries of each stream moved past (counting from the stream's creation). */
  private counts: number[] = [];

  constructor(private readonly redis: RedisClient, private readonly keys: KeySchema) {}

  async init(): Promise<void> {
    // One reply gives both the end and the count so far: no entry falls between them.
    const infos = await Promise.all(Array.from({ length: this.keys.buckets }, (_, b) => streamInfo(this.redis, this.keys.log(b))));
    this.cursors = infos.map((info) => String(info?.['last-generated-id'] ?? '0-0'));
    this.counts = infos.map((info) => Number(info?.['entries-added'] ?? 0));
  }

  async read(buckets: readonly number[], count: number): Promise<Map<number, StreamEntry[]>> {
    const replies = await readStreams(this.redis, this.keys, ['COUNT', count], buckets, (b) => this.cursors[b]!, 'xread');
    return replies as Map<number, StreamEntry[]>;
  }

  handled(bucket: number, id: string): void {
    this.cursors[bucket] = id;
    this.counts[bucket]!++;
  }

  failed(bucket: number, id: string): void {
    this.handled(bucket, id);
  }

  async busy(): Promise<void> {}

  mine(): boolean {
    return true;
  }

  outage(): void {}

  async progress(): Promise<Progress[]> {
    return this.cursors.map((position, b) => ({ position, read: this.counts[b] }));
  }
}

export interface GroupOptions {
  group: string;
  consumer: string;
  /** Take over an entry nobody acknowledged for this long. */
  claimAfterMs: number;
  /** Dead-letter an entry after this many deliveries. */
  maxDeliveries: number;
  /** Called for each entry moved to the dead-letter stream. */
  onDeadLetter(bucket: number, id: string, deliveries: number, fields: string[]): void;
}

const DEAD_LETTER_LENGTH = 10_000;

/** Each entry goes to one member of a consumer group, acknowledged once handled. */
export class GroupFeed implements Feed {
  /** Per bucket: the last own pending entry re-read after a restart, or undefined once caught up. */
  private own: (string | undefined)[] = [];
  private lastClaim = 0;

  constructor(private readonly redis: RedisClient, private readonly keys: KeySchema, private readonly options: GroupOptions) {}

  async init(): Promise<void> {
    await Promise.all(Array.from({ length: this.keys.buckets }, (_, b) => this.createGroup(b, '$')));
    // Entries this consumer (same name) took before it stopped come first.
    this.own = Array.from({ length: this.keys.buckets }, () => '0');
    this.lastClaim = 0;
  }

  private async createGroup(bucket: number, from: string): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.log(bucket), this.options.group, from, 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  async read(buckets: readonly number[], count: number): Promise<Map<number, StreamEntry[]>> {
    const out = new Map<number, StreamEntry[]>();
    const { group, consumer } = this.options;
    let replies: Map<number, [string, string[] | null][]>;
    try {
      replies = await readStreams(this.redis, this.keys, ['GROUP', group, consumer, 'COUNT', count], buckets, (b) => this.own[b] ?? '>', 'xreadgroup');
    } catch (err) {
      // The stream or group is gone (a Redis restarted without persistence): what is
      // in the stream now is all there is, so the group starts from its beginning.
      if (err instanceof Error && err.message.startsWith('NOGROUP')) {
        await Promise.all(buckets.map((b) => this.createGroup(b, '0')));
      }
      throw err;
    }
    for (const b of buckets) {
      const entries = replies.get(b) ?? [];
      const live: StreamEntry[] = [];
      for (const [id, fields] of entries) {
        if (fields) live.push([id, fields]);
        else await this.redis.xack(this.keys.log(b), group, id); // trimmed while pending: nothing to deliver
      }
      if (this.own[b] !== undefined) {
        if (entries.length === 0) this.own[b] = undefined; // own backlog done: new entries from here
        else this.own[b] = entries.at(-1)![0];
      }
      if (live.length > 0) out.set(b, live);
    }
    if (Date.now() - this.lastClaim >= this.options.claimAfterMs / 2) {
      this.lastClaim = Date.now();
      for (const [b, entries] of await this.claim(this.allBuckets(), count)) {
        out.set(b, [...(out.get(b) ?? []), ...entries]);
      }
    }
    return out;
  }

  private allBuckets(): number[] {
    return Array.from({ length: this.keys.buckets }, (_, b) => b);
  }

  /** Takes over entries idle for claimAfterMs; dead-letters those delivered maxDeliveries times. */
  private async claim(buckets: readonly number[], count: number): Promise<Map<number, StreamEntry[]>> {
    const { group, consumer, claimAfterMs, maxDeliveries } = this.options;
    const out = new Map<number, StreamEntry[]>();
    await Promise.all(buckets.map(async (b) => {
      const [claimed, dead] = (await scripts.groupClaim.run(this.redis, [this.keys.log(b), this.keys.deadLetters(b, group)],
        [group, consumer, claimAfterMs, count, maxDeliveries, DEAD_LETTER_LENGTH])) as [StreamEntry[], [string, number, string[]][]];
      for (const [id, deliveries, fields] of dead) this.options.onDeadLetter(b, id, deliveries, fields);
      const live = claimed.filter(([, fields]) => fields);
      if (live.length > 0) out.set(b, live);
    }));
    return out;
  }

  async handled(bucket: number, id: string): Promise<void> {
    await this.redis.xack(this.keys.log(bucket), this.options.group, id);
  }

  failed(): void {
    // Left pending: claimed again after claimAfterMs, dead-lettered after maxDeliveries.
  }

  async busy(bucket: number, id: string): Promise<void> {
    // Resets the entry's idle time, so no other member takes it over meanwhile
    // (and never takes back one that another member already took over).
    await this.take(bucket, id);
  }

  mine(bucket: number, id: string, readAt: number): Promise<boolean> | boolean {
    // Fresh from the read: no other member can have taken it (it is idle for less than
    // claimAfterMs until the handler's first busy() call). Otherwise ask Redis.
    if (Date.now() - readAt < this.options.claimAfterMs / 3) return true;
    return this.take(bucket, id);
  }

  private async take(bucket: number, id: string): Promise<boolean> {
    return (await scripts.groupTake.run(this.redis, [this.keys.log(bucket)], [this.options.group, this.options.consumer, id])) === 1;
  }

  outage(): void {
    // Idle times counted on through the outage (Redis keeps delivery times, also across a
    // restart): give every member claimAfterMs to come back and acknowledge what it
    // handled before taking its entries over.
    this.lastClaim = Date.now() + this.options.claimAfterMs / 2;
  }

  async progress(): Promise<Progress[]> {
    return Promise.all(Array.from({ length: this.keys.buckets }, async (_, b) => {
      const groups = ((await this.redis.xinfo('GROUPS', this.keys.log(b))) as unknown[][]).map(infoOf);
      const mine = groups.find((g) => g.name === this.options.group);
      const position = String(mine?.['last-delivered-id'] ?? '0-0');
      const pending = Number(mine?.pending ?? 0);
      const read = mine?.['entries-read'];
      // Redis leaves entries-read unset for a group made on an empty stream: it has read nothing.
      if (read === null || read === undefined) return { position, read: position === '0-0' ? 0 : undefined, pending };
      return { position, read: Number(read), pending };
    }));
  }

  async deadLetters(): Promise<number> {
    const lengths = await Promise.all(this.allBuckets().map((b) => this.redis.xlen(this.keys.deadLetters(b, this.options.group))));
    return lengths.reduce((sum, n) => sum + n, 0);
  }
}

/** The feed a lifecycle reads with: broadcast without a group, the group's otherwise. */
export function feedFor(
  redis: RedisClient,
  keys: KeySchema,
  o: { group: string | undefined; consumer: string; claimAfterMs: number; maxDeliveries: number },
  onDeadLetter: GroupOptions['onDeadLetter'],
): Feed {
  if (o.group === undefined) return new BroadcastFeed(redis, keys);
  return new GroupFeed(redis, keys, { group: o.group, consumer: o.consumer, claimAfterMs: o.claimAfterMs, maxDeliveries: o.maxDeliveries, onDeadLetter });
}
