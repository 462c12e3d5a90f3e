// The keyevent subscriber (lib/events/subscriber.ts) on its own, against a real
// redis-server: it subscribes on a connection of its own (a duplicate() of the user's),
// delivers keyevents and the journal's wake messages, reports `lost` when that connection drops
// and `resumed` once it has subscribed again, and stop() closes it.
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { KeyeventSubscriber } from '../lib/events/subscriber.js';
import { channel } from '../lib/events/keyevents.js';
import { KeySchema } from '../lib/redis/keys.js';
import { useRedis } from './support/fixture.js';
import { testPrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

describe('KeyeventSubscriber (lib/events/subscriber.ts)', () => {
  const fx = useRedis();
  let keys: KeySchema;
  let channels: string[];
  let calls: string[];
  let messages: [string, string][];
  let subscriber: KeyeventSubscriber | undefined;
  let admin: Redis;

  before(async () => {
    admin = fx.server.client();
    // Our own server: on a single node the subscriber leaves the setting to the lifecycle.
    await admin.config('SET', 'notify-keyspace-events', 'Eg');
  });

  beforeEach(() => {
    keys = new KeySchema(testPrefix(), 1);
    channels = [channel(0, 'del'), keys.wake()];
    calls = [];
    messages = [];
  });

  afterEach(() => {
    subscriber?.stop();
    subscriber = undefined;
  });

  function make(redis: Redis = fx.redis): KeyeventSubscriber {
    subscriber = new KeyeventSubscriber(redis, channels, {
      message: (event, key) => { messages.push([event, key]); },
      lost: () => { calls.push('lost'); },
      resumed: () => { calls.push('resumed'); },
    });
    return subscriber;
  }

  /** Subscribers of each of our channels, as Redis counts them. */
  async function numsub(): Promise<number[]> {
    const reply = (await admin.pubsub('NUMSUB', ...channels)) as (string | number)[];
    return channels.map((_, i) => Number(reply[2 * i + 1]));
  }

  /** Our subscriber's connections, as Redis lists them (CLIENT LIST TYPE pubsub). */
  async function pubsubClients(): Promise<string[]> {
    return ((await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).split('\n').filter(Boolean);
  }

  it('start() resolves once subscribed on a connection of its own; the user\'s connection stays usable', async () => {
    const redis = fx.server.client();
    const s = make(redis);
    expect(s.connected, 'before start()').to.equal(false);
    await s.start();
    expect(s.connected).to.equal(true);
    expect(await numsub(), 'subscribed when start() resolves').to.deep.equal([1, 1]);
    expect(await pubsubClients()).to.have.length(1);
    const userId = Number(await redis.client('ID'));
    expect((await pubsubClients())[0]).to.not.match(new RegExp(`^id=${userId} `));
    expect(await redis.set(`${keys.prefix}x`, '1'), 'not in subscriber mode').to.equal('OK');
    expect(calls).to.deep.equal([]);
  });

  it('delivers a keyevent as (event, key), and a journal\'s wake message as (\'xadd\', journal key)', async () => {
    const s = make();
    await s.start();
    const key = keys.token(0, 'some-jti');
    await admin.set(key, '1');
    await admin.del(key);
    // What a script that journals publishes (include/journal.lua).
    await admin.publish(keys.wake(), keys.log(0));
    await admin.set(`${keys.prefix}other`, '1'); // a set: not subscribed
    await admin.del(`${keys.prefix}other`);
    await waitFor('three messages', () => messages.length >= 3);
    expect(messages).to.deep.equal([['del', key], ['xadd', keys.log(0)], ['del', `${keys.prefix}other`]]);
  });

  it('reports `lost` when its connection is killed and `resumed` once subscribed again, then delivers again', async () => {
    const s = make();
    await s.start();
    const [line] = await pubsubClients();
    const id = /^id=(\d+) /.exec(line!)![1]!;
    expect(await admin.client('KILL', 'ID', id)).to.equal(1);
    await waitFor('`lost` then `resumed`', () => calls.length >= 2, 5000);
    expect(calls).to.deep.equal(['lost', 'resumed']);
    expect(s.connected).to.equal(true);
    expect(await numsub(), 'subscribed again on a new connection').to.deep.equal([1, 1]);
    const [again] = await pubsubClients();
    expect(again).to.not.match(new RegExp(`^id=${id} `));
    const key = keys.token(0, 'after');
    await admin.set(key, '1');
    await admin.del(key);
    await waitFor('the keyevent after the reconnect', () => messages.length >= 1);
    expect(messages).to.deep.equal([['del', key]]);
  });

  it('never reports `lost` twice without `resumed` between, over kills in a row', async () => {
    const s = make();
    await s.start();
    let killed = 0;
    for (let i = 0; i < 4; i++) {
      // The next connection, as soon as it is in subscriber mode (it may not have told us yet).
      const line = await waitFor('a new pubsub connection', async () => (await pubsubClients()).find((l) => Number(/^id=(\d+) /.exec(l)![1]) > killed));
      killed = Number(/^id=(\d+) /.exec(line)![1]);
      expect(await admin.client('KILL', 'ID', String(killed))).to.equal(1);
    }
    // The connection after the last kill is subscribed, and the subscriber has said so.
    await waitFor('`resumed` on a connection after the last kill', async () =>
      calls.at(-1) === 'resumed' && (await pubsubClients()).some((l) => Number(/^id=(\d+) /.exec(l)![1]) > killed), 5000);
    expect(calls.length % 2, `${calls.join(', ')}`).to.equal(0);
    expect(calls, 'lost, resumed, lost, resumed, …').to.deep.equal(calls.map((_, i) => (i % 2 === 0 ? 'lost' : 'resumed')));
    expect(calls.length).to.be.within(2, 8);
    expect(s.connected).to.equal(true);
    expect(await numsub()).to.deep.equal([1, 1]);
  });

  it('a connection that drops again before it could resubscribe is not another `lost`', async () => {
    const s = make();
    await s.start();
    const ours = new Set([Number(await admin.client('ID')), Number(await fx.redis.client('ID'))]);
    const idOf = (line: string) => Number(/^id=(\d+) /.exec(line)![1]);
    const subscriberConnection = async (after: number) => {
      const all = ((await admin.call('CLIENT', 'LIST')) as string).split('\n').filter(Boolean);
      return all.map(idOf).find((id) => id > after && !ours.has(id));
    };
    let killed = idOf((await pubsubClients())[0]!);
    try {
      // SUBSCRIBE refused (NOPERM) from here: a new connection comes up but cannot subscribe.
      await admin.call('ACL', 'SETUSER', 'default', '-subscribe');
      expect(await admin.client('KILL', 'ID', String(killed))).to.equal(1);
      for (let i = 0; i < 2; i++) {
        const next = await waitFor('the subscriber to connect again', () => subscriberConnection(killed), 5000);
        expect(await pubsubClients(), 'it could not subscribe').to.deep.equal([]);
        killed = next;
        expect(await admin.client('KILL', 'ID', String(killed))).to.equal(1);
      }
      expect(calls, 'one outage so far').to.deep.equal(['lost']);
      expect(s.connected).to.equal(false);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', '+subscribe');
    }
    // The next connection may have been refused just before SUBSCRIBE was allowed again:
    // then it waits for a reconnect, which dropping it brings.
    const next = await waitFor('the subscriber to connect again', () => subscriberConnection(killed), 5000);
    const line = (await admin.call('CLIENT', 'LIST', 'ID', String(next))) as string;
    if (/ cmd=subscribe /.test(line) && / sub=0 /.test(line)) await admin.client('KILL', 'ID', String(next));
    await waitFor('`resumed`, subscribed', async () => calls.at(-1) === 'resumed' && (await numsub()).every((n) => n === 1), 5000);
    // Had that connection subscribed just before it was dropped, that is a second outage: still in pairs.
    expect(calls, 'lost, resumed, …').to.deep.equal(calls.map((_, i) => (i % 2 === 0 ? 'lost' : 'resumed')));
    expect(calls.length).to.be.within(2, 4);
  });

  it('stop() closes its connection, reports nothing, delivers nothing more, and is safe to call twice', async () => {
    const s = make();
    await s.start();
    s.stop();
    s.stop();
    expect(s.connected).to.equal(false);
    await waitFor('the subscription to be gone', async () => (await numsub()).every((n) => n === 0) && (await pubsubClients()).length === 0);
    const key = keys.token(0, 'late');
    await admin.set(key, '1');
    await admin.del(key);
    // A probe subscribed to the same channel hears the event: ours, had it still been
    // subscribed, was sent it in the same pass.
    const probe = fx.server.client();
    try {
      const heard = new Promise<void>((resolve) => probe.on('message', () => resolve()));
      await probe.subscribe(channel(0, 'del'));
      await admin.set(key, '1');
      await admin.del(key);
      await heard;
    } finally {
      probe.disconnect();
    }
    expect(messages).to.deep.equal([]);
    expect(calls, 'no `lost` for a stop()').to.deep.equal([]);
    subscriber = undefined;
  });
});
