// Killing the lifecycle's connections during churn loses and duplicates nothing:
// what was delivered is exactly what the journal holds, once each.
import { expect } from 'chai';
import type { TokenEvent } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { waitFor } from './support/wait.js';

describe('TokenLifecycle under connection kills', () => {
  const fx = useRedis();

  it('10 CLIENT KILLs (pubsub and normal) during a churn of 500 tokens: every event exactly once', async function () {
    this.timeout(60_000);
    const store = fx.store();
    const lifecycle = fx.lifecycle({ pollInterval: 500 });
    const delivered: TokenEvent[] = [];
    lifecycle.on('issued', (e) => { delivered.push(e); });
    lifecycle.on('expired', (e) => { delivered.push(e); });
    lifecycle.on('revoked', async (e) => {
      await new Promise((r) => setImmediate(r)); // an async handler, awaited across the kills
      delivered.push(e);
    });
    lifecycle.on('error', () => {}); // reads failing while a connection is down are retried
    await lifecycle.start();

    const admin = fx.server.client();
    const other = fx.server.client();
    let kills = 0;
    let killed = 0;
    const killer = (async () => {
      while (kills < 10) {
        await new Promise((r) => setTimeout(r, 120));
        const type = kills % 2 === 0 ? 'pubsub' : 'normal';
        killed += Number(await admin.client('KILL', 'TYPE', type, 'SKIPME', 'yes'));
        kills++;
      }
    })();

    const issued = new Map<string, string>(); // jti -> what the test did to it
    let failures = 0;
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 25 }, async (_, i) => {
        const n = batch * 25 + i;
        try {
          const t = await store.issue(`user${n % 7}`, { ttl: n % 3 === 0 ? 1 : 2 });
          issued.set(t.jti, 'expire');
          if (n % 3 === 1) {
            await store.revoke(t.token);
            issued.set(t.jti, 'revoke');
          } else if (n % 9 === 2) {
            await other.del(store.keys.token(store.keys.bucketOf(t.jti), t.jti));
            issued.set(t.jti, 'external');
          }
        } catch {
          failures++; // StoreUnavailableError while a connection is being killed
        }
      }));
      await new Promise((r) => setTimeout(r, 20));
    }
    await killer;
    expect(kills).to.equal(10);
    expect(killed).to.be.at.least(10);

    // Everything journaled for this prefix, read straight from Redis.
    const journal = new Map<string, string[]>();
    const readJournal = async () => {
      journal.clear();
      for (let b = 0; b < store.keys.buckets; b++) {
        for (const [id, fields] of await fx.redis.xrange(store.keys.log(b), '-', '+')) journal.set(`${b}:${id}`, fields);
      }
    };
    // Quiescent: every token ended, and what was delivered matches the journal as a set
    // (the journal is read bucket by bucket, so only a settled state compares fairly).
    await waitFor('every token to end and the deliveries to match the journal', async () => {
      await readJournal();
      const ended = new Set(delivered.filter((e) => e.type !== 'issued').map((e) => e.jti));
      const ids = new Set(delivered.map((e) => e.id));
      return [...issued.keys()].every((jti) => ended.has(jti)) && ids.size === journal.size && [...ids].every((id) => journal.has(id));
    }, 20_000, 100).catch(() => undefined); // the assertions below say what is wrong

    const ids = delivered.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    const invented = delivered.filter((e) => !journal.has(e.id));
    expect(invented, `no event invented (journal: ${journal.size} entries, prefix ${store.keys.prefix})`).to.deep.equal([]);
    expect([...journal.keys()].filter((id) => !ids.includes(id)), 'no event lost').to.deep.equal([]);
    for (const [jti, fate] of issued) {
      const mine = delivered.filter((e) => e.jti === jti);
      expect(mine.map((e) => e.type), jti).to.have.length(2);
      expect(mine[0]!.type).to.equal('issued');
      const end = mine[1]!;
      if (fate === 'expire') expect(end.type, jti).to.equal('expired');
      if (fate === 'revoke') expect([end.type, end.reason]).to.deep.equal(['revoked', 'revoke']);
      if (fate === 'external') expect([end.type, end.reason]).to.deep.equal(['revoked', 'external']);
    }
    expect(issued.size + failures).to.equal(500);
    // Tokens whose issue call failed may still have been written: they appear once each, like any other.
    expect(delivered.filter((e) => e.type === 'issued').length).to.be.within(issued.size, issued.size + failures);
  });
});
