// Keyevent notifications: the letters this library needs, merged into whatever
// `notify-keyspace-events` already holds (never removing another user's letters),
// and one subscriber connection per master.
import type { Cluster, Redis } from 'ioredis';
import { ConfigError } from './errors.js';
import type { RedisClient } from './script.js';

/** E: keyevent channels; g: del; x: expired; e: evicted; t: stream commands (xadd). */
export const NEEDED_FLAGS = 'Egxet';
/** The keyevents the journal-backed lifecycle subscribes to. */
export const EVENTS = ['expired', 'del', 'evicted', 'xadd'] as const;
export type Keyevent = (typeof EVENTS)[number];

/** Letters that `A` stands for (Redis 7): every class but key-miss (m) and new-key (n). */
const ALL = 'g$lshzxetd';

/** The letters of `needed` that `current` does not already enable. */
export function missingFlags(current: string, needed: string): string {
  const has = (letter: string) => current.includes(letter) || (current.includes('A') && ALL.includes(letter));
  return [...needed].filter((letter) => !has(letter)).join('');
}

export function masters(redis: RedisClient): Redis[] {
  return redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
}

/**
 * Makes sure every master publishes the keyevents we need. `CONFIG SET` is neither
 * persisted nor replicated, so this runs at start and again after every reconnect.
 */
export async function ensureFlags(redis: RedisClient, needed = NEEDED_FLAGS): Promise<void> {
  await Promise.all(masters(redis).map(async (node) => {
    let current: string;
    try {
      const reply = (await node.config('GET', 'notify-keyspace-events')) as string[];
      current = reply[1] ?? '';
      const missing = missingFlags(current, needed);
      if (missing) await node.config('SET', 'notify-keyspace-events', current + missing);
    } catch (cause) {
      if (cause instanceof Error && /unknown command|NOPERM|no permissions/i.test(cause.message)) {
        throw new ConfigError('notify-keyspace-events',
          `the letters "${needed}" set on the server (CONFIG is refused here: set them in redis.conf or your provider's console)`, { cause });
      }
      throw cause;
    }
  }));
}

export function channel(db: number, event: Keyevent): string {
  return `__keyevent@${db}__:${event}`;
}

/** The keyevent name of a channel such as `__keyevent@0__:expired`. */
export function eventOf(channelName: string): string {
  return channelName.slice(channelName.indexOf(':') + 1);
}
