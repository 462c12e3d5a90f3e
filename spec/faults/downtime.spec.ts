// Fault case 5: every member of a group down for a while (stopped), churn meanwhile;
// on the next start the events of the downtime are delivered, once each.
import { expect } from 'chai';
import { compareIds } from '../../lib/redis/streams.js';
import { FaultCase, journalEnds, readJournal } from './harness.js';

describe('faults: whole group down', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('all members stopped during churn, then started again: the downtime events are delivered on the next start', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('5 group down');
    const { audience, members } = await c.group('audit', 2);
    await c.churn.run({ batches: 8, size: 20, gapMs: 50, revokeAllEvery: 4 });

    // Down: no member runs, so nobody hears a DEL's notification (documented: reported at its deadline, as expiry).
    c.churn.blind = true;
    await Promise.all(members.map((m) => m.lifecycle.stop()));
    const handledBefore = audience.handled.length;
    const downAt = Date.now();
    const endsAtStop = await journalEnds(c.redis, c.keys);
    await c.churn.run({ batches: 12, size: 20, gapMs: 80, revokeAllEvery: 4 }); // ~2 s: tokens expire meanwhile
    const duringDowntime = [...(await readJournal(c.redis, c.keys)).values()].filter((e) => compareIds(e.sid, endsAtStop[e.bucket]!) > 0).length;
    expect(audience.handled.length, 'nothing handled while down').to.equal(handledBefore);
    expect(duringDowntime, 'events journaled while the group was down').to.be.greaterThan(200);

    // Back: new processes with the same consumer names.
    await c.members(audience, members.map((m) => m.name));
    const downMs = Date.now() - downAt;
    c.churn.blind = false;
    await c.churn.run({ batches: 8, size: 20, gapMs: 50, revokeAllEvery: 4 });
    await c.settle();
    await c.check(`group down ${downMs} ms; ${duringDowntime} events journaled while it was down`);
  });
});
