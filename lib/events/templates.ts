// The claims a store's tokens share (iss, aud, client_id) are kept once per bucket as a
// template (see lib/tokens/records.ts), and a journal entry carries the token's record,
// not its claims. A reader expands the record with the template, which it fetches the
// first time it sees its id and keeps: a template id is the hash of its claims, and
// issue-n.lua never lets an id hold other claims, so what an id names does not change.
import type { KeySchema } from '../redis/keys.js';
import type { RedisClient } from '../redis/script.js';
import { recordOf } from '../redis/streams.js';
import type { StreamEntry } from './journal.js';

/** Templates kept per reader: more ids than this (a store keeps at most 256 per bucket) start the map over. */
const MAX_KEPT = 4096;

export class Templates {
  private readonly known = new Map<string, string | null>();

  constructor(private readonly redis: RedisClient, private readonly keys: KeySchema) {}

  /** The claims (JSON members) of a template, if known. */
  get(bucket: number, id: string): string | undefined {
    return this.known.get(`${bucket} ${id}`) ?? undefined;
  }

  /** Fetches the templates of these entries not known yet: one HMGET per bucket, none in the common case. */
  async load(bucket: number, entries: StreamEntry[]): Promise<void> {
    let missing: Set<string> | undefined;
    for (const [, fields] of entries) {
      // The id alone (what precedes the first comma): claimsOf reads the rest, and refuses a malformed record.
      const record = recordOf(fields);
      const comma = record === undefined ? -1 : record.indexOf(',');
      if (comma <= 0) continue;
      const id = record!.slice(0, comma);
      if (!this.known.has(`${bucket} ${id}`)) (missing ??= new Set()).add(id);
    }
    if (!missing) return;
    const ids = [...missing];
    const found = await this.redis.hmget(this.keys.templates(bucket), ...ids);
    if (this.known.size + ids.length > MAX_KEPT) this.known.clear();
    // A template gone (a flushed database) stays unknown: the next entry asks again.
    ids.forEach((id, i) => { if (found[i] !== null) this.known.set(`${bucket} ${id}`, found[i]!); });
  }
}
