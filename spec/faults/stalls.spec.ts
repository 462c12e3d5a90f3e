// Fault case 6: Redis stalls during churn: DEBUG SLEEP 1 (the server does nothing
// for a second) and CLIENT PAUSE 1000 (clients' commands held for a second).
// Each stall is measured, so a stall that held nothing up fails the case: a probe
// connection sends PING after PING through it (the longest a PING took to come back),
// and the journal shows the churn's writes held (its longest quiet spell around the
// stall, on Redis' clock).
import { expect } from 'chai';
import { FaultCase, readJournal } from './harness.js';

/** Each stall lasts this long (DEBUG SLEEP 1, CLIENT PAUSE 1000). */
const STALL_MS = 1000;
/**
 * A probe in flight when the stall begins comes back after it ends: it waits the stall
 * less the time since it was sent (probes go back to back, so about a ms), leaving
 * 100 ms of margin for a loaded machine. A stall that held nothing up leaves round trips of a few ms.
 */
const HELD_MS = 900;

interface Stall {
  command: string[];
  /** Epoch ms just before the stall command was sent. */
  sentAt: number;
  /** How long the stall command took to answer. */
  tookMs: number;
  /** The longest round trip of the probes sent back to back from just before the stall until it must be over. */
  heldMs: number;
}

describe('faults: Redis stalls', () => {
  let c: FaultCase | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('2× DEBUG SLEEP 1 and 2× CLIENT PAUSE 1000 during churn: each stall held commands ~1 s; every event once per group and listener', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('6 stalls');
    await c.group('audit', 2);
    await c.broadcast();
    const probe = c.server.client();
    await probe.ping();

    const stalls: Stall[] = [];
    const pending: Promise<unknown>[] = [];
    /** Probes, one after another, from just before the stall is sent until it must be over. */
    const stall = async (command: string[]) => {
      const s: Stall = { command, sentAt: 0, tookMs: 0, heldMs: 0 };
      stalls.push(s);
      let until = Infinity;
      const probes = (async () => {
        while (Date.now() < until) {
          const sent = Date.now();
          await probe.ping();
          s.heldMs = Math.max(s.heldMs, Date.now() - sent);
        }
      })();
      s.sentAt = Date.now();
      await c!.admin.call(command[0]!, ...command.slice(1));
      s.tookMs = Date.now() - s.sentAt;
      // Probe on until the stall must be over (the loop waits on Redis, it does not sleep).
      until = s.sentAt + STALL_MS + 200;
      await probes;
    };
    await c.churn.run({
      batches: 40, size: 15, gapMs: 50, revokeAllEvery: 6,
      between: (i) => {
        // Not awaited: the churn keeps sending while Redis stalls.
        if (i === 5) pending.push(stall(['DEBUG', 'SLEEP', '1']));
        if (i === 15) pending.push(stall(['CLIENT', 'PAUSE', String(STALL_MS)]));
        if (i === 25) pending.push(stall(['DEBUG', 'SLEEP', '1']));
        if (i === 35) pending.push(stall(['CLIENT', 'PAUSE', String(STALL_MS)]));
      },
    });
    const churnEndedAt = Date.now();
    await Promise.all(pending);
    expect(stalls).to.have.length(4);

    // The churn's writes were held too: around each stall, nothing journaled for the whole of it
    // (each script's entries carry Redis' TIME, the same host clock). Only spells that ended
    // while the churn still ran count: it writes every ~50 ms, but once it is over, expiries
    // alone come in bursts up to a second apart.
    const at = [...(await readJournal(c.redis, c.keys)).values()].map((e) => e.at).sort((a, b) => a - b);
    const quiet = stalls.map((s) => {
      let longest = 0;
      for (let i = 1; i < at.length; i++) {
        if (at[i - 1]! >= s.sentAt - 500 && at[i - 1]! <= s.sentAt + 500 && at[i]! <= churnEndedAt) longest = Math.max(longest, at[i]! - at[i - 1]!);
      }
      return longest;
    });

    // A DEL just before a stall: its reaps, sent at once, can be held behind the stall on
    // their lifecycles' connections while another lifecycle's sweep of the deadline runs
    // first; that sweep sees only a key that is gone (documented: reported as expiry).
    for (const t of c.churn.tokens.values()) {
      for (const op of t.ops) {
        const held = stalls.some((s) => op.at !== undefined && op.at >= s.sentAt - 500 && op.at <= s.sentAt + STALL_MS && t.deadline <= s.sentAt + STALL_MS + 500);
        if (op.kind === 'del' && held) op.blind = true;
      }
    }
    await c.settle();
    await c.check(stalls.map((s, i) => `${s.command.join(' ')} (answered in ${s.tookMs} ms, a probe held ${s.heldMs} ms, journal quiet ${quiet[i]} ms)`).join(', '));
    for (const [i, s] of stalls.entries()) {
      expect(s.heldMs, `${s.command.join(' ')}: the longest round trip of a probe sent during it, ms`).to.be.at.least(HELD_MS);
      // Server-clock times at ms resolution on both sides: at least the stall, less a ms of rounding.
      expect(quiet[i], `${s.command.join(' ')}: the longest spell with nothing journaled, ms`).to.be.at.least(STALL_MS - 1);
    }
  });
});
