// Journal entries as readers decode them (lib/redis/streams.ts, lib/events/event.ts): the
// compact token entry this version writes (one field, `<type>[:<reason>]`, value
// `<jti> <record>`), and the named fields journals written before hold, which a reader
// must still understand: a journal outlives the version that wrote it.
import { expect } from 'chai';
import { journalEvent } from '../lib/events/event.js';
import { endOf, recordOf, tokenEntry } from '../lib/redis/streams.js';
import { newJti, secondOf } from '../lib/redis/keys.js';
import { useRedis } from './support/fixture.js';
import { untilRefused, warm } from './support/verify.js';
import { waitFor } from './support/wait.js';

const JTI = '0abcdefAAAAAAAAAAAAAAAA';
const RECORD = ',900,4,0:readalice';

describe('journal entries (compact and named fields)', () => {
  describe('decoding', () => {
    it('reads a compact entry: type, reason, jti and record', () => {
      expect(tokenEntry(['issued', `${JTI} ${RECORD}`])).to.deep.equal({ type: 'issued', reason: undefined, jti: JTI, record: RECORD });
      expect(tokenEntry(['revoked:revokeAll', `${JTI} ${RECORD}`])).to.deep.equal({ type: 'revoked', reason: 'revokeAll', jti: JTI, record: RECORD });
      // A jti that named no record (a key under the prefix that this library did not write) may hold anything.
      expect(tokenEntry(['revoked:external', ' a jti, with spaces '])).to.deep.equal({ type: 'revoked', reason: 'external', jti: 'a jti, with spaces ', record: undefined });
      expect(tokenEntry(['type', 'issued', 'jti', JTI])).to.equal(undefined);
    });

    it('finds ends and records in both forms', () => {
      expect(endOf(['revoked:revoke', `${JTI} ${RECORD}`])).to.deep.equal(['revoked', JTI]);
      expect(endOf(['expired', `${JTI} ${RECORD}`])).to.deep.equal(['expired', JTI]);
      expect(endOf(['revoked:external', ' odd jti'])).to.deep.equal(['revoked', 'odd jti']);
      expect(endOf(['issued', `${JTI} ${RECORD}`])).to.equal(undefined);
      expect(endOf(['revokedish', `${JTI} ${RECORD}`]), 'a type that only starts like one').to.equal(undefined);
      expect(endOf(['type', 'revoked', 'jti', JTI, 'reason', 'revoke', 'record', RECORD])).to.deep.equal(['revoked', JTI]);
      expect(endOf(['type', 'issued', 'jti', JTI, 'record', RECORD])).to.equal(undefined);
      expect(endOf(['type', 'session_ended', 'sid', 's1', 'reason', 'logout', 'session', 'x'])).to.equal(undefined);
      expect(recordOf(['issued', `${JTI} ${RECORD}`])).to.equal(RECORD);
      expect(recordOf(['revoked:external', ` ${JTI}`])).to.equal(undefined);
      expect(recordOf(['type', 'issued', 'jti', JTI, 'record', RECORD])).to.equal(RECORD);
    });

    it('gives the same event for a compact entry and for the named fields written before', () => {
      const exp = secondOf(JTI)!;
      const compact = journalEvent(3, '1700000000000-0', ['revoked:revoke', `${JTI} ${RECORD}`]);
      const named = journalEvent(3, '1700000000000-0', ['type', 'revoked', 'jti', JTI, 'reason', 'revoke', 'record', RECORD]);
      expect(compact).to.deep.equal(named);
      expect(compact).to.deep.equal({
        id: '3:1700000000000-0', type: 'revoked', jti: JTI, sub: 'alice', reason: 'revoke', at: 1700000000000,
        claims: { jti: JTI, exp, iat: exp - 900, scope: 'read', sub: 'alice' },
      });
      // The oldest form: the claims as JSON, and the time as a field.
      const claims = { jti: JTI, sub: 'bob', exp };
      expect(journalEvent(0, '5-0', ['type', 'issued', 'jti', JTI, 'claims', JSON.stringify(claims), 'at', '4'])).to.deep.equal({
        id: '0:5-0', type: 'issued', jti: JTI, sub: 'bob', claims, at: 4,
      });
    });
  });

  describe('against Redis', () => {
    const fx = useRedis();

    it('writes `issued` and `expired` as one field, `revoked` in the named fields every earlier reader knows', async () => {
      const store = fx.store({ cache: false });
      const t = await store.issue('alice', { scope: 'read' });
      await store.revoke(t.token);
      const log = store.keys.log(store.keys.bucketOf(t.jti));
      const entries = (await fx.redis.xrange(log, '-', '+')).map(([, fields]) => fields);
      const record = entries[0]![1]!.slice(t.jti.length + 1);
      expect(entries).to.deep.equal([['issued', `${t.jti} ${record}`], ['type', 'revoked', 'jti', t.jti, 'reason', 'revoke', 'record', record]]);
      expect(record.endsWith('alice')).to.equal(true);
      const soon = await store.issue('bob', { ttl: 1 });
      const sweeper = fx.lifecycle();
      const events = fx.record(sweeper);
      await sweeper.start();
      await waitFor('its expiry', () => events.some((e) => e.type === 'expired' && e.jti === soon.jti), 4000);
      const last = (await fx.redis.xrevrange(store.keys.log(store.keys.bucketOf(soon.jti)), '+', '-', 'COUNT', 1))[0]![1];
      expect(last[0]).to.equal('expired');
      expect(last).to.have.length(2);
    });

    it('a run that journals publishes each journal key it wrote on the prefix\'s wake channel, once', async () => {
      const store = fx.store({ cache: false });
      const listener = fx.server.client();
      const heard: [string, string][] = [];
      listener.on('message', (channel: string, message: string) => { heard.push([channel, message]); });
      await listener.subscribe(store.keys.wake());
      try {
        const t = await store.issue('alice');
        await waitFor('the wake message', () => heard.length >= 1, 2000);
        expect(heard).to.deep.equal([[store.keys.wake(), store.keys.log(store.keys.bucketOf(t.jti))]]);
        // 64 tokens in as few script runs as the store batches them: one message per run and bucket written.
        heard.length = 0;
        const issued = await Promise.all(Array.from({ length: 64 }, (_, i) => store.issue(`user-${i}`)));
        const buckets = new Set(issued.map((x) => store.keys.bucketOf(x.jti)));
        await waitFor('a message for every bucket written', () => new Set(heard.map(([, log]) => log)).size >= buckets.size, 2000);
        expect(new Set(heard.map(([, log]) => log))).to.deep.equal(new Set([...buckets].map((b) => store.keys.log(b))));
        expect(heard.length, 'fewer messages than tokens').to.be.below(64);
      } finally {
        listener.disconnect();
      }
    });

    it('a read that holds several buckets delivers their entries in the order of their ids, not by bucket', async () => {
      const store = fx.store({ cache: false });
      const lifecycle = fx.lifecycle({ pollInterval: 300 }); // the poll reads every bucket at once
      const events = fx.record(lifecycle);
      await lifecycle.start();
      const exp = Math.floor(Date.now() / 1000) + 600;
      const at = Date.now() + 1000; // ids after anything journaled so far
      // Journaled by hand in one transaction (no wake: the next poll reads them together),
      // bucket 5 first, then 1, then 9, with ids out of bucket order.
      const writes: [number, number, string][] = [[5, at + 10, 'first'], [1, at + 30, 'third'], [9, at + 20, 'second'], [1, at + 40, 'fourth']];
      const tx = fx.redis.multi();
      for (const [bucket, ms, sub] of writes) tx.xadd(store.keys.log(bucket), `${ms}-0`, 'issued', `${newJti(exp)} ,600,0,0:${sub}`);
      await tx.exec();
      await waitFor('four events', () => events.length >= 4, 3000);
      expect(events.map((e) => e.sub)).to.deep.equal(['first', 'second', 'third', 'fourth']);
      expect(events.map((e) => e.at)).to.deep.equal([at + 10, at + 20, at + 30, at + 40]);
    });

    it('a running lifecycle and the cache take a revocation journaled in named fields (an older version\'s revoke)', async () => {
      const store = fx.store(); // the cache on, following the journal itself
      const lifecycle = fx.lifecycle();
      const events = fx.record(lifecycle);
      await lifecycle.start();
      const t = await store.issue('alice', { scope: 'read' });
      await warm(store, t.token);
      const bucket = store.keys.bucketOf(t.jti);
      const window = store.keys.window(bucket, secondOf(t.jti)!);
      const record = (await fx.redis.hget(window, t.jti))!;
      // What the revoke script of the previous version did, in one transaction.
      const refused = untilRefused(store, t.token, 1500);
      await fx.redis.multi()
        .del(store.keys.token(bucket, t.jti))
        .hdel(window, t.jti)
        .xadd(store.keys.log(bucket), '*', 'type', 'revoked', 'jti', t.jti, 'reason', 'revoke', 'record', record)
        .exec();
      expect((await refused).code).to.equal('ERR_TOKEN_REVOKED');
      await waitFor('the revoked event', () => events.some((e) => e.type === 'revoked'), 3000);
      const [issued, revoked] = events;
      expect(revoked).to.deep.include({ type: 'revoked', jti: t.jti, sub: 'alice', reason: 'revoke' });
      expect(revoked!.claims).to.deep.equal(issued!.claims);
    });
  });
});
