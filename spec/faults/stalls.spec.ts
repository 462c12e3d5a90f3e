// Fault case 6: Redis stalls during churn: DEBUG SLEEP 1 (the server does nothing
// for a second) and CLIENT PAUSE 1000 (clients' commands held for a second).
import { expect } from 'chai';
import { FaultCase } from './harness.js';

describe('faults: Redis stalls', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('2× DEBUG SLEEP 1 and 2× CLIENT PAUSE 1000 during churn: every event once per group and listener', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('6 stalls');
    await c.group('audit', 2);
    await c.broadcast();

    const stalls: string[] = [];
    const pending: Promise<unknown>[] = [];
    const stall = (command: string[]) => {
      const started = Date.now();
      // Not awaited: the churn keeps sending while Redis stalls.
      pending.push(c!.admin.call(command[0]!, ...command.slice(1)).then(() => stalls.push(`${command.join(' ')} (${Date.now() - started} ms)`)));
    };
    await c.churn.run({
      batches: 40, size: 15, gapMs: 50, revokeAllEvery: 6,
      between: (i) => {
        if (i === 5) stall(['DEBUG', 'SLEEP', '1']);
        if (i === 15) stall(['CLIENT', 'PAUSE', '1000']);
        if (i === 25) stall(['DEBUG', 'SLEEP', '1']);
        if (i === 35) stall(['CLIENT', 'PAUSE', '1000']);
      },
    });
    await Promise.all(pending);
    expect(stalls).to.have.length(4);

    await c.settle();
    await c.check(stalls.join(', '));
  });
});
