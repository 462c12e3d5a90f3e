// The journal feeds (lib/events/journal.ts) on their own, against a real redis-server:
// BroadcastFeed (a cursor per bucket in this process) and GroupFeed (a Redis consumer
// group per bucket). Entries are written the way the library writes them, by a
// TokenStore's scripts; the feeds are read directly, without a TokenLifecycle.
import { expect } from 'chai';
import { BroadcastFeed, GroupFeed, type Feed, type GroupOptions, type StreamEntry } from '../lib/events/journal.js';
import { KeySchema } from '../lib/redis/keys.js';
import { journalEvent } from '../lib/events/event.js';
import type { TokenEvent } from '../lib/types.js';
import type { TokenStore } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { testPrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

const BUCKETS = 4;

interface Read {
  bucket: number;
  id: string;
  type: string;
  jti: string;
}

describe('journal feeds (lib/events/journal.ts)', () => {
  const fx = useRedis();
  let keys: KeySchema;
  let store: TokenStore;
  const all = Array.from({ length: BUCKETS }, (_, b) => b);

  beforeEach(() => {
    const prefix = testPrefix();
    keys = new KeySchema(prefix, BUCKETS);
    store = fx.store({ prefix, buckets: BUCKETS, cache: false });
  });

  /** One read of every bucket, flattened (bucket order, then stream order). */
  async function read(feed: BroadcastFeed | GroupFeed, count = 100): Promise<Read[]> {
    const out: Read[] = [];
    for (const [bucket, entries] of await feed.read(all, count)) {
      for (const [id, fields] of entries as StreamEntry[]) {
        const e = journalEvent(bucket, id, fields);
        out.push({ bucket, id, type: e.type, jti: e.jti });
      }
    }
    return out;
  }

  /** XPENDING detail of one entry: [consumer, deliveries], or undefined when not pending. */
  async function pendingOf(bucket: number, group: string, id: string): Promise<[string, number] | undefined> {
    const rows = (await fx.redis.xpending(keys.log(bucket), group, id, id, 1)) as [string, string, number, number][];
    return rows[0] ? [rows[0][1], Number(rows[0][3])] : undefined;
  }

  /**
   * init(), then the first read: a group member's first read after init() is its own
   * backlog (entries it read and never acknowledged before), here empty.
   */
  async function started(feed: GroupFeed): Promise<GroupFeed> {
    await feed.init();
    expect(await read(feed), 'no backlog of its own').to.deep.equal([]);
    return feed;
  }

  async function pendingCount(group: string): Promise<number> {
    let n = 0;
    for (const b of all) n += Number(((await fx.redis.xpending(keys.log(b), group)) as [number])[0]);
    return n;
  }

  describe('BroadcastFeed', () => {
    it('reads from where init() put it, not before, and keeps an entry until it is handled or failed', async () => {
      const before = await store.issue('alice');
      const feed = new BroadcastFeed(fx.redis, keys);
      await feed.init();
      expect(await read(feed), 'nothing written since init').to.deep.equal([]);

      const t = await store.issue('bob');
      const first = await read(feed);
      expect(first.map((e) => [e.type, e.jti])).to.deep.equal([['issued', t.jti]]);
      expect(first[0]!.bucket).to.equal(keys.bucketOf(t.jti));
      expect(first.some((e) => e.jti === before.jti), 'an entry from before init').to.equal(false);
      // Not handled yet: read again, it is there again.
      expect(await read(feed)).to.deep.equal(first);

      await feed.handled(first[0]!.bucket, first[0]!.id);
      expect(await read(feed), 'after handled()').to.deep.equal([]);

      await store.revoke(t.jti);
      const revoked = await read(feed);
      expect(revoked.map((e) => [e.type, e.jti])).to.deep.equal([['revoked', t.jti]]);
      await feed.failed(revoked[0]!.bucket, revoked[0]!.id); // a broadcast listener moves on
      expect(await read(feed), 'after failed()').to.deep.equal([]);
      expect(await feed.mine(), 'every entry is a broadcast reader\'s').to.equal(true);
    });

    it('reads at most `count` entries per bucket, in stream order', async () => {
      const feed = new BroadcastFeed(fx.redis, keys);
      await feed.init();
      const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => store.issue(`u${i}`)));
      const seen: Read[] = [];
      for (let round = 0; round < 40; round++) {
        const batch = await read(feed, 3);
        if (batch.length === 0) break;
        for (const b of all) expect(batch.filter((e) => e.bucket === b).length, `bucket ${b}`).to.be.at.most(3);
        for (const e of batch) await feed.handled(e.bucket, e.id);
        seen.push(...batch);
      }
      expect(seen.map((e) => e.jti)).to.have.members(tokens.map((t) => t.jti));
      for (const b of all) {
        const ids = seen.filter((e) => e.bucket === b).map((e) => e.id);
        const journal = (await fx.redis.xrange(keys.log(b), '-', '+')).map(([id]) => id);
        expect(ids, `bucket ${b} in stream order`).to.deep.equal(journal);
      }
    });

    it('progress() gives each bucket\'s position and how many entries it has moved past', async () => {
      await Promise.all(Array.from({ length: 12 }, (_, i) => store.issue(`u${i}`)));
      const lengths = await Promise.all(all.map((b) => fx.redis.xlen(keys.log(b))));
      const feed = new BroadcastFeed(fx.redis, keys);
      await feed.init();
      const start = await feed.progress();
      for (const b of all) {
        const last = (await fx.redis.xrevrange(keys.log(b), '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
        expect(start[b], `bucket ${b} at init`).to.deep.include({ position: last, read: lengths[b] });
      }
      const t = await store.issue('new');
      const [e] = await read(feed);
      await feed.handled(e!.bucket, e!.id);
      const after = await feed.progress();
      expect(after[keys.bucketOf(t.jti)]).to.deep.include({ position: e!.id, read: lengths[e!.bucket]! + 1 });
      for (const b of all.filter((b) => b !== e!.bucket)) expect(after[b]).to.deep.equal(start[b]);
    });
  });

  describe('GroupFeed', () => {
    const deadLetters: [number, string, number, TokenEvent][] = [];
    const options = (consumer: string, extra: Partial<GroupOptions> = {}): GroupOptions => ({
      group: 'g',
      consumer,
      claimAfterMs: 60_000,
      maxDeliveries: 5,
      onDeadLetter: (bucket, id, deliveries, fields) => { deadLetters.push([bucket, id, deliveries, journalEvent(bucket, id, fields)]); },
      ...extra,
    });
    beforeEach(() => { deadLetters.length = 0; });

    it('init() creates the group at the journal\'s end (in every bucket, even before the first entry)', async () => {
      const before = await store.issue('alice');
      const feed = new GroupFeed(fx.redis, keys, options('a'));
      await feed.init();
      await feed.init(); // a second member (or a restart) finds the group there
      for (const b of all) {
        const groups = (await fx.redis.xinfo('GROUPS', keys.log(b))) as unknown[][];
        expect(groups.map((g) => g[1]), `bucket ${b}`).to.deep.equal(['g']);
      }
      expect(await read(feed), 'its (empty) backlog first').to.deep.equal([]);
      const t = await store.issue('bob');
      expect((await read(feed)).map((e) => e.jti), 'only what came after init').to.deep.equal([t.jti]);
      expect(before.jti).to.not.equal(t.jti);
    });

    it('gives each entry to one consumer, and handled() acknowledges it', async () => {
      const a = await started(new GroupFeed(fx.redis, keys, options('a')));
      const b = await started(new GroupFeed(fx.server.client(), keys, options('b')));
      const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => store.issue(`u${i}`)));
      const byA = await read(a, 3); // a takes at most 3 per bucket, b the rest
      const byB = await read(b);
      expect(byA.length).to.be.greaterThan(0);
      expect(byB.length).to.be.greaterThan(0);
      const ids = [...byA, ...byB].map((e) => `${e.bucket}:${e.id}`);
      expect(new Set(ids).size, 'no entry twice').to.equal(ids.length);
      expect([...byA, ...byB].map((e) => e.jti)).to.have.members(tokens.map((t) => t.jti));
      expect(await read(a), 'nothing new for a').to.deep.equal([]);
      expect(await pendingCount('g')).to.equal(20);
      for (const e of byA) await a.handled(e.bucket, e.id);
      for (const e of byB) await b.handled(e.bucket, e.id);
      expect(await pendingCount('g')).to.equal(0);
    });

    it('hands an unacknowledged entry to another consumer after claimAfterMs; then mine() is false for the first and busy() does not take it back', async () => {
      const claimAfterMs = 300;
      const a = await started(new GroupFeed(fx.redis, keys, options('a', { claimAfterMs })));
      const b = await started(new GroupFeed(fx.server.client(), keys, options('b', { claimAfterMs })));
      const t = await store.issue('alice');
      const readAt = Date.now();
      const [e] = await read(a);
      expect(e?.jti).to.equal(t.jti);
      await (a as Feed).failed(e!.bucket, e!.id); // a handler threw: the entry stays pending to a
      expect(await pendingOf(e!.bucket, 'g', e!.id)).to.deep.equal(['a', 1]);
      expect(await read(b), 'not idle long enough yet').to.deep.equal([]);

      const taken = await waitFor('b to take the entry over', async () => (await read(b)).find((x) => x.id === e!.id), 5000, 20);
      const after = Date.now() - readAt;
      expect(taken.jti).to.equal(t.jti);
      expect(after, 'taken over only once idle for claimAfterMs').to.be.at.least(claimAfterMs);
      expect(await pendingOf(e!.bucket, 'g', e!.id)).to.deep.equal(['b', 2]);

      // a read it long ago: it asks Redis, and the entry is b's now.
      expect(await a.mine(e!.bucket, e!.id, readAt)).to.equal(false);
      expect(await b.mine(e!.bucket, e!.id, readAt)).to.equal(true);
      await a.busy(e!.bucket, e!.id);
      expect(await pendingOf(e!.bucket, 'g', e!.id), 'a\'s busy() leaves it with b').to.deep.equal(['b', 2]);
      await b.handled(e!.bucket, e!.id);
      expect(await pendingOf(e!.bucket, 'g', e!.id)).to.equal(undefined);
      expect(await b.mine(e!.bucket, e!.id, readAt), 'acknowledged: nobody\'s').to.equal(false);
    });

    it('busy() resets an entry\'s idle time, so nobody takes it over meanwhile', async () => {
      const claimAfterMs = 300;
      const a = await started(new GroupFeed(fx.redis, keys, options('a', { claimAfterMs })));
      const b = await started(new GroupFeed(fx.server.client(), keys, options('b', { claimAfterMs })));
      await store.issue('alice');
      const [e] = await read(a);
      const idle = async () => ((await fx.redis.xpending(keys.log(e!.bucket), 'g', e!.id, e!.id, 1)) as [string, string, number, number][])[0]![2];
      await waitFor('the entry to be idle for claimAfterMs', async () => (await idle()) >= claimAfterMs, 5000, 20);
      await a.busy(e!.bucket, e!.id);
      expect(await idle()).to.be.below(claimAfterMs);
      expect(await read(b), 'b takes nothing').to.deep.equal([]);
      expect(await pendingOf(e!.bucket, 'g', e!.id)).to.deep.equal(['a', 1]);
    });

    it('dead-letters an entry delivered maxDeliveries times and calls onDeadLetter', async () => {
      const a = await started(new GroupFeed(fx.redis, keys, options('a', { claimAfterMs: 100, maxDeliveries: 2 })));
      const t = await store.issue('poison');
      const deliveries: string[] = [];
      await waitFor('the entry to be dead-lettered', async () => {
        for (const e of await read(a)) {
          deliveries.push(e.jti);
          await (a as Feed).failed(e.bucket, e.id); // always fails
        }
        return deadLetters.length > 0;
      }, 5000, 20);
      const bucket = keys.bucketOf(t.jti);
      expect(deliveries, 'delivered maxDeliveries times').to.deep.equal([t.jti, t.jti]);
      expect(deadLetters).to.have.length(1);
      const [b, id, count, event] = deadLetters[0]!;
      expect([b, count, event.type, event.jti]).to.deep.equal([bucket, 2, 'issued', t.jti]);
      const letters = await fx.redis.xrange(keys.deadLetters(bucket, 'g'), '-', '+');
      expect(letters).to.have.length(1);
      // The letter: where it came from, how often it was delivered, then the entry as it was.
      const [source, sourceId, times, count2, ...entry] = letters[0]![1];
      expect([source, sourceId, times, count2]).to.deep.equal(['source', id, 'deliveries', '2']);
      expect(journalEvent(bucket, id, entry)).to.deep.include({ type: 'issued', jti: t.jti });
      expect(await pendingCount('g'), 'acknowledged when dead-lettered').to.equal(0);
    });

    it('a consumer started again under the same name gets its own pending entries first', async () => {
      const first = await started(new GroupFeed(fx.redis, keys, options('host-1')));
      const t = await store.issue('alice');
      const [e] = await read(first); // read, never acknowledged: the process "died"
      expect(e?.jti).to.equal(t.jti);
      const again = new GroupFeed(fx.server.client(), keys, options('host-1'));
      await again.init();
      await started(new GroupFeed(fx.server.client(), keys, options('host-2'))); // nothing to take over: claimAfterMs not reached
      expect((await read(again)).map((x) => x.id)).to.deep.equal([e!.id]);
      await again.handled(e!.bucket, e!.id);
      expect(await read(again), 'backlog done').to.deep.equal([]);
    });

    it('recreates a group that is gone (NOGROUP) from the stream\'s start', async () => {
      const a = await started(new GroupFeed(fx.redis, keys, options('a')));
      const t = await store.issue('alice');
      const bucket = keys.bucketOf(t.jti);
      await fx.redis.del(keys.log(bucket)); // as if Redis restarted without persistence
      // New entries, one of them in that bucket: its stream comes back without the group.
      const since: string[] = [];
      while (!since.some((jti) => keys.bucketOf(jti) === bucket)) since.push((await store.issue('bob')).jti);
      const err = await read(a).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(Error);
      expect((err as Error).message).to.match(/^NOGROUP/);
      // The group is back, from the start of what the stream holds now: nothing is skipped.
      expect((await read(a)).map((e) => e.jti)).to.have.members(since);
    });

    it('progress() gives the group\'s last delivered id and entries read per bucket', async () => {
      const feed = await started(new GroupFeed(fx.redis, keys, options('a')));
      const empty = await feed.progress();
      for (const b of all) expect(empty[b], `bucket ${b}: a group made on an empty stream has read nothing`).to.deep.include({ position: '0-0', read: 0 });
      const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => store.issue(`u${i}`)));
      const got = await read(feed);
      expect(got).to.have.length(tokens.length);
      const progress = await feed.progress();
      for (const b of all) {
        const mine = got.filter((e) => e.bucket === b);
        expect(progress[b], `bucket ${b}`).to.deep.include({ position: mine.at(-1)?.id ?? '0-0', read: mine.length });
      }
    });
  });
});
