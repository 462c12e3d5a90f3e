// One private redis-server per `describe`, a fresh key prefix per store.
import type { Redis } from 'ioredis';
import { TokenLifecycle, TokenStore, type TokenEvent, type TokenLifecycleOptions, type TokenStoreOptions } from '../../lib/index.js';
import { RedisServer, testPrefix } from './redis.js';

export const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';

export interface Fixture {
  server: RedisServer;
  redis: Redis;
  store(options?: Partial<TokenStoreOptions>): TokenStore;
  lifecycle(options?: Partial<TokenLifecycleOptions>): TokenLifecycle;
  /** Every event a lifecycle delivers, in order. */
  record(lifecycle: TokenLifecycle): TokenEvent[];
}

/** Registers before/after hooks on the current describe and returns the fixture they fill. */
export function useRedis(args: string[] = []): Fixture {
  const lifecycles: TokenLifecycle[] = [];
  const stores: TokenStore[] = [];
  let prefix = testPrefix();
  const fixture: Fixture = {
    server: undefined as unknown as RedisServer,
    redis: undefined as unknown as Redis,
    store(options: Partial<TokenStoreOptions> = {}): TokenStore {
      const store = new TokenStore({ redis: fixture.redis, key: SECRET, issuer: 'https://issuer.test', prefix, ...options });
      stores.push(store);
      return store;
    },
    lifecycle(options: Partial<TokenLifecycleOptions> = {}) {
      const lifecycle = new TokenLifecycle({ redis: fixture.redis, prefix, ...options });
      lifecycles.push(lifecycle);
      return lifecycle;
    },
    record(lifecycle: TokenLifecycle) {
      const events: TokenEvent[] = [];
      for (const type of ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const) lifecycle.on(type, (e) => { events.push(e); });
      return events;
    },
  };
  before(async () => {
    fixture.server = await RedisServer.start({ args });
    fixture.redis = fixture.server.client();
  });
  beforeEach(() => {
    prefix = testPrefix();
  });
  afterEach(async () => {
    await Promise.all([...lifecycles.splice(0).map((l) => l.stop()), ...stores.splice(0).map((s) => s.close())]);
  });
  after(async () => {
    await fixture.server?.stop();
  });
  return fixture;
}
