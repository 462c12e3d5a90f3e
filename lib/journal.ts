// Reading the journal: one capped stream per bucket. With a single node one XREAD
// names every bucket's stream; on a Cluster a command cannot span slots, so each
// bucket is read on its own.
import type { Cluster, Redis } from 'ioredis';
import type { KeySchema } from './keys.js';
import type { RedisClient } from './script.js';

export type StreamEntry = [id: string, fields: string[]];
type XReadReply = [key: string, entries: StreamEntry[]][] | null;

export class JournalReader {
  private readonly bucketOfLog = new Map<string, number>();

  constructor(private readonly redis: RedisClient, private readonly keys: KeySchema) {
    for (let b = 0; b < keys.buckets; b++) this.bucketOfLog.set(keys.log(b), b);
  }

  /** The id of the newest entry of each bucket ('0-0' for an empty journal). */
  async tails(): Promise<string[]> {
    const buckets = Array.from({ length: this.keys.buckets }, (_, b) => b);
    return Promise.all(buckets.map(async (b) => {
      const last = (await this.redis.xrevrange(this.keys.log(b), '+', '-', 'COUNT', 1)) as StreamEntry[];
      return last[0]?.[0] ?? '0-0';
    }));
  }

  /** Entries after each bucket's cursor, at most `count` per bucket. */
  async read(buckets: readonly number[], cursors: readonly string[], count: number): Promise<Map<number, StreamEntry[]>> {
    const out = new Map<number, StreamEntry[]>();
    const collect = (reply: XReadReply) => {
      for (const [key, entries] of reply ?? []) out.set(this.bucketOfLog.get(key)!, entries);
    };
    if (this.redis.isCluster) {
      const cluster = this.redis as Cluster;
      const replies = await Promise.all(buckets.map((b) =>
        cluster.xread('COUNT', count, 'STREAMS', this.keys.log(b), cursors[b]!) as Promise<XReadReply>));
      replies.forEach(collect);
    } else {
      const keys = buckets.map((b) => this.keys.log(b));
      const ids = buckets.map((b) => cursors[b]!);
      collect(await (this.redis as Redis).xread('COUNT', count, 'STREAMS', ...keys, ...ids) as XReadReply);
    }
    return out;
  }
}

/** A stream entry's flat field list as an object. */
export function fieldsOf(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}
