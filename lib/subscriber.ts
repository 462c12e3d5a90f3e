// Keyevent subscriptions: one connection per master, made with `duplicate()`, so
// the user's connection never enters subscriber mode. Reports when notifications
// may have been missed (`lost`) and when they flow again (`resumed`), so the
// lifecycle can catch up from the journal.
import type { Redis } from 'ioredis';
import { eventOf, masters } from './keyevents.js';
import type { RedisClient } from './script.js';

export interface SubscriberHandlers {
  /** A keyevent: `event` is e.g. `expired`, `key` the key it names. */
  message(event: string, key: string): void;
  /** Notifications may be missed from now until `resumed`. */
  lost(): void;
  /** Subscribed again after `lost`: the subscription is in effect on the server. */
  resumed(): void;
}

export class KeyeventSubscriber {
  private connections: Redis[] = [];
  private readonly down = new Set<Redis>();

  constructor(private readonly redis: RedisClient, private readonly channels: readonly string[], private readonly handlers: SubscriberHandlers) {}

  /** True while every subscription is in effect. */
  get connected(): boolean {
    return this.connections.length > 0 && this.down.size === 0;
  }

  /** Subscribes on every master; resolves once every subscription is in effect. */
  async start(): Promise<void> {
    this.connections = masters(this.redis).map((node) => this.connect(node));
    await Promise.all(this.connections.map((sub) => sub.subscribe(...this.channels)));
  }

  stop(): void {
    for (const sub of this.connections) sub.disconnect();
    this.connections = [];
    this.down.clear();
  }

  private connect(node: Redis): Redis {
    const sub = node.duplicate({ lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: null });
    let first = true;
    sub.on('close', () => {
      if (first || this.down.has(sub) || !this.connections.includes(sub)) return;
      this.down.add(sub);
      this.handlers.lost();
    });
    sub.on('ready', () => {
      if (first) {
        first = false;
        return;
      }
      // ioredis resubscribes before 'ready'; the PING answers once that took effect,
      // so a catch-up that starts afterwards cannot miss a notification in between.
      const back = () => {
        if (!this.down.delete(sub)) return;
        this.handlers.resumed();
      };
      sub.ping().then(back, back);
    });
    sub.on('error', () => {}); // reconnects are automatic; failures surface through reads
    sub.on('message', (name: string, key: string) => this.handlers.message(eventOf(name), key));
    return sub;
  }
}
