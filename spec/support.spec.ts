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
});
