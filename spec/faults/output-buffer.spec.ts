// Fault case 4: the subscriber connections dropped by Redis for a full output
// buffer (client-output-buffer-limit pubsub) during a burst: a revokeAll of
// hundreds of tokens, where each bucket's script publishes its notifications at once.
import { expect } from 'chai';
import { FaultCase } from './harness.js';
import { waitFor } from '../support/wait.js';

/** Redis >= 7.2 counts these in INFO stats; undefined on older servers. */
async function bufferKills(c: FaultCase): Promise<number | undefined> {
  const match = /client_output_buffer_limit_disconnections:(\d+)/.exec(await c.admin.info('stats'));
  return match ? Number(match[1]) : undefined;
}

/** Ids of the pub/sub connections (CLIENT LIST TYPE pubsub). */
async function subscriberIds(c: FaultCase): Promise<string[]> {
  const list = (await c.admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
  return [...list.matchAll(/^id=(\d+)/gm)].map((m) => m[1]!);
}

describe('faults: pub/sub output buffer limit', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('subscribers dropped for a full output buffer during a revokeAll burst: nothing lost', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('4 output buffer');
    await c.group('audit', 2);
    await c.broadcast();

    const burst = await c.churn.issueMany('burst', 600, 30);
    expect(burst).to.have.length(600);
    const before = await bufferKills(c);
    let revoked = 0;
    let dropped = 0;
    let counted: number | undefined;
    // The churn goes on around the burst.
    await c.churn.run({
      batches: 20, size: 20, gapMs: 60, revokeAllEvery: 5,
      between: async (i) => {
        if (i !== 6) return;
        const subscribers = await subscriberIds(c!);
        expect(subscribers, 'one subscriber per lifecycle').to.have.length(3);
        const limits = ((await c!.admin.config('GET', 'client-output-buffer-limit')) as string[])[1]!;
        await c!.admin.config('SET', 'client-output-buffer-limit', 'pubsub 1kb 0 0');
        revoked = await c!.churn.revokeAll('burst');
        // Nothing else kills connections here: the subscribers that are gone were dropped by the limit.
        dropped = await waitFor('the subscribers to be dropped for their output buffer', async () => {
          const now = await subscriberIds(c!);
          return subscribers.filter((id) => !now.includes(id)).length;
        }, 5000, 10);
        if (before !== undefined) counted = (await bufferKills(c!))! - before;
        await c!.admin.config('SET', 'client-output-buffer-limit', limits);
      },
    });
    expect(revoked, 'revoked by the burst').to.equal(600);
    expect(dropped, 'subscribers dropped for their output buffer').to.be.at.least(1);
    if (counted !== undefined) expect(counted, 'INFO client_output_buffer_limit_disconnections').to.be.at.least(1);

    await c.settle();
    await c.check(`revokeAll of ${revoked} tokens, ${dropped} of 3 subscriber connections dropped for their output buffer${counted === undefined ? '' : ` (INFO: ${counted})`}`);
  });
});
