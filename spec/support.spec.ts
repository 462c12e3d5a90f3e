import { expect } from 'chai';
import { RedisServer } from './support/redis.js';

describe('spec/support', () => {
  it('starts, kills and restarts a private redis-server', async () => {
    const server = await RedisServer.start();
    try {
      const client = server.client();
      expect(await client.ping()).to.equal('PONG');
      expect(server.port).to.not.equal(6379);
      await server.restart();
      expect(await client.ping()).to.equal('PONG');
    } finally {
      await server.stop();
    }
  });

  it('rejects with the spawn error when redis-server cannot be started (ENOENT for a missing executable)', async () => {
    const err = await RedisServer.start({ command: 'redis-server-that-does-not-exist' }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as NodeJS.ErrnoException).code).to.equal('ENOENT');
  });

  it('rejects, saying what redis-server printed, when it exits before answering', async () => {
    const err = await RedisServer.start({ args: ['--no-such-option', 'x'] }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.match(/redis-server exited with 1: .*no-such-option/s);
  });
});
