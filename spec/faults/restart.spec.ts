// Fault case 2: redis-server SIGKILLed during churn and restarted with its AOF
// (appendfsync always), the listeners left running. Redis stays down ~1.5 s, so
// tokens expire while it is down: Redis fires no event for those, the sweeper
// reaps them after the restart.
import { expect } from 'chai';
import { TokenLifecycle, TokenStore, type TokenEvent } from '../../lib/index.js';
import { FaultCase } from './harness.js';
import { SECRET } from '../support/fixture.js';
import { RedisServer, inFlight, testPrefix } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

describe('faults: redis-server restart', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('SIGKILL and restart with appendonly yes (fsync always), down 1.5 s: every event once, expiries while down reaped', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('2 redis restart', { args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const { members } = await c.group('audit', 2);
    const { lifecycle } = await c.broadcast();

    let downAt = 0;
    let upAt = 0;
    let syncedAt = 0;
    const restart = async () => {
      downAt = Date.now();
      // From the kill until every subscriber is back, a DEL's notification can be missed: it is
      // then found by the recheck after the reconnect, or, once its deadline has passed, reported
      // as an expiry (the documented limit). The churn marks DELs made in that window, and
      // DELs seen but not yet reaped when Redis goes down.
      c!.churn.blind = true;
      await c!.blindUnreapedDels();
      await c!.server.restart({ downMs: 1500 });
      upAt = Date.now();
      await waitFor('every lifecycle subscribed again', () => [lifecycle, ...members.map((m) => m.lifecycle)].every((l) => l.synced), 15_000, 10);
      syncedAt = Date.now();
      c!.churn.blind = false;
    };
    let restarting: Promise<void> | undefined;
    await c.churn.run({
      batches: 30, size: 20, gapMs: 60, revokeAllEvery: 6,
      between: (i) => { if (i === 10) restarting = restart(); },
    });
    await restarting;
    // Tokens that were live when Redis went down and whose deadline passed before it came back.
    const expiredWhileDown = [...c.churn.tokens.values()].filter((t) => t.issuedAt < downAt && t.deadline > downAt && t.deadline < upAt);

    // Every lifecycle is back in sync on the new process.
    await waitFor('every lifecycle in sync after the restart', () => [lifecycle, ...members.map((m) => m.lifecycle)].every((l) => l.synced), 15_000, 50);
    await c.settle();
    await c.check(`down ${upAt - downAt} ms (${downAt}–${upAt}, resubscribed ${syncedAt}); ${expiredWhileDown.length} tokens reached their deadline while Redis was down`);
    expect(expiredWhileDown.length, 'tokens reaching their deadline while down').to.be.greaterThan(0);
  });

  it('a DEL seen just before Redis went down is still a revocation, though the deadline passed while it was down', async function () {
    this.timeout(30_000);
    const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    try {
      const prefix = testPrefix();
      const store = new TokenStore({ redis: server.client(), key: SECRET, issuer: 'https://issuer.test', prefix });
      const lifecycleRedis = server.client();
      const lifecycle = new TokenLifecycle({ redis: lifecycleRedis, prefix, pollInterval: 500 });
      const ends: TokenEvent[] = [];
      lifecycle.on('revoked', (e) => { ends.push(e); });
      lifecycle.on('expired', (e) => { ends.push(e); });
      lifecycle.on('error', () => {}); // reads fail while Redis is down
      await lifecycle.start();
      const t = await store.issue('alice', { ttl: 1 });
      const other = server.client();
      const sleeper = server.client();
      await sleeper.ping();
      expect(await other.del(store.keys.token(store.keys.bucketOf(t.jti), t.jti))).to.equal(1);
      // The notification reaches the lifecycle; Redis is held (DEBUG SLEEP) before it runs the
      // reap the lifecycle sends, then killed: the reap runs only after the restart, late.
      const slept = sleeper.call('DEBUG', 'SLEEP', '3').catch(() => undefined);
      await waitFor('DEBUG SLEEP to be sent and the lifecycle\'s reap of the token to wait on it',
        () => inFlight(sleeper, 'debug') && inFlight(lifecycleRedis, 'evalsha', t.jti), 2000, 1);
      await server.restart({ downMs: 1500 });
      await slept;
      expect(Date.now(), 'the deadline passed while Redis was down').to.be.greaterThan(t.expiresAt);
      await waitFor('the end of the token', () => ends.some((e) => e.jti === t.jti), 15_000);
      await lifecycle.stop();
      expect(ends.map((e) => [e.type, e.reason])).to.deep.equal([['revoked', 'external']]);
    } finally {
      await server.stop();
    }
  });
});
