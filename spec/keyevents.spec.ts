import { expect } from 'chai';
import type { GapEvent, TokenEvent } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { waitFor } from './support/wait.js';

describe("TokenLifecycle delivery: 'keyevents'", () => {
  const fx = useRedis();

  it('calls back straight from notifications for keys written by any client', async () => {
    const lifecycle = fx.lifecycle({ delivery: 'keyevents', prefix: 'sess:' });
    const events = fx.record(lifecycle);
    await lifecycle.start();
    const [, flags] = (await fx.redis.config('GET', 'notify-keyspace-events')) as string[];
    for (const letter of 'E$gxe') expect(flags).to.include(letter);
    const other = fx.server.client();
    await other.setex('sess:abc', 1, JSON.stringify({ sub: 'alice', scope: 'read' }));
    await other.set('sess:def', 'plain value');
    await other.del('sess:def');
    await other.set('unrelated:key', '1');
    await waitFor('issued ×2, revoked, expired', () => events.length >= 4, 4000);
    const summary = events.map((e) => [e.type, e.jti, e.sub, e.reason]);
    expect(summary).to.deep.include.members([
      ['issued', 'abc', 'alice', undefined],
      ['issued', 'def', '', undefined],
      ['revoked', 'def', '', 'external'],
      ['expired', 'abc', '', undefined],
    ]);
    expect(events.find((e) => e.type === 'issued' && e.jti === 'abc')!.claims).to.deep.equal({ sub: 'alice', scope: 'read' });
    expect(events.every((e) => /^ke:\d+-\d+$/.test(e.id))).to.equal(true);
    expect(events).to.have.length(4);
  });

  it('also reports tokens of a store on the same prefix, and says gap after a reconnect', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle({ delivery: 'keyevents' });
    const events = fx.record(lifecycle);
    const gaps: GapEvent[] = [];
    lifecycle.on('gap', (g) => { gaps.push(g); });
    await lifecycle.start();
    const t = await store.issue('bob');
    await waitFor('issued', () => events.some((e) => e.type === 'issued' && e.jti === t.jti));
    expect(events.find((e) => e.jti === t.jti)!.claims).to.deep.equal(t.claims);
    await store.revoke(t.jti);
    await waitFor('revoked', () => events.some((e: TokenEvent) => e.type === 'revoked' && e.jti === t.jti));
    await fx.redis.client('KILL', 'TYPE', 'pubsub');
    await waitFor('a gap after the reconnect', () => gaps.length >= 1, 5000);
    expect(gaps[0]).to.deep.equal({ reason: 'reconnect' });
    // Indexes and the journal are not tokens.
    expect(events.map((e) => e.jti).every((jti) => jti === t.jti)).to.equal(true);
  });
});
