// The sweeper (lib/events/sweeper.ts) on its own, against a real redis-server: it reaps
// tokens whose deadline passed (by Redis time) into `expired` journal entries, wakes up
// for deadlines it is told of, reaps keys named by keyevents, and rechecks the due
// index for token keys deleted while nobody listened. Tokens are written by a TokenStore;
// the journal is read straight from Redis.
import { expect } from 'chai';
import { Sweeper } from '../lib/events/sweeper.js';
import { KeySchema } from '../lib/redis/keys.js';
import { checkLayout } from '../lib/redis/layout.js';
import { journalEvent } from '../lib/events/event.js';
import type { IssuedToken, TokenStore } from '../lib/index.js';
import type { RedisClient } from '../lib/redis/script.js';
import { useRedis } from './support/fixture.js';
import { testPrefix } from './support/redis.js';
import { untilTime, waitFor } from './support/wait.js';

const BUCKETS = 4;
/** How late after its deadline a reap may be journaled (Redis time), on a loaded machine. */
const MARGIN_MS = 250;

interface Entry {
  type: string;
  jti: string;
  reason: string | undefined;
  /** Redis time when the script wrote it (ms). */
  at: number;
}

describe('Sweeper (lib/events/sweeper.ts)', () => {
  const fx = useRedis();
  let keys: KeySchema;
  let retention: string;
  let store: TokenStore;
  const sweepers: Sweeper[] = [];
  const errors: unknown[] = [];

  beforeEach(() => {
    const prefix = testPrefix();
    keys = new KeySchema(prefix, BUCKETS);
    ({ retention } = checkLayout({ prefix, buckets: BUCKETS })); // the store's default retention
    store = fx.store({ prefix, buckets: BUCKETS, cache: false });
    errors.length = 0;
  });

  afterEach(() => {
    for (const s of sweepers.splice(0)) s.stop();
    expect(errors, 'errors the sweepers reported').to.deep.equal([]);
  });

  function sweeper(redis: RedisClient = fx.redis): Sweeper {
    const s = new Sweeper(redis, keys, retention, (err) => { errors.push(err); });
    sweepers.push(s);
    return s;
  }

  /** Every journal entry except `issued`, of every bucket. */
  async function ends(): Promise<Entry[]> {
    const out: Entry[] = [];
    for (let b = 0; b < BUCKETS; b++) {
      for (const [id, fields] of await fx.redis.xrange(keys.log(b), '-', '+')) {
        const e = journalEvent(b, id, fields);
        if (e.type !== 'issued') out.push({ type: e.type, jti: e.jti, reason: e.reason, at: parseInt(id, 10) });
      }
    }
    return out;
  }

  const tell = (s: Sweeper, t: IssuedToken) => s.expect(keys.bucketOf(t.jti), t.expiresAt);
  /** Script calls Redis has run so far (a reap is one per bucket). */
  const evalshas = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await fx.redis.info('commandstats'))?.[1] ?? 0);
  /** A token of `sub` in another bucket than `other`, so that a reap of each is a script call of its own. */
  async function inAnotherBucket(other: IssuedToken, sub: string, ttl: number): Promise<IssuedToken> {
    let t = await store.issue(sub, { ttl });
    while (keys.bucketOf(t.jti) === keys.bucketOf(other.jti)) t = await store.issue(sub, { ttl });
    return t;
  }

  it('start() reaps what is already overdue before it resolves', async () => {
    const due = await store.issue('alice', { ttl: 1 });
    const live = await store.issue('bob', { ttl: 60 });
    await untilTime(due.expiresAt + 1); // nobody sweeps meanwhile: the record waits
    expect(await ends(), 'not reaped before a sweeper runs').to.deep.equal([]);
    await sweeper().start();
    const reaped = await ends();
    expect(reaped.map((e) => [e.type, e.jti])).to.deep.equal([['expired', due.jti]]);
    expect(reaped.some((e) => e.jti === live.jti)).to.equal(false);
  });

  it('reaps a token it was told of (expect) within its deadline and a small margin, once', async () => {
    const s = sweeper();
    await s.start(); // nothing due: it sleeps until told of a deadline
    const t = await store.issue('alice', { ttl: 1 });
    tell(s, t);
    const [e] = await waitFor('the expired entry', async () => {
      const found = (await ends()).filter((x) => x.jti === t.jti);
      return found.length > 0 && found;
    }, 5000, 10);
    expect([e!.type, e!.reason]).to.deep.equal(['expired', undefined]);
    expect(e!.at - t.expiresAt, 'ms after the deadline (Redis time)').to.be.within(0, MARGIN_MS);
    await s.start(); // one more full sweep finds nothing more to journal
    expect((await ends()).filter((x) => x.jti === t.jti)).to.have.length(1);
  });

  it('two sweepers racing over the same tokens journal each `expired` exactly once', async () => {
    const [a, b] = [sweeper(fx.redis), sweeper(fx.server.client())];
    await Promise.all([a.start(), b.start()]);
    const tokens = await Promise.all(Array.from({ length: 24 }, (_, i) => store.issue(`u${i % 5}`, { ttl: 1 + (i % 2) })));
    for (const t of tokens) {
      tell(a, t);
      tell(b, t);
    }
    await waitFor('every token to be reaped', async () => (await ends()).length >= tokens.length, 6000, 20);
    await Promise.all([a.start(), b.start()]); // and once more, both at once, over every bucket
    const reaped = await ends();
    expect(reaped.map((e) => e.type)).to.deep.equal(tokens.map(() => 'expired'));
    expect(reaped.map((e) => e.jti)).to.have.members(tokens.map((t) => t.jti));
    for (const t of tokens) {
      const e = reaped.find((x) => x.jti === t.jti)!;
      expect(e.at - t.expiresAt, `${t.jti}: ms after its deadline`).to.be.within(0, MARGIN_MS);
    }
  });

  it('stop() cancels the wake-up: a deadline passing after stop() is reaped by the next start()', async () => {
    const s = sweeper();
    await s.start();
    const t = await store.issue('alice', { ttl: 1 });
    tell(s, t);
    s.stop();
    await untilTime(t.expiresAt + MARGIN_MS); // past the deadline and the margin a running sweeper has
    expect(await ends(), 'nothing reaped while stopped').to.deep.equal([]);
    await s.start();
    expect((await ends()).map((e) => [e.type, e.jti])).to.deep.equal([['expired', t.jti]]);
  });

  it('reap() journals a token key deleted before its deadline as revoked (its reason), and leaves a live one', async () => {
    const s = sweeper();
    await s.start();
    const [deleted, evicted, live] = await Promise.all(['a', 'b', 'c'].map((sub) => store.issue(sub, { ttl: 60 })));
    for (const t of [deleted!, evicted!]) expect(await fx.redis.del(keys.token(keys.bucketOf(t.jti), t.jti))).to.equal(1);
    // As the lifecycle calls it for `del` / `evicted` keyevents (batched until the next tick).
    s.reap(keys.bucketOf(deleted!.jti), deleted!.jti, 'external', true);
    s.reap(keys.bucketOf(live!.jti), live!.jti, 'external', true);
    s.reap(keys.bucketOf(evicted!.jti), evicted!.jti, 'evicted', true);
    const reaped = await waitFor('two revocations', async () => {
      const found = await ends();
      return found.length >= 2 && found;
    }, 5000, 10);
    expect(reaped.map((e) => [e.type, e.reason, e.jti])).to.have.deep.members([
      ['revoked', 'external', deleted!.jti],
      ['revoked', 'evicted', evicted!.jti],
    ]);
    // The live token went in the same script call as the deleted one: already answered.
    expect(await store.list('c')).to.have.length(1);
  });

  it('reap() sends nothing for a token whose end the journal already holds (a store\'s own revoke)', async () => {
    const s = sweeper(); // not started: no sweeps, only the reaps asked for here
    const revoked = await store.issue('a', { ttl: 60 });
    const deleted = await inAnotherBucket(revoked, 'b', 60);
    await store.revoke(revoked.jti);
    expect(await fx.redis.del(keys.token(keys.bucketOf(deleted.jti), deleted.jti))).to.equal(1);
    const before = await evalshas();
    // The lifecycle read `revoked` for the first before the `del` keyevents were handled.
    s.journaled(revoked.jti);
    s.reap(keys.bucketOf(revoked.jti), revoked.jti, 'external', true);
    s.reap(keys.bucketOf(deleted.jti), deleted.jti, 'external', true);
    await waitFor('the other reap to be journaled', async () => (await ends()).some((e) => e.jti === deleted.jti), 5000, 5);
    const sent = await evalshas() - before;
    expect(sent, 'one reap script, for the deleted token only').to.equal(1);
    expect((await ends()).filter((e) => e.jti === deleted.jti).map((e) => `${e.type}/${e.reason}`)).to.deep.equal(['revoked/external']);
    // Without the journal's word, the same reap is sent.
    s.reap(keys.bucketOf(revoked.jti), revoked.jti, 'external', true);
    await waitFor('a reap script for the revoked token', async () => (await evalshas()) - before === 2, 5000, 5);
  });

  it('reap() waits for the lifecycle\'s next journal read before it decides, except for a token near its deadline', async () => {
    let read!: () => void;
    const nextRead = new Promise<void>((resolve) => { read = resolve; });
    const s = new Sweeper(fx.redis, keys, retention, (err) => { errors.push(err); }, () => nextRead);
    sweepers.push(s);
    const revoked = await store.issue('a', { ttl: 60 });
    const near = await inAnotherBucket(revoked, 'b', 1);
    await store.revoke(revoked.jti);
    expect(await fx.redis.del(keys.token(keys.bucketOf(near.jti), near.jti))).to.equal(1);
    const before = await evalshas();
    // Both `del` keyevents are handled before the journal read that shows the revoke has come back.
    s.reap(keys.bucketOf(revoked.jti), revoked.jti, 'external', true);
    s.reap(keys.bucketOf(near.jti), near.jti, 'external', true);
    await waitFor('the token near its deadline reaped without waiting', async () => (await ends()).some((e) => e.jti === near.jti), 1000, 5);
    expect((await ends()).filter((e) => e.jti === near.jti).map((e) => `${e.type}/${e.reason}`)).to.deep.equal(['revoked/external']);
    expect(await evalshas() - before, 'one reap so far').to.equal(1);
    // The read comes back with the revoke: nothing is sent for that token.
    s.journaled(revoked.jti);
    read();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await evalshas() - before, 'still one reap: the journal holds the other end').to.equal(1);
  });

  it('recheck() turns a token key deleted while nobody listened into revoked/external, and only while running', async () => {
    const s = sweeper();
    const [gone, live] = await Promise.all([store.issue('alice', { ttl: 60 }), store.issue('bob', { ttl: 60 })]);
    expect(await fx.redis.del(keys.token(keys.bucketOf(gone.jti), gone.jti))).to.equal(1); // no notification heard
    await s.recheck();
    expect(await ends(), 'a sweeper that is not running rechecks nothing').to.deep.equal([]);
    await s.start();
    expect(await ends(), 'the sweep alone: nothing due').to.deep.equal([]);
    await s.recheck();
    expect((await ends()).map((e) => [e.type, e.reason, e.jti])).to.deep.equal([['revoked', 'external', gone.jti]]);
    expect((await store.list('bob')).map((t) => t.jti)).to.deep.equal([live.jti]);
    await s.recheck(); // the record is gone: never journaled twice
    expect(await ends()).to.have.length(1);
  });
});
