// Keyevent subscriptions: one connection per master, made with `duplicate()`, so
// the user's connection never enters subscriber mode. Reports when notifications
// may have been missed (`lost`) and when they flow again (`resumed`), so the
// lifecycle can catch up from the journal.
//
// On a Cluster, keyevents are node-local (each master publishes only its own
// keys) and ioredis' `Cluster.subscribe` listens on one node, so we subscribe on
// every master ourselves and follow the topology: ioredis learns about a failover
// or a resharding only when a command hits MOVED, so we also refresh its slot map
// on a timer, and after every refresh subscribe on new masters (after merging our
// notify letters into theirs: a promoted replica starts without them) and drop
// nodes that are no longer masters. A change counts as `lost` … `resumed`: events
// of the new master's keys may have been published before we listened.
import type { Cluster, Redis } from 'ioredis';
import { applyFlags, eventOf, flagsFor, isKeyevent, masterNodes } from './keyevents.js';
import type { RedisClient } from '../redis/script.js';

export interface SubscriberHandlers {
  /** A keyevent: `event` is e.g. `expired`, `key` the key it names. */
  message(event: string, key: string): void;
  /** Notifications may be missed from now until `resumed`. */
  lost(): void;
  /**
   * Every master's subscription is in effect again after `lost` (or after a
   * topology change): catch up from the journal, re-apply flags, recheck.
   */
  resumed(): void;
}

export interface SubscriberOptions {
  /** Cluster only: how often to refresh the slot map to notice failovers and new masters, in ms. @default 1000 */
  topologyInterval?: number;
  /** Cluster only: merge the letters into a new master's `notify-keyspace-events` (false: never CONFIG SET). @default true */
  configure?: boolean;
}

/** @default 1000 */
const TOPOLOGY_INTERVAL = 1000;
/** Reconnect delays of a subscription to a cluster node (ioredis gives pool nodes none). */
const nodeRetry = (times: number) => Math.min(50 * times, 1000);

interface Subscription {
  key: string;
  /** The pool's connection to the node (for CONFIG); the subscription has its own. */
  node: Redis;
  sub: Redis;
  /** True while SUBSCRIBE is in effect on the server. */
  up: boolean;
}

function nodeKey(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

export class KeyeventSubscriber {
  private readonly subs = new Map<string, Subscription>();
  private readonly flags: string;
  private readonly topologyInterval: number;
  private readonly configure: boolean;
  /** `lost` was reported and `resumed` is still owed. */
  private missing = false;
  private stopped = false;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly onTopology = () => this.requestSync();

  constructor(
    private readonly redis: RedisClient,
    private readonly channels: readonly string[],
    private readonly handlers: SubscriberHandlers,
    options: SubscriberOptions = {},
  ) {
    this.flags = flagsFor(channels);
    this.topologyInterval = options.topologyInterval ?? TOPOLOGY_INTERVAL;
    this.configure = options.configure ?? true;
  }

  /** True while every master's subscription is in effect. */
  get connected(): boolean {
    if (this.missing || this.subs.size === 0) return false;
    for (const s of this.subs.values()) if (!s.up) return false;
    return true;
  }

  /** Subscribes on every master; resolves once every subscription is in effect. */
  async start(): Promise<void> {
    this.stopped = false;
    const nodes = await masterNodes(this.redis);
    await Promise.all(nodes.map((node) => this.add(node)));
    if (!this.redis.isCluster) return;
    const cluster = this.redis as Cluster;
    cluster.on('refresh', this.onTopology);
    cluster.on('+node', this.onTopology);
    cluster.on('-node', this.onTopology);
    this.timer = setInterval(() => this.refresh(), this.topologyInterval);
    this.timer.unref();
    // The slot map may have changed while we subscribed.
    this.requestSync();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.redis.isCluster) {
      const cluster = this.redis as Cluster;
      cluster.off('refresh', this.onTopology);
      cluster.off('+node', this.onTopology);
      cluster.off('-node', this.onTopology);
    }
    for (const s of this.subs.values()) s.sub.disconnect();
    this.subs.clear();
    this.missing = false;
  }

  /** Subscribes on one master; resolves once the subscription is in effect. */
  private async add(node: Redis): Promise<void> {
    const cluster = this.redis.isCluster;
    const sub = node.duplicate({
      lazyConnect: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      // A cluster node's own connection never reconnects (ioredis waits for MOVED
      // instead); ours must, until the topology says the node is no longer a master.
      ...(cluster ? { retryStrategy: nodeRetry, readOnly: false } : {}),
    });
    const s: Subscription = { key: nodeKey(node), node, sub, up: false };
    this.subs.set(s.key, s);
    let started = false;
    // A node that restarted or was just promoted has its own (empty) letters: merge
    // ours before listening. SUBSCRIBE is sent again on every reconnect rather than
    // left to ioredis' autoResubscribe, which skips it when the connection dropped
    // before it was ready; subscribing twice to a channel changes nothing.
    const subscribe = async () => {
      if (cluster && this.configure) await applyFlags(node, this.flags).catch(() => {});
      await sub.subscribe(...this.channels);
      this.markUp(s);
    };
    sub.on('close', () => {
      if (!s.up || this.subs.get(s.key) !== s) return;
      s.up = false;
      this.reportLost();
      if (cluster) this.refresh(); // a dead master: look for its successor now
    });
    sub.on('ready', () => {
      if (started) subscribe().catch(() => {}); // the first SUBSCRIBE below answers for itself
    });
    sub.on('error', () => {}); // reconnects are automatic; failures surface through reads
    // A keyevent channel names the event and the message the key. The other channel is the
    // journal's wake channel (KeySchema.wake): its message is a journal key, handed on as
    // that key's xadd.
    sub.on('message', (name: string, message: string) => {
      this.handlers.message(isKeyevent(name) ? eventOf(name) : 'xadd', message);
    });
    await subscribe();
    started = true;
  }

  private markUp(s: Subscription): void {
    if (this.stopped || this.subs.get(s.key) !== s || s.up) return;
    s.up = true;
    this.checkResumed();
  }

  private reportLost(): void {
    if (this.stopped) return;
    this.missing = true;
    this.handlers.lost();
  }

  private checkResumed(): void {
    if (this.stopped || !this.missing || this.syncing) return;
    for (const s of this.subs.values()) if (!s.up) return;
    if (this.subs.size === 0) return;
    this.missing = false;
    this.handlers.resumed();
  }

  // ---- cluster topology ------------------------------------------------------

  /** Asks ioredis to reload the slot map; it emits 'refresh' (and ±node) when done. */
  private refresh(): void {
    if (this.stopped) return;
    (this.redis as Cluster).refreshSlotsCache((err) => {
      if (!err) this.requestSync();
    });
  }

  private requestSync(): void {
    if (this.stopped) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        await new Promise((r) => setImmediate(r)); // let ioredis finish updating its pool
        await this.sync();
      } while (this.syncAgain && !this.stopped);
    })().catch(() => {}).finally(() => {
      this.syncing = undefined;
      this.checkResumed();
    });
  }

  /** Makes the subscriptions match the masters in ioredis' current slot map. */
  private async sync(): Promise<void> {
    if (this.stopped) return;
    const want = new Map((this.redis as Cluster).nodes('master').map((node) => [nodeKey(node), node]));
    if (want.size === 0) return; // between a failed refresh and the next: keep what we have
    const gone = [...this.subs.values()].filter((s) => !want.has(s.key));
    const added = [...want].filter(([key]) => !this.subs.has(key)).map(([, node]) => node);
    if (gone.length === 0 && added.length === 0) {
      for (const s of this.subs.values()) s.node = want.get(s.key)!;
      return;
    }
    // Keys moved (failover, resharding): their notifications may have gone unheard.
    this.reportLost();
    for (const s of gone) {
      this.subs.delete(s.key);
      s.sub.disconnect();
    }
    for (const s of this.subs.values()) s.node = want.get(s.key)!;
    // A master that cannot be reached yet keeps retrying on its own; don't hold up the rest.
    await Promise.all(added.map((node) => Promise.race([this.add(node), new Promise((r) => setTimeout(r, this.topologyInterval))])));
  }
}
