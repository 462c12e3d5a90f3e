// The lifecycle as an API: start() settles when Redis does not answer, the event map is
// closed (a misspelt name does not compile), and the usual EventEmitter idioms work
// (node:events `on` / `once`, off / removeListener, close(), Symbol.asyncDispose).
import { EventEmitter, on, once } from 'node:events';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ConfigError, TokenLifecycle, TokenStore, type TokenEvent } from '../lib/index.js';
import { lifecycleDefaults } from '../lib/events/lifecycle.js';
import { SECRET, useRedis } from './support/fixture.js';
import { RedisServer, freePort, testPrefix } from './support/redis.js';
import { nextEvent, waitFor } from './support/wait.js';

/** Settles `promise`, returning what it rejected with (undefined if it resolved) and how long it took. */
async function settle(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    await promise;
    return { error: undefined, ms: Date.now() - t0 };
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
}

/** How many client connections of a server are subscribed to something. */
async function subscribers(redis: Redis): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  return list.split('\n').filter((line) => /\bsub=[1-9]/.test(line)).length;
}

describe('TokenLifecycle API', () => {
  const fx = useRedis();

  describe('start() when Redis does not answer', () => {
    const clients: Redis[] = [];
    /** A default ioredis client (reconnects forever, queues commands) of a port nothing listens on. */
    async function unreachable(): Promise<Redis> {
      const redis = new Redis(await freePort(), '127.0.0.1');
      redis.on('error', () => {});
      clients.push(redis);
      return redis;
    }
    afterEach(() => {
      for (const redis of clients.splice(0)) redis.disconnect();
    });

    it('has a default start timeout of at most 10 s', () => {
      expect(lifecycleDefaults.startTimeout).to.be.a('number').and.to.be.at.most(10_000);
    });

    it('rejects with ERR_STORE_UNAVAILABLE within startTimeout on a port nothing listens on, emits error, and stops', async () => {
      const lifecycle = new TokenLifecycle({ redis: await unreachable(), prefix: testPrefix(), startTimeout: 500 });
      const errors: Error[] = [];
      lifecycle.on('error', (err) => { errors.push(err); });
      const { error, ms } = await settle(lifecycle.start());
      expect(error).to.have.property('code', 'ERR_STORE_UNAVAILABLE');
      expect(ms).to.be.within(450, 1500);
      expect(errors).to.deep.equal([error]);
      expect(lifecycle.running).to.equal(false);
      // Stopped: a second stop() is a no-op, and a new start() tries again (and times out again).
      await lifecycle.stop();
      const again = await settle(lifecycle.start({ timeout: 300 }));
      expect(again.error).to.have.property('code', 'ERR_STORE_UNAVAILABLE');
      expect(again.ms).to.be.within(250, 1300);
    });

    it('start({ timeout }) overrides startTimeout', async () => {
      const lifecycle = new TokenLifecycle({ redis: await unreachable(), prefix: testPrefix() });
      lifecycle.on('error', () => {});
      const { error, ms } = await settle(lifecycle.start({ timeout: 400 }));
      expect(error).to.have.property('code', 'ERR_STORE_UNAVAILABLE');
      expect(ms).to.be.within(350, 1400);
    });

    it('start({ signal }) rejects with the signal\'s reason when it aborts, without an error event', async () => {
      const lifecycle = new TokenLifecycle({ redis: await unreachable(), prefix: testPrefix(), startTimeout: 10_000 });
      const errors: Error[] = [];
      lifecycle.on('error', (err) => { errors.push(err); });
      const controller = new AbortController();
      const reason = new Error('shutting down');
      setTimeout(() => controller.abort(reason), 200);
      const { error, ms } = await settle(lifecycle.start({ signal: controller.signal }));
      expect(error).to.equal(reason);
      expect(ms).to.be.within(150, 1200);
      expect(errors).to.deep.equal([]);
      expect(lifecycle.running).to.equal(false);
      // Already aborted: rejects at once, with AbortSignal.abort()'s AbortError.
      const aborted = await settle(lifecycle.start({ signal: AbortSignal.abort() }));
      expect(aborted.error).to.have.property('name', 'AbortError');
      expect(aborted.ms).to.be.below(100);
    });

    it('stop() during start() makes start() reject with an AbortError', async () => {
      const lifecycle = new TokenLifecycle({ redis: await unreachable(), prefix: testPrefix() });
      const errors: Error[] = [];
      lifecycle.on('error', (err) => { errors.push(err); });
      const started = settle(lifecycle.start());
      await lifecycle.stop();
      const { error, ms } = await started;
      expect(error).to.have.property('name', 'AbortError');
      expect(ms).to.be.below(1000);
      expect(errors).to.deep.equal([]);
    });

    it('rejects with ERR_STORE_UNAVAILABLE within the deadline on a SIGSTOPped redis-server, leaves nothing behind, and starts once it answers', async function () {
      this.timeout(20_000);
      const server = await RedisServer.start();
      const redis = server.client();
      try {
        await redis.ping();
        const prefix = testPrefix();
        const lifecycle = new TokenLifecycle({ redis, prefix, startTimeout: 600 });
        const errors: Error[] = [];
        lifecycle.on('error', (err) => { errors.push(err); });
        server.proc!.kill('SIGSTOP');
        let result: { error: unknown; ms: number };
        try {
          result = await settle(lifecycle.start());
        } finally {
          server.proc!.kill('SIGCONT');
        }
        expect(result.error).to.have.property('code', 'ERR_STORE_UNAVAILABLE');
        expect(result.ms).to.be.within(550, 1600);
        expect(errors).to.have.length(1);
        expect(errors[0]).to.have.property('code', 'ERR_STORE_UNAVAILABLE');
        // Redis answers again: the commands of the abandoned start are answered before this PING.
        await redis.ping();
        // The abandoned start must not carry on (no subscription of its own): start again and
        // count subscriber connections, and check events flow.
        await lifecycle.start();
        expect(lifecycle.running).to.equal(true);
        const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix, cache: false });
        const issued = nextEvent<TokenEvent>(lifecycle, 'issued', () => true, 3000);
        const t = await store.issue('paused');
        expect((await issued).jti).to.equal(t.jti);
        expect(await subscribers(redis)).to.equal(1);
        await lifecycle.stop();
        await (store as { close?: () => Promise<void> }).close?.();
      } finally {
        server.proc?.kill('SIGCONT');
        await server.stop();
      }
    });
  });

  it('validates startTimeout and configure at construction, and start() options, naming the option', async () => {
    for (const [options, option] of [
      [{ startTimeout: 0 }, 'startTimeout'],
      [{ startTimeout: -1 }, 'startTimeout'],
      [{ startTimeout: 1.5 }, 'startTimeout'],
      [{ startTimeout: '1000' }, 'startTimeout'],
      [{ configure: 'no' }, 'configure'],
    ] as const) {
      expect(() => new TokenLifecycle({ redis: fx.redis, ...(options as object) }), JSON.stringify(options))
        .to.throw(ConfigError).with.property('option', option);
    }
    const lifecycle = fx.lifecycle();
    for (const [options, option] of [
      [{ timeout: 0 }, 'timeout'],
      [{ timeout: 'soon' }, 'timeout'],
      [{ signal: {} }, 'signal'],
    ] as const) {
      const { error } = await settle(lifecycle.start(options as never));
      expect(error, JSON.stringify(options)).to.be.instanceOf(ConfigError).with.property('option', option);
    }
    expect(lifecycle.running).to.equal(false);
  });

  it('types: only the documented events, with their value types, compile', () => {
    const lifecycle = fx.lifecycle();
    const seen: unknown[] = [];
    // @ts-expect-error -- a misspelt event name
    lifecycle.on('expird', (e) => seen.push(e));
    // @ts-expect-error -- no such event
    lifecycle.once('anything', () => {});
    // @ts-expect-error -- `expired` carries a TokenEvent, not a string
    lifecycle.on('expired', (e: string) => seen.push(e));
    // @ts-expect-error -- `sync` carries a boolean
    lifecycle.off('sync', (s: string) => seen.push(s));
    // These compile, with the value typed by the event.
    const onExpired = (e: TokenEvent) => { const jti: string = e.jti; seen.push(jti); };
    lifecycle.on('expired', onExpired).off('expired', onExpired);
    lifecycle.on('sync', (s) => { const b: boolean = s; seen.push(b); });
    lifecycle.on('gap', (g) => { seen.push(g.reason satisfies 'trimmed' | 'reconnect'); });
    lifecycle.on('error', (err) => { seen.push(err.message); });
    expect(lifecycle).to.be.instanceOf(EventEmitter);
    expect(lifecycle.listenerCount('expired')).to.equal(1); // the (e: string) one; onExpired was removed
  });

  it('works with node:events on(): for await receives a real expired event, and ending the loop removes its listeners', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    const errorListeners = lifecycle.listenerCount('error');
    const t = await store.issue('iris', { ttl: 1 });
    const signal = AbortSignal.timeout(5000);
    let got: TokenEvent | undefined;
    for await (const [e] of on(lifecycle, 'expired', { signal })) {
      const event = e as TokenEvent;
      if (event.jti === t.jti) {
        got = event;
        break;
      }
    }
    expect(got).to.deep.include({ type: 'expired', jti: t.jti, sub: 'iris' });
    expect(lifecycle.listenerCount('expired')).to.equal(0);
    expect(lifecycle.listenerCount('error')).to.equal(errorListeners);
  });

  it('works with node:events once(): once(lifecycle, "sync") resolves with [true] as start() completes', async () => {
    const lifecycle = fx.lifecycle();
    const synced = once(lifecycle, 'sync', { signal: AbortSignal.timeout(5000) });
    await lifecycle.start();
    expect(await synced).to.deep.equal([true]);
    expect(lifecycle.listenerCount('sync')).to.equal(0);
    expect(lifecycle.listenerCount('error')).to.equal(0);
  });

  it('off() and removeListener() remove a listener (also one added with once); once listeners are awaited too', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const calls: string[] = [];
    const removedOn = () => { calls.push('removed-on'); };
    const removedOnce = () => { calls.push('removed-once'); };
    lifecycle.on('issued', (e) => { calls.push(`on ${e.sub}`); });
    lifecycle.once('issued', async (e) => {
      // Awaited: the next event waits for this.
      await new Promise((r) => setTimeout(r, 100));
      calls.push(`once ${e.sub}`);
    });
    lifecycle.on('issued', removedOn).removeListener('issued', removedOn);
    lifecycle.once('issued', removedOnce).off('issued', removedOnce);
    await lifecycle.start();
    await store.issue('a');
    // Events of different tokens have no order of their own (Guarantees): b is issued once a is being handled.
    await waitFor('the first event', () => calls.includes('on a'));
    await store.issue('b');
    await waitFor('both events', () => calls.includes('on b'));
    expect(calls).to.deep.equal(['on a', 'once a', 'on b']);
  });

  it('close() stops it, is safe twice, and `await using` (Symbol.asyncDispose) does the same', async () => {
    const lifecycle = fx.lifecycle();
    await lifecycle.start();
    expect(lifecycle.running).to.equal(true);
    await Promise.all([lifecycle.close(), lifecycle.close()]);
    await lifecycle.close();
    expect(lifecycle.running).to.equal(false);
    // The subscriber connection closes in the background: the server sees it go shortly after.
    await waitFor('its subscriber connection to close', async () => (await subscribers(fx.redis)) === 0, 2000);
    let disposed: TokenLifecycle | undefined;
    {
      await using disposable = fx.lifecycle();
      disposed = disposable;
      await disposable.start();
      expect(await subscribers(fx.redis)).to.equal(1);
    }
    expect(disposed.running).to.equal(false);
    await disposed[Symbol.asyncDispose](); // and again: a no-op
    await waitFor('its subscriber connection to close', async () => (await subscribers(fx.redis)) === 0, 2000);
  });
});
