// Managed Redis: CONFIG renamed away or refused by ACL. The lifecycle cannot set
// notify-keyspace-events, so it probes whether the notifications it needs arrive.
import { expect } from 'chai';
import { ConfigError, TokenLifecycle, TokenStore } from '../lib/index.js';
import { SECRET } from './support/fixture.js';
import { RedisServer, testPrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

async function startError(lifecycle: TokenLifecycle): Promise<unknown> {
  try {
    await lifecycle.start();
  } catch (err) {
    return err;
  }
  throw new Error('start() should have failed');
}

describe('managed Redis (CONFIG refused)', () => {
  const servers: RedisServer[] = [];
  after(async () => { await Promise.all(servers.map((s) => s.stop())); });
  const start = async (args: string[]) => {
    const server = await RedisServer.start({ args });
    servers.push(server);
    return server;
  };

  it('works when the letters are preset in redis.conf', async () => {
    const server = await start(['--rename-command', 'CONFIG', '""', '--notify-keyspace-events', 'Egxe']);
    const redis = server.client();
    const prefix = testPrefix();
    const store = new TokenStore({ redis, key: SECRET, issuer: 'i', prefix });
    const lifecycle = new TokenLifecycle({ redis, prefix });
    const types: string[] = [];
    lifecycle.on('issued', () => { types.push('issued'); });
    lifecycle.on('expired', () => { types.push('expired'); });
    await lifecycle.start();
    await store.issue('alice', { ttl: 1 });
    await waitFor('issued and expired', () => types.length >= 2, 4000);
    expect(types).to.deep.equal(['issued', 'expired']);
    await lifecycle.stop();
  });

  it('fails with a ConfigError naming notify-keyspace-events and the letters when they are missing', async () => {
    const server = await start(['--rename-command', 'CONFIG', '""', '--notify-keyspace-events', 'Ex']);
    const lifecycle = new TokenLifecycle({ redis: server.client(), prefix: testPrefix() });
    const err = await startError(lifecycle);
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as ConfigError).option).to.equal('notify-keyspace-events');
    expect((err as ConfigError).message).to.include('Egxe').and.include('missing: "g"');
    expect(lifecycle.running).to.equal(false);
  });

  it('fails the same way under an ACL user without CONFIG (NOPERM)', async () => {
    const server = await start([]);
    const admin = server.client();
    await admin.acl('SETUSER', 'app', 'on', '>pw', '~*', '&*', '+@all', '-config');
    const lifecycle = new TokenLifecycle({ redis: server.client({ username: 'app', password: 'pw' }), prefix: testPrefix() });
    const err = await startError(lifecycle);
    expect(err).to.be.instanceOf(ConfigError).with.property('option', 'notify-keyspace-events');
    await admin.config('SET', 'notify-keyspace-events', 'EA');
    const again = new TokenLifecycle({ redis: server.client({ username: 'app', password: 'pw' }), prefix: testPrefix() });
    await again.start();
    expect(again.running).to.equal(true);
    await again.stop();
  });
});
