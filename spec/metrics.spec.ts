// Metrics through @opentelemetry/api: an SDK MeterProvider with an in-memory reader is
// registered for these tests only (the global provider is process-wide: it is removed
// again at the end). What each instrument records, with which attributes, and that no
// attribute ever carries a subject, jti or token.
import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { metrics, type Attributes } from '@opentelemetry/api';
import { DataPointType, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Redis } from 'ioredis';
import { DeadLetterError, TokenStore, type TokenEvent } from '../lib/index.js';
import { authErrorHandler, bearerAuth } from '../lib/express/index.js';
import type { TokenCache } from '../lib/tokens/cache.js';
import { useRedis } from './support/fixture.js';
import { nextEvent, untilTime, waitFor } from './support/wait.js';

/** Collects on demand: no timer, no export. */
class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

interface Point {
  name: string;
  attributes: Attributes;
  /** A sum or gauge value, or a histogram's count. */
  value: number;
  /** A histogram's sum and largest value. */
  sum?: number;
  max?: number;
}

function points(resource: ResourceMetrics): Point[] {
  const out: Point[] = [];
  for (const scope of resource.scopeMetrics) {
    for (const metric of scope.metrics) {
      for (const p of metric.dataPoints) {
        if (metric.dataPointType === DataPointType.HISTOGRAM) {
          const h = p.value as { count: number; sum?: number; max?: number };
          out.push({ name: metric.descriptor.name, attributes: p.attributes, value: h.count, sum: h.sum, max: h.max });
        } else {
          out.push({ name: metric.descriptor.name, attributes: p.attributes, value: p.value as number });
        }
      }
    }
  }
  return out;
}

/** Whether a point's attributes hold every given one (and `absent` keys not at all). */
const matches = (p: Point, attrs: Attributes) => Object.entries(attrs).every(([k, v]) => (v === undefined ? !(k in p.attributes) : p.attributes[k] === v));

describe('metrics (OpenTelemetry)', () => {
  const fx = useRedis();
  const reader = new TestReader();
  let provider: MeterProvider;
  /** Every attribute value any collection showed: none may be a subject, jti or token. */
  const seenValues = new Set<string>();
  const secrets = new Set<string>();

  async function collect(): Promise<Point[]> {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).to.deep.equal([]);
    const all = points(resourceMetrics);
    for (const p of all) for (const v of Object.values(p.attributes)) seenValues.add(String(v));
    return all;
  }

  /** Sum of the values (histograms: counts) of `name` whose attributes match. */
  const total = (all: Point[], name: string, attrs: Attributes = {}) =>
    all.filter((p) => p.name === name && matches(p, attrs)).reduce((sum, p) => sum + p.value, 0);

  /** Runs `work`, then the change of each [name, attributes] it is asked about. */
  async function change(work: () => Promise<unknown>): Promise<(name: string, attrs?: Attributes) => number> {
    const before = await collect();
    await work();
    const after = await collect();
    return (name, attrs = {}) => total(after, name, attrs) - total(before, name, attrs);
  }

  function remember(...values: string[]): void {
    for (const v of values) secrets.add(v);
  }

  before(async () => {
    // The library is loaded, and used, before any provider exists: the API has no proxy
    // for metrics, so this checks that it binds to one registered afterwards.
    const early = new TokenStore({ redis: fx.redis, key: 'a-test-secret-that-is-at-least-32-bytes-long', issuer: 'early' });
    await early.verify('not-a-jwt').catch(() => {});
    await early.close();
    provider = new MeterProvider({ readers: [reader] });
    expect(metrics.setGlobalMeterProvider(provider)).to.equal(true);
  });

  after(async () => {
    metrics.disable();
    await provider?.shutdown();
    // Checked over every collection of every test above.
    for (const value of seenValues) expect(secrets.has(value), `attribute value ${value} is a subject, jti or token`).to.equal(false);
    for (const value of seenValues) for (const secret of secrets) expect(value).to.not.include(secret);
  });

  it('records to a MeterProvider registered after the library was loaded and used', async () => {
    const store = fx.store();
    const first = await collect();
    // Recorded before the provider existed: not here.
    expect(total(first, 'rtl.tokens.verifications', { outcome: 'ERR_TOKEN_MALFORMED' })).to.equal(0);
    await store.verify('not-a-jwt').catch(() => {});
    const all = await collect();
    expect(total(all, 'rtl.tokens.verifications', { outcome: 'ERR_TOKEN_MALFORMED' })).to.equal(1);
    const scopes = (await reader.collect()).resourceMetrics.scopeMetrics.map((s) => s.scope);
    expect(scopes.map(({ name, version }) => ({ name, version }))).to.deep.equal([{ name: 'redis-token-lifecycle', version: '0.1.0' }]);
  });

  it('counts sessions started, refreshes by outcome, and sessions ended by reason (from the lifecycle)', async () => {
    const store = fx.store({ sessions: { refreshGrace: 200, maxSessions: 1 } });
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const ended: TokenEvent[] = [];
    lifecycle.on('session_ended', (e) => { ended.push(e); });
    const delta = await change(async () => {
      const a = await store.startSession('user-sam');
      remember('user-sam', a.sid, a.jti, a.token, a.refreshToken);
      const b = await store.refresh(a.refreshToken);
      remember(b.jti, b.token, b.refreshToken);
      await store.refresh(a.refreshToken); // within the grace window: the same pair
      await store.refresh('nonsense').catch(() => {});
      await untilTime(Date.now() + 250);
      await store.refresh(a.refreshToken).catch(() => {}); // reuse: the session ends
      const c = await store.startSession('user-sam');
      remember(c.sid, c.token, c.refreshToken);
      await store.startSession('user-sam'); // the cap (1) ends c
      await waitFor('two session_ended', () => ended.length === 2);
    });
    expect(delta('rtl.sessions.started')).to.equal(3);
    expect(delta('rtl.sessions.refreshes', { outcome: 'ok' })).to.equal(1);
    expect(delta('rtl.sessions.refreshes', { outcome: 'grace' })).to.equal(1);
    expect(delta('rtl.sessions.refreshes', { outcome: 'invalid' })).to.equal(1);
    expect(delta('rtl.sessions.refreshes', { outcome: 'reuse' })).to.equal(1);
    expect(delta('rtl.sessions.ended', { reason: 'reuse' })).to.equal(1);
    expect(delta('rtl.sessions.ended', { reason: 'limit' })).to.equal(1);
    expect(delta('rtl.events.delivered', { type: 'reuse_detected' })).to.equal(1);
  });

  it('counts issued tokens by client_id: the store\'s default and its first 16 others, the rest as "other"', async () => {
    const clientId = `app-${Date.now().toString(36)}`;
    const store = fx.store({ clientId });
    const tokens: string[] = [];
    const delta = await change(async () => {
      for (let i = 0; i < 3; i++) tokens.push((await store.issue('user-ivy')).token);
      tokens.push((await store.issue('user-ivy', { clientId: 'mobile' })).token);
      for (let i = 0; i < 20; i++) tokens.push((await store.issue('user-ivy', { clientId: `tenant-${i}` })).token);
    });
    remember('user-ivy', ...tokens);
    expect(delta('rtl.tokens.issued', { client_id: clientId })).to.equal(3);
    expect(delta('rtl.tokens.issued', { client_id: 'mobile' })).to.equal(1);
    expect(delta('rtl.tokens.issued', { client_id: 'tenant-14' })).to.equal(1);
    expect(delta('rtl.tokens.issued', { client_id: 'tenant-15' })).to.equal(0);
    expect(delta('rtl.tokens.issued', { client_id: 'other' })).to.equal(5);
    expect(delta('rtl.tokens.issued')).to.equal(24);
  });

  it('counts verifications by outcome and times them by source: cache (verify and bearerAuth) or redis', async () => {
    const store = fx.store();
    const t = await store.issue('user-vera');
    const u = await store.issue('user-vera');
    remember('user-vera', t.token, t.jti, u.token, u.jti);
    // Verified until the store's feed is fresh and the cache holds it.
    const cache = (store as unknown as { cache: TokenCache }).cache;
    await waitFor('the cache to take the token', async () => {
      await store.verify(t.token);
      return cache.size > 0;
    }, 5000, 5);
    const app = express();
    app.get('/me', bearerAuth(store), (_req, res) => { res.json({}); });
    app.use(authErrorHandler());

    const hits = await change(async () => {
      for (let i = 0; i < 3; i++) await store.verify(t.token);
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(200);
    });
    expect(hits('rtl.tokens.verifications', { outcome: 'ok' })).to.equal(4);
    expect(hits('rtl.verify.duration', { source: 'cache' })).to.equal(4);
    expect(hits('rtl.verify.duration', { source: 'redis' })).to.equal(0);

    const others = await change(async () => {
      await store.verify(u.token); // first sight: signature, then Redis
      await store.verify('not-a-jwt').catch(() => {});
      await store.revoke(u.token);
      await store.verify(u.token).catch(() => {});
    });
    expect(others('rtl.tokens.verifications', { outcome: 'ok' })).to.equal(1);
    expect(others('rtl.tokens.verifications', { outcome: 'ERR_TOKEN_MALFORMED' })).to.equal(1);
    expect(others('rtl.tokens.verifications', { outcome: 'ERR_TOKEN_REVOKED' })).to.equal(1);
    expect(others('rtl.verify.duration', { source: 'redis' })).to.equal(3);
    expect(others('rtl.verify.duration', { source: 'cache' })).to.equal(0);

    const all = await collect();
    const cached = all.find((p) => p.name === 'rtl.verify.duration' && p.attributes.source === 'cache')!;
    expect(cached.max, 'seconds, not ms').to.be.below(0.05);
    const unit = all.filter((p) => p.name === 'rtl.verify.duration').every((p) => Object.keys(p.attributes).join() === 'source');
    expect(unit, 'source is the only attribute').to.equal(true);
  });

  it('counts revocations by reason: revoke and revokeAll from the store, external from the lifecycle', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const a = await store.issue('user-rex');
    const others = await Promise.all([store.issue('user-rhea'), store.issue('user-rhea')]);
    const d = await store.issue('user-rex', { ttl: 600 });
    remember('user-rex', 'user-rhea', a.token, a.jti, d.token, d.jti, ...others.flatMap((o) => [o.token, o.jti]));
    const delta = await change(async () => {
      expect(await store.revoke(a.token)).to.equal(true);
      expect(await store.revoke(a.jti)).to.equal(false); // already gone: not counted
      expect(await store.revokeAll('user-rhea')).to.equal(2);
      const revoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === d.jti, 4000);
      await fx.redis.del(store.keys.token(store.keys.bucketOf(d.jti), d.jti));
      await revoked; // counted as it is handed to the listeners
    });
    expect(delta('rtl.tokens.revoked', { reason: 'revoke' })).to.equal(1);
    expect(delta('rtl.tokens.revoked', { reason: 'revokeAll' })).to.equal(2);
    expect(delta('rtl.tokens.revoked', { reason: 'external' })).to.equal(1);
    expect(delta('rtl.tokens.revoked')).to.equal(4);
  });

  it('counts expirations and delivered events, by type and group, with their lag', async () => {
    const store = fx.store();
    const broadcast = fx.lifecycle();
    const member = fx.lifecycle({ group: 'billing', consumer: 'm1' });
    // A token that expired while no lifecycle ran: reaped (journaled) at the start, its lag counts from its deadline.
    const late = await store.issue('user-late', { ttl: 1 });
    remember('user-late', late.token, late.jti);
    await untilTime(late.expiresAt + 1200);
    const catchUp = fx.lifecycle();
    const reaped = nextEvent<TokenEvent>(catchUp, 'expired', (e) => e.jti === late.jti, 5000);
    await catchUp.start();
    await reaped;
    await catchUp.stop();
    const fromDeadline = (await collect()).find((p) => p.name === 'rtl.event.lag' && p.attributes.type === 'expired' && !('group' in p.attributes))!;
    expect(fromDeadline.max).to.be.within(1.1, 4);

    await broadcast.start();
    await member.start();
    let t: { token: string; jti: string } | undefined;
    const delta = await change(async () => {
      const expiredHere = nextEvent<TokenEvent>(broadcast, 'expired', () => true, 5000);
      const expiredThere = nextEvent<TokenEvent>(member, 'expired', () => true, 5000);
      t = await store.issue('user-eve', { ttl: 1 });
      await Promise.all([expiredHere, expiredThere]);
    });
    remember('user-eve', t!.token, t!.jti);
    expect(delta('rtl.tokens.expired')).to.equal(2); // once per lifecycle that delivered it
    expect(delta('rtl.events.delivered', { type: 'issued', group: undefined })).to.equal(1);
    expect(delta('rtl.events.delivered', { type: 'expired', group: undefined })).to.equal(1);
    expect(delta('rtl.events.delivered', { type: 'issued', group: 'billing' })).to.equal(1);
    expect(delta('rtl.events.delivered', { type: 'expired', group: 'billing' })).to.equal(1);
    expect(delta('rtl.event.lag', { type: 'expired' })).to.equal(2);
    expect(delta('rtl.event.lag', { type: 'issued' })).to.equal(2);
    const lag = (await collect()).filter((p) => p.name === 'rtl.event.lag' && p.attributes.type === 'expired');
    for (const p of lag) expect(p.max, 'expired: from the deadline, in seconds').to.be.within(0, 3);

    // An event that waits behind a slow handler shows the wait, in seconds.
    let slowStarted = false;
    broadcast.on('issued', async (e) => {
      if (e.sub !== 'user-slowpoke') return;
      slowStarted = true;
      await new Promise((r) => setTimeout(r, 300));
    });
    const slow = await change(async () => {
      const next = nextEvent<TokenEvent>(broadcast, 'issued', (e) => e.sub === 'user-next', 5000);
      await store.issue('user-slowpoke');
      // Events of different tokens have no order of their own (Guarantees): user-next is
      // issued once the slow handler runs, so it waits behind it.
      await waitFor('the slow handler to start', () => slowStarted, 5000, 5);
      await store.issue('user-next');
      await next;
    });
    remember('user-slowpoke', 'user-next');
    expect(slow('rtl.event.lag', { type: 'issued', group: undefined })).to.equal(2);
    const waited = (await collect()).find((p) => p.name === 'rtl.event.lag' && p.attributes.type === 'issued' && !('group' in p.attributes))!;
    expect(waited.max).to.be.within(0.25, 2);
  });

  it('observes journal length, pending and dead letters per group, synced and the cache, from the last poll, with no Redis call', async () => {
    const store = fx.store();
    const client = fx.server.client();
    let sent = 0;
    const send = client.sendCommand.bind(client);
    (client as { sendCommand: Redis['sendCommand'] }).sendCommand = (...args) => {
      sent++;
      return send(...args);
    };
    const member = fx.lifecycle({ redis: client, group: 'audit', consumer: 'm1', claimAfterMs: 200, maxDeliveries: 2, pollInterval: 60_000 });
    let release: () => void = () => {};
    let holding = false;
    member.on('issued', async (e) => {
      if (e.sub === 'user-poison') throw new Error('always fails');
      if (e.sub === 'user-hold') {
        holding = true;
        await new Promise<void>((resolve) => { release = resolve; });
      }
    });
    let dead = false;
    member.on('error', (err) => { dead ||= err instanceof DeadLetterError; });
    await member.start();
    const tokens = [await store.issue('user-poison'), await store.issue('user-ok')];
    remember('user-poison', 'user-hold', 'user-ok', ...tokens.flatMap((t) => [t.token, t.jti]));
    // The poll (here by hand: its timer is set far off) redelivers, dead-letters, and reads the gauges' values.
    const poll = () => (member as unknown as { poll(): void }).poll();
    await waitFor('the poison event to be dead-lettered', () => {
      poll();
      return dead;
    }, 8000, 100);
    poll();
    const all = await waitFor('the gauges to show the poll', async () => {
      const now = await collect();
      return total(now, 'rtl.group.dead_letters', { group: 'audit' }) === 1 ? now : undefined;
    }, 5000);
    expect(total(all, 'rtl.journal.length')).to.equal(2); // the two issued events of this prefix
    expect(total(all, 'rtl.lifecycle.synced', { group: 'audit' })).to.equal(1);
    expect(total(all, 'rtl.group.pending', { group: 'audit' })).to.equal(0);

    // An event whose handler is still running is pending in its group.
    const held = await store.issue('user-hold');
    remember(held.token, held.jti);
    await waitFor('the handler to hold the event', () => holding);
    poll();
    await waitFor('the pending gauge to show it', async () => total(await collect(), 'rtl.group.pending', { group: 'audit' }) === 1);
    release();
    await waitFor('the pending gauge to clear', async () => {
      poll();
      return total(await collect(), 'rtl.group.pending', { group: 'audit' }) === 0;
    }, 5000, 50);

    // The collection itself reads only what the poll left: not one command.
    await waitFor('the lifecycle to be quiet', async () => {
      const before = sent;
      await new Promise((r) => setTimeout(r, 300));
      return sent === before;
    }, 5000);
    const before = sent;
    await collect();
    await collect();
    expect(sent - before).to.equal(0);

    // The cache's gauges: a token held, its bytes, and a feed that proved itself fresh.
    const t = tokens[1]!;
    const cache = (store as unknown as { cache: TokenCache }).cache;
    await waitFor('the cache to take the token', async () => {
      await store.verify(t.token);
      return cache.size > 0;
    }, 5000, 5);
    const now = await collect();
    expect(total(now, 'rtl.cache.entries')).to.be.at.least(1);
    expect(total(now, 'rtl.cache.memory')).to.be.at.least(256);
    expect(total(now, 'rtl.cache.staleness')).to.be.within(0, 1);

  });

  it('counts a lifecycle\'s reconnect after its subscription dropped', async () => {
    const lifecycle = fx.lifecycle();
    lifecycle.on('error', () => {}); // the dropped link may be reported too: not what this test is about
    await lifecycle.start();
    const delta = await change(async () => {
      const resynced = nextEvent<boolean>(lifecycle, 'sync', (v) => v === true, 8000);
      await fx.redis.client('KILL', 'TYPE', 'pubsub');
      await resynced;
    });
    expect(delta('rtl.reconnects', { component: 'lifecycle' })).to.equal(1);
  });
});
