// `delivery: 'keyevents'`, the plain recipe of the original keyspace-notification
// pattern (a callback per notification, at most once), and the probe that checks the
// notification letters where CONFIG is refused (managed Redis).
import { ConfigError } from '../errors.js';
import { secondOf, type KeySchema } from '../redis/keys.js';
import { scripts, type RedisClient } from '../redis/script.js';
import type { TokenClaims, TokenEvent, TokenEventType } from '../types.js';
import { ensureFlags, masters, missingFlagsOn, type Keyevent } from './keyevents.js';

/** Letters of `delivery: 'keyevents'`: E keyevent channels, $ set, g del, x expired, e evicted. */
export const KEYEVENT_FLAGS = 'E$gxe';
/** The keyevents it subscribes to. */
export const KEYEVENT_EVENTS: readonly Keyevent[] = ['set', 'expired', 'del', 'evicted'];
/** How long the probe waits for its own notifications where CONFIG is refused. */
const PROBE_TIMEOUT = 2000;

/** Notifications as events, for keys `<prefix><id>` written by any client. */
export class PlainKeyevents {
  /** The events being handled: one at a time and in order, as in journal delivery. */
  delivering: Promise<void> = Promise.resolve();
  private seq = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeySchema,
    private readonly emit: (event: TokenEvent) => Promise<void> | undefined,
    private readonly report: (err: unknown) => void,
  ) {}

  /** Delivers the event a notification stands for, after the ones before it. */
  deliver(event: string, key: string): void {
    const next = this.event(event, key);
    if (next === undefined) return;
    this.delivering = this.delivering.then(async () => {
      try {
        await this.emit(await next);
      } catch (err) {
        this.report(err);
      }
    });
  }

  /**
   * The event a notification stands for (its value read on `set` only), or undefined
   * for a key that is not a token of this prefix.
   */
  event(event: string, key: string): Promise<TokenEvent> | undefined {
    if (!key.startsWith(this.keys.prefix)) return undefined;
    // A store's own keys (`<prefix>{…}`): only its token keys are tokens.
    const ours = key.startsWith('{', this.keys.prefix.length) ? this.keys.parse(key) : undefined;
    if (key.startsWith('{', this.keys.prefix.length) && ours?.kind !== 'token') return undefined;
    const jti = ours?.kind === 'token' ? ours.jti : key.slice(this.keys.prefix.length);
    const type: TokenEventType = event === 'set' ? 'issued' : event === 'expired' ? 'expired' : 'revoked';
    const id = `ke:${Date.now()}-${++this.seq}`;
    const second = ours ? secondOf(jti) : undefined;
    const value: Promise<string | null> = event !== 'set' ? Promise.resolve(null)
      : !ours ? this.redis.get(key)
      : second === undefined ? Promise.resolve(null)
      : scripts.readClaims.run(this.redis, [this.keys.window(ours.bucket, second)], [this.keys.bases[ours.bucket]!, jti]) as Promise<string | null>;
    return value.catch(() => null).then((text) => {
      let claims = {} as TokenClaims;
      try {
        const parsed: unknown = JSON.parse(text ?? '{}');
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) claims = parsed as TokenClaims;
      } catch {
        // Not JSON: a plain value says nothing about claims.
      }
      const e: TokenEvent = { id, type, jti, sub: typeof claims.sub === 'string' ? claims.sub : '', claims, at: Date.now() };
      if (type === 'revoked') e.reason = event === 'evicted' ? 'evicted' : 'external';
      return e;
    });
  }
}

/** The key the probe writes in bucket `b` (never a token key or a journal). */
export function probeKey(keys: KeySchema, b: number): string {
  return keys.probe(b);
}

/**
 * Where CONFIG is refused: writes probe keys under the prefix (one per bucket, so
 * every master that owns a bucket is covered) and waits for their notifications,
 * which the lifecycle's subscriber hands to `probes` ("<event> <key>" → callback).
 * @throws {ConfigError} naming the letters that did not arrive.
 */
export async function probeNotifications(redis: RedisClient, schema: KeySchema, letters: string, probes: Map<string, () => void>): Promise<void> {
  const wanted: [string, string][] = [];
  // Heard on the keyevent channels the lifecycle subscribes to.
  const keys = schema.bases.map((_, b) => probeKey(schema, b));
  for (const key of keys) {
    if (letters.includes('g')) wanted.push(['del', key]);
    if (letters.includes('x')) wanted.push(['expired', `${key}:x`]);
    if (letters.includes('$')) wanted.push(['set', `${key}:x`]);
  }
  // A lifecycle that does not sweep needs no letter (it wakes on the journal's channel).
  if (wanted.length === 0) return;
  const seen = new Set<string>();
  let missing = new Set<string>(wanted.map(([event]) => event));
  const all = new Promise<void>((resolve) => {
    for (const [event, key] of wanted) {
      probes.set(`${event} ${key}`, () => {
        seen.add(event);
        probes.delete(`${event} ${key}`);
        if (probes.size === 0) resolve();
      });
    }
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(keys.map(async (key) => {
      await redis.set(key, '1');
      await redis.del(key);
      await redis.set(`${key}:x`, '1', 'PX', 1);
      await new Promise((r) => setTimeout(r, 5));
      await redis.exists(`${key}:x`); // makes Redis expire it now
    }));
    await Promise.race([all, new Promise((resolve) => { timer = setTimeout(resolve, PROBE_TIMEOUT); })]);
    missing = new Set([...probes.keys()].map((k) => k.split(' ')[0]!));
  } finally {
    clearTimeout(timer);
    probes.clear();
  }
  if (missing.size > 0) {
    const letter: Record<string, string> = { del: 'g', expired: 'x', set: '$' };
    const lacking = seen.size === 0 ? letters : [...missing].map((e) => letter[e]).join('');
    throw new ConfigError('notify-keyspace-events',
      `the letters "${letters}" on every master (missing: "${lacking}"): CONFIG is refused here and the probe under "${schema.prefix}" did not receive those notifications. Set them in redis.conf or your provider's console, e.g. notify-keyspace-events ${letters}`);
  }
}

/** A warning when the eviction policy can drop indexes and the journal, or undefined. */
export async function evictionRisk(redis: RedisClient): Promise<string | undefined> {
  try {
    const [, policy] = (await masters(redis)[0]!.config('GET', 'maxmemory-policy')) as string[];
    if (policy?.startsWith('allkeys-')) {
      return `maxmemory-policy is ${policy}: Redis may evict token indexes and the journal, losing events. Use volatile-lru (or noeviction).`;
    }
  } catch {
    // CONFIG refused: the policy cannot be read; the README says which to choose.
  }
  return undefined;
}

/**
 * Before subscribing: merges `letters` into `notify-keyspace-events` (`configure`), or only
 * reads the setting and warns of what is missing (events then come with the poll), and
 * warns of a risky eviction policy. Resolves true where CONFIG is refused (managed Redis:
 * the probe must then tell whether the letters are preset).
 */
export async function prepareNotifications(redis: RedisClient, letters: string, configure: boolean, pollInterval: number, warn: (warning: string) => void): Promise<boolean> {
  let refused = false;
  if (configure) {
    try {
      await ensureFlags(redis, letters);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refused = true;
    }
  } else {
    const missing = await missingFlagsOn(redis, letters);
    if (missing === undefined || missing) {
      warn(`notify-keyspace-events ${missing === undefined ? 'cannot be read (CONFIG is refused)' : `lacks "${missing}"`} and configure is false: events come with the poll, every ${pollInterval} ms, rather than at once`);
    }
  }
  const risk = await evictionRisk(redis);
  if (risk !== undefined) warn(risk);
  return refused;
}
