// The store's revocation feed: it follows the journal every store writes, so the
// verified-token cache hears of every revocation, of a flushed database and of a
// journal that is gone, and it proves how fresh that knowledge is.
//
// Freshness is proved, not assumed: `provenAt` is the local time at which a read was
// sent whose reply showed that nothing more was journaled up to then. The cache
// answers only while that proof is at most `maxStaleness` old, so a revocation is
// refused from the cache within `maxStaleness` of being journaled, whatever happens
// to the link: a link that stalls without closing simply stops renewing the proof.
//
// Single node: one connection of its own (`duplicate()`) runs, back to back,
//   MGET <epoch keys>   EXISTS <journals>   XREAD COUNT n [BLOCK b] STREAMS <journals> <cursors>
// The blocking read returns the moment a journal grows, so a revocation reaches the
// cache in about a millisecond; its server-side timeout `b` renews the proof while
// nothing happens. Cluster: the same commands per bucket (a command cannot span
// slots), without BLOCK, every `b` ms.
//
// An epoch key per bucket (`<base>epoch`, a random value written with SET NX) is the
// flush detector: FLUSHDB, FLUSHALL or a restart without persistence removes it.
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { KeySchema } from '../redis/keys.js';
import { endOf, streamInfo } from '../redis/streams.js';
import type { RedisClient } from '../redis/script.js';
import { recordFeedReconnect } from '../metrics/metrics.js';

/** What the feed tells the cache. */
export interface FeedTarget {
  /** A token was revoked: never answer it from memory again. */
  revoked(jti: string): void;
  /** A token expired: its entry can go. */
  expired(jti: string): void;
  /** Anything may have been missed: forget everything. */
  flush(): void;
}

export interface RevocationFeedOptions {
  /** How old the proof may be for a cached answer, ms. */
  maxStaleness: number;
  /** Entries the journal keeps per bucket (a read that returns this many may have missed trimmed ones). */
  keptPerBucket: number;
}

type XReadReply = [key: string, entries: [string, string[]][]][] | null;

/** Entries read per journal per round trip. */
const READ_COUNT = 500;
/** Pause after a failed read, ms. */
const RETRY_DELAY = 100;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export class RevocationFeed {
  /** Local ms: everything journaled before this instant has been read. */
  provenAt = -Infinity;
  readonly maxStaleness: number;
  /** Server-side timeout of the blocking read (single node) or the poll interval (Cluster), ms. */
  private readonly blockMs: number;
  /** A read that has not answered after this long means a stalled link, ms. */
  private readonly watchdogMs: number;
  private readonly readCount: number;
  private readonly logs: string[];
  private readonly epochKeys: string[];
  private cursors: string[] = [];
  private epochs: (string | null)[] = [];
  private journals = 0;
  private conn: Redis | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Proved fresh since it started: a later proof after a loss counts as a reconnect. */
  private proved = false;
  private readonly onParentEnd = () => { void this.stop(); };
  /** A Cluster is polled per bucket (a command cannot span slots); a single node blocks on all journals. */
  private readonly cluster: boolean;
  private lastRoundIdle = false;
  /** A read returned a full batch: entries may have been trimmed unread. Forget all once caught up. */
  private gapSuspected = false;

  constructor(private readonly redis: RedisClient, keys: KeySchema, private readonly target: FeedTarget, options: RevocationFeedOptions) {
    this.maxStaleness = options.maxStaleness;
    this.blockMs = Math.max(10, Math.floor(options.maxStaleness / 4));
    this.watchdogMs = this.blockMs + options.maxStaleness;
    this.readCount = Math.max(1, Math.min(READ_COUNT, options.keptPerBucket));
    this.logs = keys.bases.map((_, b) => keys.log(b));
    this.epochKeys = keys.bases.map((_, b) => keys.epoch(b));
    this.cluster = (redis as { isCluster?: boolean }).isCluster === true;
  }

  /** True when a cached answer may be given at local time `now`. */
  fresh(now: number): boolean {
    return now - this.provenAt <= this.maxStaleness;
  }

  /** Starts following the journal, unless it already does. Never rejects. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // The user's client ended (quit, disconnect, gave up reconnecting): so does the feed.
    // It starts again with the next verification that could use the cache.
    const parent = this.redis as Redis;
    parent.setMaxListeners(parent.getMaxListeners() + 1);
    parent.once('end', this.onParentEnd);
    this.running = this.run().catch(() => {}).finally(() => { this.running = undefined; });
  }

  /** Stops following the journal and closes the feed's connection; the cache is no longer fresh. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.provenAt = -Infinity;
    this.proved = false;
    const parent = this.redis as Redis;
    parent.off('end', this.onParentEnd);
    parent.setMaxListeners(Math.max(0, parent.getMaxListeners() - 1));
    this.conn?.disconnect();
    this.conn = undefined;
    await this.running;
  }

  private async run(): Promise<void> {
    let initialised = false;
    while (!this.stopped) {
      try {
        if (!initialised) {
          await this.watch(this.init());
          initialised = true;
        }
        const again = await this.watch(this.cluster ? this.roundPerBucket() : this.round());
        if (again === 'reset') {
          initialised = false;
          continue;
        }
        if (this.cluster && again === 'idle') await sleep(this.blockMs);
      } catch {
        // Unknown how much was missed: nothing cached may be trusted until a fresh start.
        this.lost();
        initialised = false;
        if (this.stopped) return;
        await sleep(RETRY_DELAY);
      }
    }
  }

  /** Something may have been missed: drop the cache and the proof. */
  private lost(): void {
    this.provenAt = -Infinity;
    this.target.flush();
  }

  /** A read that does not answer in time: the link stalled. Reconnect; the proof has lapsed already. */
  private async watch<T>(pending: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.conn?.disconnect(true);
        reject(new Error('the revocation feed stalled'));
      }, this.watchdogMs).unref();
    });
    try {
      return await Promise.race([pending, stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  private connection(): Redis {
    if (this.conn) return this.conn;
    // A connection of its own for the blocking read. A command whose reply is lost with
    // its connection is not sent again (the read is simply made anew), and the socket
    // does not keep the process alive: the feed is a background helper of the store.
    const conn = (this.redis as Redis).duplicate({ autoResendUnfulfilledCommands: false, lazyConnect: false, enableAutoPipelining: false, connectionName: 'rtl-revocation-feed' });
    conn.on('error', () => {}); // reported as unavailability by the store's own calls
    conn.on('connect', () => (conn as unknown as { stream?: { unref?(): void } }).stream?.unref?.());
    this.conn = conn;
    return conn;
  }

  /** Epoch keys and cursors, before anything is proved. */
  private async init(): Promise<void> {
    // Also on a restart after stop(): what was cached before may have been revoked meanwhile.
    this.lost();
    const client = this.cluster ? this.redis : this.connection();
    const mine = randomBytes(9).toString('base64url');
    await Promise.all(this.epochKeys.map((key) => client.set(key, mine, 'NX')));
    // Epochs first: a flush between the two reads is seen on the next round.
    this.epochs = await Promise.all(this.epochKeys.map((key) => client.get(key)));
    const infos = await Promise.all(this.logs.map((log) => streamInfo(client, log)));
    this.cursors = infos.map((info) => String(info?.['last-generated-id'] ?? '0-0'));
    this.journals = infos.filter(Boolean).length;
  }

  /** One round on a single node; 'reset' when the database was flushed or a journal is gone. */
  private async round(): Promise<'reset' | 'more' | 'idle'> {
    const conn = this.connection();
    const blocking = this.provenAt !== -Infinity && this.lastRoundIdle;
    const sentAt = Date.now();
    const read: (string | number)[] = ['COUNT', this.readCount];
    if (blocking) read.push('BLOCK', this.blockMs);
    const [epochs, journals, reply] = await Promise.all([
      conn.mget(...this.epochKeys),
      conn.exists(...this.logs),
      conn.call('XREAD', ...read, 'STREAMS', ...this.logs, ...this.cursors) as Promise<XReadReply>,
    ]);
    if (this.stopped) return 'idle';
    if (this.changed(epochs, journals)) return 'reset';
    const full = this.apply(reply);
    if (full) return this.behind();
    // A blocking read that returned entries returned one journal's news only: no proof.
    if (blocking && reply !== null) {
      this.lastRoundIdle = false;
      return 'more';
    }
    this.prove(sentAt);
    this.lastRoundIdle = reply === null;
    return this.lastRoundIdle ? 'idle' : 'more';
  }

  /** One round on a Cluster: each bucket's epoch, journal and news, without blocking. */
  private async roundPerBucket(): Promise<'reset' | 'more' | 'idle'> {
    const cluster = this.redis as Cluster;
    const sentAt = Date.now();
    const rounds = await Promise.all(this.logs.map((log, b) => Promise.all([
      cluster.get(this.epochKeys[b]!),
      cluster.exists(log),
      cluster.call('XREAD', 'COUNT', this.readCount, 'STREAMS', log, this.cursors[b]!) as Promise<XReadReply>,
    ])));
    if (this.stopped) return 'idle';
    if (this.changed(rounds.map(([epoch]) => epoch), rounds.reduce((n, [, exists]) => n + exists, 0))) return 'reset';
    let full = false;
    let any = false;
    for (const [, , reply] of rounds) {
      if (this.apply(reply)) full = true;
      if (reply !== null) any = true;
    }
    if (full) return this.behind();
    this.prove(sentAt);
    return any ? 'more' : 'idle';
  }

  private changed(epochs: (string | null)[], journals: number): boolean {
    const flushed = epochs.some((epoch, b) => epoch !== this.epochs[b]);
    const gone = journals < this.journals;
    this.journals = journals;
    if (!flushed && !gone) return false;
    this.lost();
    return true;
  }

  private behind(): 'more' {
    this.gapSuspected = true;
    this.lastRoundIdle = false;
    return 'more';
  }

  private prove(sentAt: number): void {
    if (this.gapSuspected) {
      this.gapSuspected = false;
      this.target.flush();
    }
    if (this.provenAt === -Infinity && this.proved) recordFeedReconnect();
    this.proved = true;
    this.provenAt = sentAt;
  }

  /** Hands the entries to the cache and moves the cursors. True when a journal returned a full batch. */
  private apply(reply: XReadReply): boolean {
    let full = false;
    for (const [log, entries] of reply ?? []) {
      const b = this.logs.indexOf(log);
      if (b < 0 || entries.length === 0) continue;
      for (const [, fields] of entries) this.entry(fields);
      this.cursors[b] = entries[entries.length - 1]![0];
      if (entries.length >= this.readCount) full = true;
    }
    return full;
  }

  private entry(fields: string[]): void {
    const end = endOf(fields);
    if (end === undefined) return;
    if (end[0] === 'revoked') this.target.revoked(end[1]);
    else this.target.expired(end[1]);
  }
}
