// Keyevent notifications: the letters this library needs, merged into whatever
// `notify-keyspace-events` already holds (never removing another user's letters),
// and one subscriber connection per master.
import type { Cluster, Redis } from 'ioredis';
import { ConfigError } from '../errors.js';
import type { RedisClient } from '../redis/script.js';

/**
 * The keyevents a lifecycle subscribes to: `set` only for `delivery: 'keyevents'`. News of
 * the journal needs none: the scripts that write it publish on the prefix's wake channel
 * (KeySchema.wake), once per run and journal.
 */
export type Keyevent = 'set' | 'expired' | 'del' | 'evicted';

/** Letters of journal delivery, for the sweeper's triggers. E: keyevent channels; g: del; x: expired; e: evicted. */
export const JOURNAL_FLAGS = 'Egxe';
/** A journal lifecycle that does not sweep needs no letter: it wakes on the journal's own channel. */
export const READER_FLAGS = '';
/** Keyevents on token keys that journal delivery takes as triggers (to reap at once). */
export const JOURNAL_EVENTS: readonly Keyevent[] = ['expired', 'del', 'evicted'];

/** Letters that `A` stands for (Redis 7): every class but key-miss (m) and new-key (n). */
const ALL = 'g$lshzxetd';

/** The letters of `needed` that `current` does not already enable. */
export function missingFlags(current: string, needed: string): string {
  const has = (letter: string) => current.includes(letter) || (current.includes('A') && ALL.includes(letter));
  return [...needed].filter((letter) => !has(letter)).join('');
}

/**
 * The masters a client writes to: the `Redis` itself, or the masters in a
 * `Cluster`'s current slot map (empty until the cluster is connected; see {@link masterNodes}).
 */
export function masters(redis: RedisClient): Redis[] {
  return redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
}

/** Like {@link masters}, but waits until a `Cluster` knows its slot map. */
export async function masterNodes(redis: RedisClient): Promise<Redis[]> {
  if (!redis.isCluster) return [redis as Redis];
  const cluster = redis as Cluster;
  // A keyless command waits for the slot map (or fails as any command would); after it
  // the pool is filled. (Not a CLUSTER command: ioredis sends those before it is ready.)
  if (cluster.status !== 'ready' || cluster.nodes('master').length === 0) await cluster.ping();
  return cluster.nodes('master');
}

/**
 * Makes sure every master publishes the keyevents we need. `CONFIG SET` is neither
 * persisted nor replicated, so this runs at start and again after every reconnect
 * and topology change (a promoted replica starts without the letters).
 */
export async function ensureFlags(redis: RedisClient, needed: string): Promise<void> {
  await Promise.all((await masterNodes(redis)).map((node) => applyFlags(node, needed)));
}

/** Merges `needed` into one node's `notify-keyspace-events`. */
export async function applyFlags(node: Redis, needed: string): Promise<void> {
  try {
    const reply = (await node.config('GET', 'notify-keyspace-events')) as string[];
    const current = reply[1] ?? '';
    const missing = missingFlags(current, needed);
    if (missing) await node.config('SET', 'notify-keyspace-events', current + missing);
  } catch (cause) {
    if (cause instanceof Error && /unknown command|NOPERM|no permissions/i.test(cause.message)) {
      throw new ConfigError('notify-keyspace-events',
        `the letters "${needed}" set on the server (CONFIG is refused here: set them in redis.conf or your provider's console)`, { cause });
    }
    throw cause;
  }
}

/**
 * The letters of `needed` that some master does not publish, read with `CONFIG GET` only
 * (for a lifecycle that must not write settings); `undefined` where CONFIG is refused.
 */
export async function missingFlagsOn(redis: RedisClient, needed: string): Promise<string | undefined> {
  const missing = new Set<string>();
  for (const node of await masterNodes(redis)) {
    try {
      const reply = (await node.config('GET', 'notify-keyspace-events')) as string[];
      for (const letter of missingFlags(reply[1] ?? '', needed)) missing.add(letter);
    } catch (cause) {
      if (cause instanceof Error && /unknown command|NOPERM|no permissions/i.test(cause.message)) return undefined;
      throw cause;
    }
  }
  return [...needed].filter((letter) => missing.has(letter)).join('');
}

/** The letter that makes Redis publish each keyevent (`E` for keyevent channels comes first). */
const LETTER: Record<string, string> = { del: 'g', expire: 'g', rename_from: 'g', rename_to: 'g', expired: 'x', evicted: 'e', set: '$' };

/**
 * The `notify-keyspace-events` letters that `channels` need, e.g. `Egxe` ('' for none):
 * keyevent channels name their event; other channels (the journal's wake channel) need none.
 */
export function flagsFor(channels: readonly string[]): string {
  const letters = new Set<string>();
  for (const name of channels) {
    if (isKeyevent(name) && LETTER[eventOf(name)]) letters.add(LETTER[eventOf(name)]!);
  }
  return letters.size === 0 ? '' : `E${[...letters].join('')}`;
}

export function isKeyevent(channelName: string): boolean {
  return channelName.startsWith('__keyevent@');
}

export function channel(db: number, event: Keyevent): string {
  return `__keyevent@${db}__:${event}`;
}

/** The keyevent name of a channel such as `__keyevent@0__:expired`. */
export function eventOf(channelName: string): string {
  return channelName.slice(channelName.indexOf(':') + 1);
}
