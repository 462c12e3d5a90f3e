import { expect } from 'chai';
import { ConfigError, TokenLifecycle, type TokenEvent } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { nextEvent, waitFor } from './support/wait.js';

describe('TokenLifecycle', () => {
  const fx = useRedis();

  it('delivers issued, revoked and expired events with claims, id and time', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const a = await store.issue('alice', { ttl: 1, scope: 'read', claims: { tenant: 't1' } });
    const b = await store.issue('bob', { ttl: 60 });
    await store.revoke(b.token);
    await waitFor('issued, revoked and expired', () => events.length >= 4, 4000);
    const by = (type: string, jti: string) => events.filter((e) => e.type === type && e.jti === jti);
    const [issued] = by('issued', a.jti);
    expect(issued).to.deep.include({ type: 'issued', jti: a.jti, sub: 'alice', claims: a.claims });
    expect(issued!.id).to.match(new RegExp(`^${store.keys.bucketOf(a.jti)}:\\d+-\\d+$`));
    expect(issued!.at).to.be.closeTo(Date.now(), 5000);
    expect(issued).to.not.have.property('reason');
    expect(by('revoked', b.jti)[0]).to.deep.include({ type: 'revoked', reason: 'revoke', sub: 'bob', claims: b.claims });
    const [expired] = by('expired', a.jti);
    expect(expired).to.deep.include({ type: 'expired', sub: 'alice', claims: a.claims });
    expect(expired!.at - a.expiresAt).to.be.within(0, 1000);
    expect(events).to.have.length(4);
    expect(JSON.stringify(events)).to.not.include(a.token);
  });

  it('reports revokeAll with its reason, once per token', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const tokens = await Promise.all(Array.from({ length: 30 }, () => store.issue('carol')));
    expect(await store.revokeAll('carol')).to.equal(30);
    await waitFor('30 revoked events', () => events.filter((e) => e.type === 'revoked').length >= 30);
    const revoked = events.filter((e) => e.type === 'revoked');
    expect(revoked.every((e) => e.reason === 'revokeAll' && e.sub === 'carol')).to.equal(true);
    expect(new Set(revoked.map((e) => e.jti))).to.deep.equal(new Set(tokens.map((t) => t.jti)));
  });

  it('reports a DEL by another client as revoked with reason external', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle({ pollInterval: 60_000 }); // the keyevent, not the poll, must do it
    await lifecycle.start();
    const t = await store.issue('dave', { ttl: 600 });
    const other = fx.server.client();
    const revoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === t.jti, 2000);
    await other.del(store.keys.token(store.keys.bucketOf(t.jti), t.jti));
    expect(await revoked).to.deep.include({ reason: 'external', sub: 'dave', claims: t.claims });
  });

  it('reports a DEL made while no lifecycle ran as external at the next start (deadline not passed)', async () => {
    const store = fx.store();
    const t = await store.issue('dora', { ttl: 600 });
    await fx.redis.del(store.keys.token(store.keys.bucketOf(t.jti), t.jti));
    const lifecycle = fx.lifecycle();
    const revoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === t.jti, 3000);
    await lifecycle.start();
    expect(await revoked).to.deep.include({ reason: 'external', sub: 'dora' });
  });

  it('gives every running lifecycle every event', async () => {
    const store = fx.store();
    const one = fx.lifecycle();
    const two = fx.lifecycle();
    const a = fx.record(one);
    const b = fx.record(two);
    await Promise.all([one.start(), two.start()]);
    await Promise.all(Array.from({ length: 20 }, () => store.issue('erin')));
    await waitFor('20 events on both', () => a.length >= 20 && b.length >= 20);
    expect(a.map((e) => e.id)).to.have.members(b.map((e) => e.id));
  });

  it('starts from the present: events before start() are not replayed', async () => {
    const store = fx.store();
    await store.issue('frank');
    const lifecycle = fx.lifecycle();
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const t = await store.issue('frank');
    await waitFor('the new issued event', () => events.length >= 1);
    expect(events.map((e) => e.jti)).to.deep.equal([t.jti]);
  });

  it('awaits async handlers: one event at a time, in order per token', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    let active = 0;
    let maxActive = 0;
    const seen: string[] = [];
    for (const type of ['issued', 'revoked'] as const) {
      lifecycle.on(type, async (e) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 5));
        seen.push(`${e.type}:${e.jti}`);
        active--;
      });
    }
    await lifecycle.start();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => store.issue('gina')));
    await Promise.all(tokens.map((t) => store.revoke(t.jti)));
    await waitFor('20 handled events', () => seen.length >= 20);
    expect(maxActive).to.equal(1);
    for (const t of tokens) expect(seen.indexOf(`issued:${t.jti}`)).to.be.below(seen.indexOf(`revoked:${t.jti}`));
  });

  it('reports a throwing handler on error and keeps delivering', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const errors: Error[] = [];
    lifecycle.on('error', (err) => { errors.push(err); });
    lifecycle.on('issued', (e) => { if (e.sub === 'bad') throw new Error('handler failed'); });
    const events = fx.record(lifecycle);
    await lifecycle.start();
    await store.issue('bad');
    await store.issue('good');
    await waitFor('both events', () => events.length >= 2);
    expect(errors.map((e) => e.message)).to.deep.equal(['handler failed']);
  });

  it('stop() drains the event being handled, is idempotent, and ends delivery', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    let finished = false;
    let started = false;
    lifecycle.on('issued', async () => {
      started = true;
      await new Promise((r) => setTimeout(r, 200));
      finished = true;
    });
    await lifecycle.start();
    await store.issue('hank');
    await waitFor('the handler to start', () => started);
    const first = lifecycle.stop();
    const second = lifecycle.stop();
    await Promise.all([first, second]);
    expect(finished).to.equal(true);
    expect(lifecycle.running).to.equal(false);
    const after: TokenEvent[] = [];
    lifecycle.on('issued', (e) => { after.push(e); });
    await store.issue('hank');
    const probe = fx.lifecycle();
    const probeEvents = fx.record(probe);
    await probe.start();
    await store.issue('hank');
    await waitFor('a running lifecycle to see the next event', () => probeEvents.length >= 1);
    expect(after).to.deep.equal([]);
  });

  it('subscribes on its own connection to the three keyevent channels and its prefix\'s wake channel, and no pattern', async () => {
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const channels = (await fx.redis.pubsub('CHANNELS')) as string[];
    const keys = fx.store().keys;
    expect(channels).to.have.members(['__keyevent@0__:expired', '__keyevent@0__:del', '__keyevent@0__:evicted', keys.wake()]);
    expect(await fx.redis.pubsub('NUMPAT')).to.equal(0);
    const clients = (await fx.redis.client('LIST')) as string;
    expect(clients.split('\n').filter((line) => /sub=4\b/.test(line))).to.have.length(1);
    // Stream writes under another prefix (or by another app) reach no lifecycle of this one.
    expect(await fx.redis.pubsub('NUMSUB', '__keyevent@0__:xadd')).to.deep.equal(['__keyevent@0__:xadd', 0]);
    const [, flags] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
    expect([...flags!].sort().join(''), 'no keyspace channels, no stream events').to.equal([...'Egxe'].sort().join(''));
  });

  it('a lifecycle that does not sweep needs no notify-keyspace-events letter, and delivers at once', async () => {
    await fx.redis.config('SET', 'notify-keyspace-events', '');
    const lifecycle = fx.lifecycle({ sweep: false, pollInterval: 60_000 });
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const [, flags] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
    expect(flags).to.equal('');
    const t = await fx.store({ cache: false }).issue('ivy');
    await waitFor('the issued event, long before the poll', () => events.length >= 1, 2000);
    expect(events[0]).to.deep.include({ type: 'issued', jti: t.jti, sub: 'ivy' });
  });

  it('reports sync: true once caught up, false while its subscription is down, true again after', async () => {
    const lifecycle = fx.lifecycle();
    const changes: boolean[] = [];
    lifecycle.on('sync', (value) => { changes.push(value); });
    expect(lifecycle.synced).to.equal(false);
    await lifecycle.start();
    expect(lifecycle.synced).to.equal(true);
    await fx.redis.client('KILL', 'TYPE', 'pubsub');
    await waitFor('sync false then true', () => changes.length >= 3 && lifecycle.synced, 5000);
    expect(changes).to.deep.equal([true, false, true]);
    await lifecycle.stop();
    expect(lifecycle.synced).to.equal(false);
  });

  it('merges notify-keyspace-events, keeping letters another user set', async () => {
    await fx.redis.config('SET', 'notify-keyspace-events', 'Kl');
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const [, flags] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
    for (const letter of 'KlEgxe') expect(flags, letter).to.include(letter);
    await lifecycle.stop();
    await fx.redis.config('SET', 'notify-keyspace-events', 'AKE');
    const again = fx.lifecycle();
    await again.start();
    const [, all] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
    expect(all).to.match(/A/).and.match(/K/).and.match(/E/);
  });

  it('re-applies the flags and keeps delivering after Redis restarts empty', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle({ pollInterval: 200 });
    const events = fx.record(lifecycle);
    await lifecycle.start();
    await fx.server.restart();
    await waitFor('notify-keyspace-events to be set again', async () => {
      const [, flags] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
      return flags!.includes('E') && flags!.includes('x');
    }, 5000);
    const t = await store.issue('ivan', { ttl: 1 });
    await waitFor('issued and expired after the restart', () => events.some((e) => e.jti === t.jti && e.type === 'expired'), 5000);
  });

  it('warns about an allkeys-* eviction policy', async () => {
    await fx.redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const lifecycle = fx.lifecycle();
      const warnings: string[] = [];
      lifecycle.on('warning', (w) => { warnings.push(w); });
      await lifecycle.start();
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.include('allkeys-lru');
    } finally {
      await fx.redis.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });

  it('reports an evicted token as revoked with reason evicted', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const t = await store.issue('judy', { ttl: 600 });
    const revoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === t.jti, 5000);
    const [, used] = /used_memory:(\d+)/.exec((await fx.redis.info('memory')))!;
    await fx.redis.config('SET', 'maxmemory-policy', 'volatile-ttl');
    try {
      // Only keys with a TTL can go under volatile-*; fill with later-expiring ones so ours is evicted first.
      await fx.redis.config('SET', 'maxmemory', String(Number(used) + 2 * 1024 * 1024));
      const pipeline = fx.redis.pipeline();
      for (let i = 0; i < 40_000; i++) pipeline.set(`filler:${i}`, 'x'.repeat(100), 'EX', 3600);
      await pipeline.exec();
      expect(await revoked).to.deep.include({ reason: 'evicted', sub: 'judy' });
    } finally {
      await fx.redis.config('SET', 'maxmemory', '0');
      await fx.redis.config('SET', 'maxmemory-policy', 'noeviction');
      await fx.redis.eval("for _, k in ipairs(redis.call('KEYS', 'filler:*')) do redis.call('DEL', k) end", 0);
    }
  });

  it('validates its options at construction, naming the option', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ redis: null }, 'redis'],
      [{ prefix: '' }, 'prefix'],
      [{ buckets: 2.5 }, 'buckets'],
      [{ pollInterval: 1 }, 'pollInterval'],
      [{ sweep: 'yes' }, 'sweep'],
      [{ retention: { entries: 1 } }, 'retention.entries'],
      [{ delivery: 'pubsub' }, 'delivery'],
      [{ group: 'a b' }, 'group'],
      [{ group: 'g', delivery: 'keyevents' }, 'group'],
      [{ consumer: '' }, 'consumer'],
      [{ claimAfterMs: 5 }, 'claimAfterMs'],
      [{ maxDeliveries: 0 }, 'maxDeliveries'],
      [{ stopTimeout: -1 }, 'stopTimeout'],
    ];
    for (const [bad, option] of cases) {
      let err: unknown;
      try {
        new TokenLifecycle({ redis: fx.redis, ...bad } as never);
      } catch (e) {
        err = e;
      }
      expect(err, option).to.be.instanceOf(ConfigError).with.property('option', option);
    }
  });
});
