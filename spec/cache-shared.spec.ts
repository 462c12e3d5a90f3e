// The verified-token cache fed by a TokenLifecycle the application already runs
// (`cache: { lifecycle }`): no connection of the store's own, the same bound on staleness.
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ConfigError, type TokenLifecycle, type TokenStore } from '../lib/index.js';
import { cacheOf, outcome, refusedAfterFlush, untilRefused, warm } from './support/verify.js';
import { useRedis } from './support/fixture.js';
import { StallingProxy } from './support/proxy.js';
import { waitFor } from './support/wait.js';



describe('verified-token cache sharing a lifecycle (cache.lifecycle)', () => {
  const fx = useRedis();

  async function shared(options: { redis?: Redis; maxStaleness?: number; timeout?: number } = {}): Promise<{ store: TokenStore; lifecycle: TokenLifecycle }> {
    const lifecycle = fx.lifecycle(options.redis ? { redis: options.redis } : {});
    lifecycle.on('error', () => {}); // the stalled link's test disconnects under it
    await lifecycle.start();
    const store = fx.store({ ...(options.redis ? { redis: options.redis } : {}), ...(options.timeout ? { timeout: options.timeout } : {}), cache: { lifecycle, maxStaleness: options.maxStaleness ?? 1000 } });
    return { store, lifecycle };
  }

  it('answers from memory with no connection of its own', async () => {
    const { store } = await shared();
    const { token } = await store.issue('alice');
    await warm(store, token);
    const names = String(await fx.redis.client('LIST'));
    expect(names).to.not.include('rtl-revocation-feed');
    const lookups = Number(/cmdstat_mget:calls=(\d+)/.exec(await fx.redis.info('commandstats'))?.[1] ?? 0);
    for (let i = 0; i < 50; i++) expect(await outcome(store, token)).to.equal('ok');
    const after = Number(/cmdstat_mget:calls=(\d+)/.exec(await fx.redis.info('commandstats'))?.[1] ?? 0);
    // The epoch check (one MGET per maxStaleness / 4) may run meanwhile; 50 verifications do not ask.
    expect(after - lookups).to.be.below(5);
  });

  it('stops passing a token revoked by another process within maxStaleness, also while a handler runs long', async () => {
    const { store, lifecycle } = await shared();
    let slow = 0;
    lifecycle.on('issued', async (e) => {
      if (e.sub !== 'slowpoke') return;
      slow++;
      await new Promise((r) => setTimeout(r, 4000));
    });
    const other = fx.store({ redis: fx.server.client(), cache: false });
    const { token, jti } = await store.issue('alice');
    await warm(store, token);
    // This handler holds the lifecycle: nothing is read (so nothing proved) until it ends.
    await store.issue('slowpoke');
    await waitFor('the slow handler', () => slow > 0, 3000, 5);
    expect(await outcome(store, token)).to.equal('ok');
    const refused = untilRefused(store, token, 2000);
    expect(await other.revoke(jti)).to.equal(true);
    const { ms, code } = await refused;
    expect(code).to.equal('ERR_TOKEN_REVOKED');
    // maxStaleness from the last read that proved it (the one that brought slowpoke, just
    // before the revoke), plus the 10 ms between two tries of untilRefused.
    expect(ms).to.be.below(1000 + 20);
  });

  it('after FLUSHALL, cached tokens stop passing within maxStaleness', async () => {
    const { store } = await shared();
    const { ms, code } = await refusedAfterFlush(fx.redis, store);
    expect(code).to.equal('ERR_TOKEN_REVOKED');
    expect(ms).to.be.below(1000);
  });

  it('a lifecycle that stops leaves the cache unused; started again, it forgets what it held', async () => {
    const { store, lifecycle } = await shared({ maxStaleness: 300 });
    const { token } = await store.issue('alice');
    await warm(store, token);
    await lifecycle.stop();
    await new Promise((r) => setTimeout(r, 400));
    expect(cacheOf(store).get(token)).to.equal(undefined);
    await lifecycle.start();
    await waitFor('the cache to be flushed by the new run', () => cacheOf(store).size === 0, 2000);
    await warm(store, token);
  });

  it('a link that stalls: the cache stops answering within maxStaleness + 0.5 s, and verify fails closed', async function () {
    this.timeout(20_000);
    const proxy = await StallingProxy.start(fx.server.port);
    const client = new Redis(proxy.port, '127.0.0.1');
    client.on('error', () => {});
    try {
      const { store } = await shared({ redis: client, timeout: 300 });
      const direct = fx.store({ redis: fx.server.client(), cache: false });
      const { token, jti } = await store.issue('alice');
      await warm(store, token);
      proxy.stall();
      const stalledAt = performance.now();
      expect(await direct.revoke(jti)).to.equal(true);
      const revokedAfter = performance.now() - stalledAt;
      const { ms, code } = await untilRefused(store, token, 3000);
      expect(code).to.equal('ERR_STORE_UNAVAILABLE');
      expect(ms + revokedAfter).to.be.below(1500);
      proxy.resume();
    } finally {
      await proxy.stop();
      client.disconnect();
    }
  });

  it('refuses a lifecycle it cannot share, naming cache.lifecycle', () => {
    for (const lifecycle of [fx.lifecycle({ group: 'audit' }), fx.lifecycle({ delivery: 'keyevents' }), fx.lifecycle({ prefix: 'another:' }), {}]) {
      const err = (() => {
        try {
          fx.store({ cache: { lifecycle: lifecycle as never } });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(ConfigError).with.property('option', 'cache.lifecycle');
    }
  });
});
