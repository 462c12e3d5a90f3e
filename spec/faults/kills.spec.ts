// Fault case 1: connections killed during churn (CLIENT KILL TYPE pubsub / normal),
// with a 2-member consumer group and a broadcast listener.
import { expect } from 'chai';
import { FaultCase, outOfOrder, pause } from './harness.js';

describe('faults: connection kills', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('10× CLIENT KILL TYPE pubsub and TYPE normal during churn: every event once per group and listener, in order per token for the listener', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('1 client kills');
    await c.group('audit', 2);
    const { audience: listener } = await c.broadcast();

    let kills = 0;
    let killed = 0;
    const killer = (async () => {
      while (kills < 10) {
        await pause(150);
        const type = kills % 2 === 0 ? 'pubsub' : 'normal';
        killed += Number(await c!.admin.client('KILL', 'TYPE', type, 'SKIPME', 'yes'));
        kills++;
      }
    })();
    // The churn outlasts the kills (~2 s of kills, ~3 s of churn).
    await Promise.all([killer, c.churn.run({ batches: 30, size: 20, gapMs: 70, revokeAllEvery: 6 })]);
    expect(kills, 'kills').to.equal(10);
    expect(killed, 'connections killed').to.be.at.least(10);
    // Every issue() call is accounted for: a token the churn tracks, or a failure counted.
    expect(c.churn.tokens.size + c.churn.failures.issue!, 'issue() calls').to.equal(c.churn.attempts);

    await c.settle();
    await c.check(`${kills} kills, ${killed} connections killed`);
    expect(outOfOrder(listener), 'the listener: each token\'s issued before its end').to.deep.equal([]);
  });
});
