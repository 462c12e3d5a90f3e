import { expect } from 'chai';
import { DeadLetterError, type GapEvent, type TokenEvent } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { nextEvent, waitFor } from './support/wait.js';
import { journalEvent } from '../lib/events/event.js';

describe('TokenLifecycle consumer groups', () => {
  const fx = useRedis();

  it('gives each event to exactly one member of a group, and every event to a broadcast listener', async () => {
    const store = fx.store();
    const a = fx.lifecycle({ group: 'audit', consumer: 'a' });
    const b = fx.lifecycle({ group: 'audit', consumer: 'b' });
    const all = fx.lifecycle();
    const [ea, eb, eall] = [fx.record(a), fx.record(b), fx.record(all)];
    await Promise.all([a.start(), b.start(), all.start()]);
    const tokens = await Promise.all(Array.from({ length: 60 }, (_, i) => store.issue(`u${i % 6}`)));
    await Promise.all(tokens.slice(0, 20).map((t) => store.revoke(t.jti)));
    await waitFor('80 events on the broadcast listener and across the group', () => eall.length >= 80 && ea.length + eb.length >= 80);
    const groupIds = [...ea, ...eb].map((e) => e.id);
    expect(new Set(groupIds).size).to.equal(groupIds.length);
    expect(groupIds).to.have.members(eall.map((e) => e.id));
    expect(ea.length).to.be.greaterThan(0);
    expect(eb.length).to.be.greaterThan(0);
  });

  it('acknowledges only when the handler resolves: a throwing handler gets the event again', async () => {
    const store = fx.store();
    const member = fx.lifecycle({ group: 'g', consumer: 'm', claimAfterMs: 300 });
    const errors: Error[] = [];
    member.on('error', (err) => { errors.push(err); });
    let attempts = 0;
    const handled: string[] = [];
    member.on('issued', (e) => {
      if (e.sub === 'flaky' && ++attempts < 3) throw new Error(`attempt ${attempts} failed`);
      handled.push(e.jti);
    });
    await member.start();
    const t = await store.issue('flaky');
    await waitFor('the third attempt to succeed', () => handled.includes(t.jti), 5000);
    expect(attempts).to.equal(3);
    expect(errors.map((e) => e.message)).to.deep.equal(['attempt 1 failed', 'attempt 2 failed']);
    const pending = (await fx.redis.xpending(store.keys.log(store.keys.bucketOf(t.jti)), 'g')) as [number];
    expect(pending[0]).to.equal(0);
  });

  it('moves a poison event to the dead-letter stream after maxDeliveries, with an error', async () => {
    const store = fx.store();
    const member = fx.lifecycle({ group: 'g', consumer: 'm', claimAfterMs: 200, maxDeliveries: 3 });
    let attempts = 0;
    let canaryAttempts = 0;
    const errors: string[] = [];
    member.on('error', (err) => { errors.push(err.message); });
    member.on('issued', (e) => {
      if (e.sub === 'poison') {
        attempts++;
        throw new Error('always fails');
      }
      if (e.sub === 'canary' && ++canaryAttempts === 1) throw new Error('fails once');
    });
    const dead = nextEvent<Error>(member, 'error', (err) => err instanceof DeadLetterError, 8000);
    await member.start();
    const t = await store.issue('poison');
    const err = (await dead) as DeadLetterError;
    expect(err.code).to.equal('ERR_DEAD_LETTER');
    expect(err.deliveries).to.equal(3);
    expect(err.event).to.deep.include({ type: 'issued', jti: t.jti, sub: 'poison' });
    expect(attempts).to.equal(3);
    const b = store.keys.bucketOf(t.jti);
    const letters = await fx.redis.xrange(store.keys.deadLetters(b, 'g'), '-', '+');
    expect(letters).to.have.length(1);
    const [source, , times, count, ...entry] = letters[0]![1];
    expect([source, times, count]).to.deep.equal(['source', 'deliveries', '3']);
    expect(journalEvent(b, letters[0]![0], entry)).to.deep.include({ type: 'issued', jti: t.jti });
    expect(((await fx.redis.xpending(store.keys.log(b), 'g')) as [number])[0]).to.equal(0);
    // It is not delivered again: a canary that fails once comes back through the same
    // claim rounds that would bring the poison event back, had it stayed pending.
    await store.issue('canary');
    await waitFor('the canary\'s redelivery', () => canaryAttempts >= 2, 5000);
    expect(attempts).to.equal(3);
    expect(errors.filter((m) => m === 'fails once')).to.have.length(1);
  });

  it('delivers what happened while every member was down on the next start', async () => {
    const store = fx.store();
    const first = fx.lifecycle({ group: 'g' });
    await first.start();
    await first.stop();
    const missed = await Promise.all(Array.from({ length: 20 }, () => store.issue('offline')));
    const second = fx.lifecycle({ group: 'g' });
    const events = fx.record(second);
    await second.start();
    await waitFor('the 20 events issued while the group was down', () => events.length >= 20);
    expect(events.map((e) => e.jti)).to.have.members(missed.map((t) => t.jti));
  });

  it('a restarted member with the same consumer name gets its unacknowledged events at once', async () => {
    const store = fx.store();
    const before = fx.lifecycle({ group: 'g', consumer: 'host-1', claimAfterMs: 60_000, stopTimeout: 50 });
    let started = false;
    before.on('issued', () => {
      started = true;
      return new Promise(() => {}); // never finishes: the process "dies" mid-handler
    });
    await before.start();
    const t = await store.issue('stuck');
    await waitFor('the handler to start', () => started);
    await before.stop(); // gives up after stopTimeout: the event stays pending for host-1
    const after = fx.lifecycle({ group: 'g', consumer: 'host-1', claimAfterMs: 60_000 });
    const events = fx.record(after);
    await after.start();
    await waitFor('the pending event', () => events.length >= 1, 2000);
    expect(events[0]!.jti).to.equal(t.jti);
  });

  it('does not hand a long-running handler\'s event to another member', async () => {
    const store = fx.store();
    const slow = fx.lifecycle({ group: 'g', consumer: 'slow', claimAfterMs: 300 });
    const other = fx.lifecycle({ group: 'g', consumer: 'other', claimAfterMs: 300 });
    const handled: string[] = [];
    const owners: unknown[] = [];
    slow.on('issued', async (e) => {
      await new Promise((r) => setTimeout(r, 1200)); // a handler running 4× claimAfterMs
      // Still this member's, delivered once: nobody took it over meanwhile.
      const log = store.keys.log(store.keys.bucketOf(e.jti));
      const pending = (await fx.redis.xpending(log, 'g', '-', '+', 10)) as [string, string, number, number][];
      owners.push(...pending.map(([, consumer, , deliveries]) => [consumer, deliveries]));
      handled.push(`slow:${e.jti}`);
    });
    other.on('issued', (e) => { handled.push(`other:${e.jti}`); });
    await slow.start();
    const t = await store.issue('long');
    await waitFor('the slow member to take it', async () => {
      const [count] = (await fx.redis.xpending(store.keys.log(store.keys.bucketOf(t.jti)), 'g')) as [number];
      return count === 1;
    });
    await other.start();
    await waitFor('the slow handler to finish', () => handled.length >= 1, 3000);
    expect(owners, 'owner and deliveries at the end of the slow handler').to.deep.equal([['slow', 1]]);
    expect(handled).to.deep.equal([`slow:${t.jti}`]);
  });

  it('reports a gap when a group falls behind the retained journal', async () => {
    const store = fx.store({ buckets: 1, retention: { entries: 100 } });
    const member = fx.lifecycle({ group: 'g', buckets: 1, retention: { entries: 100 } });
    await member.start();
    await member.stop();
    await Promise.all(Array.from({ length: 400 }, () => store.issue('busy')));
    const again = fx.lifecycle({ group: 'g', buckets: 1, retention: { entries: 100 } });
    const gaps: GapEvent[] = [];
    again.on('gap', (g) => { gaps.push(g); });
    const events = fx.record(again);
    await again.start();
    expect(gaps).to.have.length(1);
    const retained = await fx.redis.xlen(store.keys.log(0));
    const [first] = (await fx.redis.xrange(store.keys.log(0), '-', '+', 'COUNT', 1))[0]!;
    expect(gaps[0]).to.deep.include({ reason: 'trimmed', bucket: 0, before: `0:${first}`, lost: 400 - retained });
    expect(gaps[0]!.after).to.match(/^0:\d+-\d+$/);
    expect(retained).to.be.within(100, 399);
    await waitFor('all retained events', () => events.length >= retained);
    expect(events.length).to.equal(retained);
  });

  it('trims the journal by age when retention.maxAge is set', async () => {
    await fx.redis.config('SET', 'stream-node-max-entries', '5'); // trimming drops whole nodes
    try {
      const store = fx.store({ buckets: 1, retention: { maxAge: 1 } });
      await Promise.all(Array.from({ length: 30 }, () => store.issue('old')));
      expect(await fx.redis.xlen(store.keys.log(0))).to.equal(30);
      // Wait on Redis' clock (stream ids are its ms) until every entry is older than maxAge.
      const [last] = await fx.redis.xrevrange(store.keys.log(0), '+', '-', 'COUNT', 1);
      const lastMs = Number(last![0].split('-')[0]);
      await waitFor('the entries to age past maxAge', async () => {
        const [seconds, micros] = await fx.redis.time();
        return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) > lastMs + 1000;
      }, 3000, 20);
      await store.issue('new');
      expect(await fx.redis.xlen(store.keys.log(0))).to.be.below(6);
    } finally {
      await fx.redis.config('SET', 'stream-node-max-entries', '100');
    }
  });
});
