// The Redis key schema, in one place.
//
// Every key of a token lives in one bucket b = fnv1a(jti) mod B. The bucket is a
// Redis Cluster hash tag, so one Lua script can touch all keys of a bucket
// atomically while the buckets spread over the cluster's masters (see bucketTags):
//
//   <prefix>{<b>}:t:<jti>      string, PXAT deadline   the live token; existence is validity
//   <prefix>{<b>}:x:<second>   hash                    the records of tokens expiring in that second
//                                                      (jti -> compact text, see include/records.lua),
//                                                      and "=<sid>" of sessions whose deadline it is
//   <prefix>{<b>}:tpl          hash                    template id -> claims a store's tokens share
//   <prefix>{<b>}:due          sorted set              expiry seconds that have records, by deadline (ms)
//   <prefix>{<b>}:subs         hash                    sub -> its jtis run together, for subjects with
//                                                      at most two live tokens in the bucket; "*": …
//   <prefix>{<b>}:sub:<sub>    sorted set              … the subject's own index, jtis by deadline
//                                                      (see include/subjects.lua)
//   <prefix>{<b>}:s:<sid>      string                  a session (see include/sessions.lua), in its subject's bucket
//   <prefix>{<b>}:sess         hash                    sub -> the sids of its sessions
//   <prefix>{<b>}:log          stream, capped          the journal: one entry per lifecycle event
//   <prefix>{<b>}:dead:<group> stream, capped          events a consumer group gave up on
//   <prefix>{<b>}:epoch        string                  the revocation feed's flush detector
//   <prefix>{<b>}:probe        stream, then deleted    the notification probe where CONFIG is refused
//   <prefix>{<b>}:op:<call>    string, PX              a revoking call's answer, while its caller may get it
//
// A jti is its expiry second (the JWT's `exp`) in base 36, 7 characters, then 16
// random base64url characters (96 bits): a jti alone names the hash of its record,
// and tokens dying in the same second share one small hash instead of each costing
// an entry in a large sorted set and a large hash (see bench/memory-layouts.ts).
//
// The hash tag includes the prefix so that two stores with different prefixes do
// not pile their buckets onto the same slots.
import { randomFillSync } from 'node:crypto';

const SECOND_CHARS = 7;
const RANDOM_BYTES = 12;

// The random part comes from a pooled CSPRNG buffer: one randomFillSync per 256 tokens
// instead of one randomBytes call each (measured ~13% of issue's CPU). Every byte is used once.
let pool = Buffer.alloc(0);
let poolOffset = 0;

/** A new jti for a token whose `exp` is `second`. */
export function newJti(second: number): string {
  if (poolOffset + RANDOM_BYTES > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(RANDOM_BYTES * 256));
    poolOffset = 0;
  }
  const random = pool.toString('base64url', poolOffset, poolOffset + RANDOM_BYTES);
  poolOffset += RANDOM_BYTES;
  return second.toString(36).padStart(SECOND_CHARS, '0') + random;
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * `id` with its last character chosen so that it falls in `bucket` (a session's sid and
 * its tokens' jtis lie in its bucket, see include/sessions.lua), or undefined when no
 * character does (then draw another id). The other characters stay as drawn.
 */
export function inBucket(id: string, bucket: number, buckets: number): string | undefined {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length - 1; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  const start = id.charCodeAt(id.length - 1) % ID_CHARS.length;
  for (let n = 0; n < ID_CHARS.length; n++) {
    const c = ID_CHARS[(start + n) % ID_CHARS.length]!;
    if ((Math.imul(hash ^ c.charCodeAt(0), 0x01000193) >>> 0) % buckets === bucket) return id.slice(0, -1) + c;
  }
  return undefined;
}

/** A new session id (16 base64url characters, 90 random bits and more) in `bucket`. */
export function newSid(bucket: number, buckets: number): string {
  for (;;) {
    const sid = inBucket(randomFillSync(Buffer.allocUnsafe(12)).toString('base64url'), bucket, buckets);
    if (sid !== undefined) return sid;
  }
}

/** The expiry second a jti of this library starts with, or undefined for any other string. */
export function secondOf(jti: string): number | undefined {
  if (jti.length <= SECOND_CHARS) return undefined;
  // By character code, not a regular expression and parseInt: every event and revocation reads it.
  let second = 0;
  for (let i = 0; i < SECOND_CHARS; i++) {
    const c = jti.charCodeAt(i);
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1; // 0-9, a-z
    if (digit < 0) return undefined;
    second = second * 36 + digit;
  }
  return second;
}

/** FNV-1a, 32 bit, over UTF-16 code units: stable, fast, and good enough to spread random jtis. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** CRC16/XMODEM, the hash of Redis Cluster key slots. */
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

/** The Redis Cluster slot of a hash tag. */
export function slotOf(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag)) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % 16384;
}

/**
 * The hash tag of each bucket: `<prefix><b>`, or `<prefix><b>.<n>` with the first n
 * that puts bucket b in the b-th of B equal slot ranges. Masters own ranges of
 * slots, so the buckets spread over them evenly (plain consecutive tags do not:
 * 16 of them land 3/4/9 on three masters). A pure function of prefix and count,
 * so every process computes the same names.
 */
const tagCache = new Map<string, string[]>();
function bucketTags(prefix: string, buckets: number): string[] {
  const id = `${buckets} ${prefix}`;
  let tags = tagCache.get(id);
  if (!tags) tagCache.set(id, (tags = searchTags(prefix, buckets)));
  return tags;
}

function searchTags(prefix: string, buckets: number): string[] {
  return Array.from({ length: buckets }, (_, b) => {
    const low = Math.floor((b * 16384) / buckets);
    const high = Math.floor(((b + 1) * 16384) / buckets);
    for (let n = 0; ; n++) {
      const tag = n === 0 ? `${prefix}${b}` : `${prefix}${b}.${n}`;
      const slot = slotOf(tag);
      if (slot >= low && slot < high) return tag;
    }
  });
}

export class KeySchema {
  /** `<prefix>{<tag>}:` for every bucket, computed once. */
  readonly bases: readonly string[];
  private readonly tokenInfix = 't:';
  private readonly bucketOfTag: Map<string, number>;

  constructor(readonly prefix: string, readonly buckets: number) {
    const tags = bucketTags(prefix, buckets);
    this.bases = tags.map((tag) => `${prefix}{${tag}}:`);
    this.bucketOfTag = new Map(tags.map((tag, b) => [tag, b]));
  }

  bucketOf(jti: string): number {
    return fnv1a(jti) % this.buckets;
  }

  token(bucket: number, jti: string): string {
    return `${this.bases[bucket]}${this.tokenInfix}${jti}`;
  }

  /** Template id -> the claims (JSON members) the tokens of a template share. */
  templates(bucket: number): string {
    return `${this.bases[bucket]}tpl`;
  }

  /** The hash of the records of tokens of `bucket` that expire in `second`. */
  window(bucket: number, second: number): string {
    return `${this.bases[bucket]}x:${second}`;
  }

  due(bucket: number): string {
    return `${this.bases[bucket]}due`;
  }

  /** The subjects of a bucket with few tokens each (see include/subjects.lua). */
  subjects(bucket: number): string {
    return `${this.bases[bucket]}subs`;
  }

  /** A subject's own index, once it has more than two live tokens in the bucket. */
  subject(bucket: number, sub: string): string {
    return `${this.bases[bucket]}sub:${sub}`;
  }

  /** A session (see include/sessions.lua). */
  session(bucket: number, sid: string): string {
    return `${this.bases[bucket]}s:${sid}`;
  }

  /** The bucket's subjects -> their session ids. */
  sessions(bucket: number): string {
    return `${this.bases[bucket]}sess`;
  }

  log(bucket: number): string {
    return `${this.bases[bucket]}log`;
  }

  /** A revoking call's answer, kept while its caller may still get it (see include/lifecycle.lua). */
  answer(bucket: number, call: string): string {
    return `${this.bases[bucket]}op:${call}`;
  }

  /** The key the notification probe writes where CONFIG is refused (never a token key or a journal). */
  probe(bucket: number): string {
    return `${this.bases[bucket]}probe`;
  }

  /** A random value the revocation feed writes with SET NX: gone means the database was flushed (see revocation-feed.ts). */
  epoch(bucket: number): string {
    return `${this.bases[bucket]}epoch`;
  }

  /**
   * The channel every script that journals publishes on, once per run and journal, with
   * that journal's key (see include/journal.lua): lifecycles wake on it to read that bucket.
   * A channel, not a key.
   */
  wake(): string {
    return `${this.prefix}wake`;
  }

  /** Events a consumer group gave up on (see group-claim-2.lua). */
  deadLetters(bucket: number, group: string): string {
    return `${this.bases[bucket]}dead:${group}`;
  }

  /**
   * Reads a key name seen in a keyevent notification. Returns the bucket and,
   * for a token key, its jti; undefined for keys that are not ours.
   */
  parse(key: string): { bucket: number; kind: 'token'; jti: string } | { bucket: number; kind: 'log' } | undefined {
    const { prefix } = this;
    if (!key.startsWith(prefix) || key.charCodeAt(prefix.length) !== 0x7b /* { */) return undefined;
    const close = key.indexOf('}:', prefix.length + 1);
    if (close < 0) return undefined;
    const bucket = this.bucketOfTag.get(key.slice(prefix.length + 1, close));
    if (bucket === undefined) return undefined;
    const rest = key.slice(close + 2);
    if (rest.startsWith(this.tokenInfix)) return { bucket, kind: 'token', jti: rest.slice(this.tokenInfix.length) };
    if (rest === 'log') return { bucket, kind: 'log' };
    return undefined;
  }
}
