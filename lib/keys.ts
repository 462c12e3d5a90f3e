// The Redis key schema, in one place.
//
// Every key of a token lives in one bucket b = fnv1a(jti) mod B. The bucket is a
// Redis Cluster hash tag, so one Lua script can touch all keys of a bucket
// atomically while the buckets spread over the cluster's masters:
//
//   <prefix>{<b>}:t:<jti>      string, PXAT deadline   the live token; existence is validity
//   <prefix>{<b>}:claims       hash                    jti -> JWT payload (JSON)
//   <prefix>{<b>}:due          sorted set              jti scored by deadline (ms, Redis time)
//   <prefix>{<b>}:sub:<sub>    sorted set              a subject's jtis by deadline
//   <prefix>{<b>}:log          stream, capped          the journal: one entry per lifecycle event
//   <prefix>{<b>}:dead:<group> stream, capped          events a consumer group gave up on
//
// The hash tag includes the prefix so that two stores with different prefixes do
// not pile their buckets onto the same slots.

/** FNV-1a, 32 bit, over UTF-16 code units: stable, fast, and good enough to spread random jtis. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export class KeySchema {
  /** `<prefix>{<prefix><b>}:` for every bucket, computed once. */
  readonly bases: readonly string[];
  private readonly tokenInfix = 't:';

  constructor(readonly prefix: string, readonly buckets: number) {
    this.bases = Array.from({ length: buckets }, (_, b) => `${prefix}{${prefix}${b}}:`);
  }

  bucketOf(jti: string): number {
    return fnv1a(jti) % this.buckets;
  }

  token(bucket: number, jti: string): string {
    return `${this.bases[bucket]}${this.tokenInfix}${jti}`;
  }

  claims(bucket: number): string {
    return `${this.bases[bucket]}claims`;
  }

  due(bucket: number): string {
    return `${this.bases[bucket]}due`;
  }

  subject(bucket: number, sub: string): string {
    return `${this.bases[bucket]}sub:${sub}`;
  }

  log(bucket: number): string {
    return `${this.bases[bucket]}log`;
  }

  /** Events a consumer group gave up on (see claim-2.lua). */
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
    const tagStart = prefix.length + 1;
    const close = key.indexOf('}:', tagStart);
    if (close < 0 || !key.startsWith(prefix, tagStart)) return undefined;
    const digits = key.slice(tagStart + prefix.length, close);
    if (!/^\d+$/.test(digits)) return undefined;
    const bucket = Number(digits);
    if (bucket >= this.buckets) return undefined;
    const rest = key.slice(close + 2);
    if (rest.startsWith(this.tokenInfix)) return { bucket, kind: 'token', jti: rest.slice(this.tokenInfix.length) };
    if (rest === 'log') return { bucket, kind: 'log' };
    return undefined;
  }
}
