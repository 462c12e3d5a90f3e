// TokenStore and TokenLifecycle on a real local Redis Cluster (3 masters, 3
// replicas): buckets spread over the masters, the store's API, events from every
// master exactly once, and what survives a manual failover, a SIGKILLed master
// and a master added by resharding.
import { expect } from 'chai';
import type { Cluster } from 'ioredis';
import { StoreUnavailableError, TokenError, TokenLifecycle, TokenStore, type TokenEvent } from '../lib/index.js';
import { SECRET } from './support/fixture.js';
import { RedisCluster, type NodeInfo } from './support/cluster.js';
import { testPrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

type Fate = 'expire' | 'revoke' | 'unknown';
interface Acked { fate: Fate; bucket: number; batch: number }

describe('Redis Cluster (3 masters + 3 replicas)', function () {
  this.timeout(60_000);
  let cluster: RedisCluster;
  let redis: Cluster;
  const lifecycles: TokenLifecycle[] = [];

  before(async () => {
    cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1 });
    redis = cluster.client();
    await redis.ping(); // ready: ioredis sends CLUSTER commands before it is, to whichever node
  });
  afterEach(async () => {
    await Promise.all(lifecycles.splice(0).map((l) => l.stop()));
  });
  after(async () => {
    await cluster?.stop();
  });

  const newStore = (prefix = testPrefix(), buckets?: number) =>
    new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix, ...(buckets ? { buckets } : {}) });
  const newLifecycle = (store: TokenStore, pollInterval = 500) => {
    const lifecycle = new TokenLifecycle({ redis, prefix: store.keys.prefix, buckets: store.keys.buckets, pollInterval });
    lifecycles.push(lifecycle);
    return lifecycle;
  };
  const record = (lifecycle: TokenLifecycle) => {
    const events: TokenEvent[] = [];
    for (const type of ['issued', 'expired', 'revoked'] as const) lifecycle.on(type, (e) => { events.push(e); });
    return events;
  };

  /** The slot of each bucket of a key schema. */
  async function slotsOf(bases: readonly string[]): Promise<number[]> {
    return Promise.all(bases.map(async (base) => Number(await redis.cluster('KEYSLOT', base))));
  }
  function owner(nodes: NodeInfo[], slot: number): number {
    const node = nodes.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!node) throw new Error(`no master owns slot ${slot}`);
    return node.port;
  }
  /** The master port of each bucket, as the cluster says now. */
  async function ownersOf(store: TokenStore): Promise<number[]> {
    const nodes = await cluster.topology();
    return (await slotsOf(store.keys.bases)).map((slot) => owner(nodes, slot));
  }
  /** Every journal entry of a store's prefix, read bucket by bucket through the cluster. */
  async function journalOf(store: TokenStore): Promise<Map<string, Record<string, string>>> {
    const journal = new Map<string, Record<string, string>>();
    for (let b = 0; b < store.keys.buckets; b++) {
      for (const [id, fields] of await redis.xrange(store.keys.log(b), '-', '+')) {
        const f: Record<string, string> = {};
        for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        journal.set(`${b}:${id}`, f);
      }
    }
    return journal;
  }

  /**
   * Issues tokens in batches of `size` (ttl 1 or 2 s; every third revoked) until
   * `until()` says stop, recording every token whose issue() resolved. Calls
   * fail with StoreUnavailableError while a master is switching: counted.
   */
  async function churn(store: TokenStore, options: { until: () => boolean; size?: number; afterBatch?: (batch: number) => Promise<void> }) {
    const acked = new Map<string, Acked>();
    const failed: unknown[] = [];
    let batch = 0;
    for (; !options.until(); batch++) {
      await Promise.all(Array.from({ length: options.size ?? 20 }, async (_, i) => {
        const n = batch * 1000 + i;
        let jti: string | undefined;
        try {
          const t = await store.issue(`user${n % 5}`, { ttl: n % 2 === 0 ? 1 : 2 });
          jti = t.jti;
          acked.set(jti, { fate: 'expire', bucket: store.keys.bucketOf(jti), batch });
          if (n % 3 === 1) {
            acked.get(jti)!.fate = 'unknown';
            if (await store.revoke(t.jti)) acked.get(jti)!.fate = 'revoke';
          }
        } catch (err) {
          if (jti) acked.get(jti)!.fate = 'unknown';
          failed.push(err);
        }
      }));
      await options.afterBatch?.(batch);
    }
    return { acked, failed, batches: batch };
  }

  /** Waits until every token in `jtis` had its end event. */
  async function awaitEnds(delivered: TokenEvent[], jtis: Iterable<string>, timeout = 20_000): Promise<void> {
    const want = [...jtis];
    await waitFor(`the end events of ${want.length} tokens`, () => {
      const ended = new Set(delivered.filter((e) => e.type !== 'issued').map((e) => e.jti));
      return want.every((jti) => ended.has(jti));
    }, timeout, 50).catch(() => undefined); // the assertions that follow say what is missing
  }

  /** Asserts that each token in `acked` got `issued` then the end its fate says, exactly once. */
  function expectExactlyOnce(delivered: TokenEvent[], acked: Map<string, Acked>, only: (a: Acked) => boolean = () => true): void {
    const byJti = new Map<string, TokenEvent[]>();
    for (const e of delivered) byJti.set(e.jti, [...(byJti.get(e.jti) ?? []), e]);
    const wrong: string[] = [];
    for (const [jti, a] of acked) {
      if (!only(a)) continue;
      const mine = byJti.get(jti) ?? [];
      const types = mine.map((e) => (e.type === 'revoked' ? `revoked/${e.reason}` : e.type));
      const endOk = a.fate === 'expire' ? types[1] === 'expired' : a.fate === 'revoke' ? types[1] === 'revoked/revoke' : ['expired', 'revoked/revoke'].includes(types[1]!);
      if (mine.length !== 2 || types[0] !== 'issued' || !endOk) wrong.push(`${jti} (bucket ${a.bucket}, ${a.fate}): ${types.join(',') || 'nothing'}`);
    }
    expect(wrong, 'tokens without exactly issued + their end').to.deep.equal([]);
  }

  it('spreads the buckets over more than one master (the default prefix and a test prefix)', async () => {
    const nodes = await cluster.topology();
    const masters = await cluster.masterPorts();
    expect(masters).to.have.length(3);
    const defaults = newStore('tok:');
    const defaultOwners = (await slotsOf(defaults.keys.bases)).map((slot) => owner(nodes, slot));
    const perMaster = masters.map((port) => defaultOwners.filter((p) => p === port).length);
    // Slots of 'tok:{tok:0}' … 'tok:{tok:15}' over the 3 equal ranges redis-cli assigns.
    expect(perMaster.every((n) => n >= 3), `buckets per master for 'tok:': ${perMaster.join('/')}`).to.equal(true);

    // The keys really land on several masters: count them on each node directly.
    const store = newStore();
    await Promise.all(Array.from({ length: 64 }, (_, i) => store.issue(`user${i % 4}`, { ttl: 30 })));
    const counts = await Promise.all(masters.map(async (port) => {
      const [, keys] = await cluster.admin(port).scan('0', 'MATCH', `${store.keys.prefix}*`, 'COUNT', 10_000);
      return keys.length;
    }));
    expect(counts.filter((n) => n > 0).length, `keys per master: ${counts.join('/')}`).to.be.at.least(2);
    expect(counts.reduce((a, b) => a + b, 0)).to.be.greaterThan(64);
  });

  it('issues, verifies, revokes, lists and revokes all across buckets on every master', async () => {
    const store = newStore();
    const owners = await ownersOf(store);
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => store.issue(i < 30 ? 'alice' : 'bob', { ttl: 60, scope: 'read' })));
    const mastersUsed = new Set(tokens.map((t) => owners[store.keys.bucketOf(t.jti)]));
    expect(mastersUsed.size, 'alice and bob have tokens on every master').to.equal(3);

    for (const t of tokens) expect((await store.verify(t.token)).jti).to.equal(t.jti);
    expect(await store.revoke(tokens[0]!.token)).to.equal(true);
    expect(await store.revoke(tokens[0]!.jti)).to.equal(false);
    const revoked = await store.verify(tokens[0]!.token).catch((err: unknown) => err);
    expect(revoked).to.be.instanceOf(TokenError);
    expect((revoked as TokenError).code).to.equal('ERR_TOKEN_REVOKED');

    const alice = await store.list('alice');
    expect(alice.map((t) => t.jti).sort()).to.deep.equal(tokens.slice(1, 30).map((t) => t.jti).sort());
    expect(await store.revokeAll('alice')).to.equal(29);
    expect(await store.list('alice')).to.deep.equal([]);
    expect(await store.list('bob')).to.have.length(10);
    for (const t of tokens.slice(1, 30)) {
      const err = await store.verify(t.token).catch((e: unknown) => e);
      expect((err as TokenError).code).to.equal('ERR_TOKEN_REVOKED');
    }
  });

  it('keeps each session in one slot, on every master: start, refresh, reuse ends it with its tokens, events once each', async () => {
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix: testPrefix(), sessions: { refreshGrace: 200, idleTimeout: 1, lifetime: 60 } });
    const owners = await ownersOf(store);
    const lifecycle = newLifecycle(store);
    const events: TokenEvent[] = [];
    for (const type of ['issued', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const) lifecycle.on(type, (e) => { events.push(e); });
    await lifecycle.start();
    const subs = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const started = await Promise.all(subs.map((sub) => store.startSession(sub, { device: { label: sub } })));
    expect(new Set(started.map((s) => owners[store.keys.bucketOf(s.sub)])).size, 'sessions on every master').to.equal(3);
    const refreshed = await Promise.all(started.map((s) => store.refresh(s.refreshToken)));
    for (const [i, s] of started.entries()) {
      const b = store.keys.bucketOf(s.sub);
      const slot = Number(await redis.cluster('KEYSLOT', store.keys.session(b, s.sid)));
      for (const key of [store.keys.token(b, s.jti), store.keys.token(b, refreshed[i]!.jti), store.keys.sessions(b)]) {
        expect(Number(await redis.cluster('KEYSLOT', key)), key).to.equal(slot);
      }
      expect(store.keys.bucketOf(s.jti)).to.equal(b);
      expect(store.keys.bucketOf(s.sid)).to.equal(b);
      expect((await store.verify(refreshed[i]!.token)).claims.sid).to.equal(s.sid);
    }
    expect((await store.sessions('user-3')).map((s) => s.sid)).to.deep.equal([started[3]!.sid]);
    await new Promise((r) => setTimeout(r, 250));
    // Half are stolen (reuse after the grace window); the others go idle (1 s) and the sweeper ends them.
    const stolen = started.slice(0, 6);
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string }) => e.code);
    for (const s of stolen) expect(await code(store.refresh(s.refreshToken))).to.equal('ERR_REFRESH_REUSED');
    for (const [i] of stolen.entries()) expect(await code(store.verify(refreshed[i]!.token))).to.equal('ERR_TOKEN_REVOKED');
    await waitFor('every session ended', () => events.filter((e) => e.type === 'session_ended').length >= 12, 8000);
    const ended = new Map(events.filter((e) => e.type === 'session_ended').map((e) => [e.sid!, e.reason]));
    expect(ended.size).to.equal(12);
    for (const s of started) expect(ended.get(s.sid), s.sub).to.equal(stolen.includes(s) ? 'reuse' : 'idle');
    const ids = events.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    expect(events.filter((e) => e.type === 'reuse_detected')).to.have.length(6);
    expect(events.filter((e) => e.type === 'revoked' && e.reason === 'session')).to.have.length(24);
    await store.close();
  });

  it('delivers the events of tokens on every master exactly once', async () => {
    const store = newStore();
    const owners = await ownersOf(store);
    const lifecycle = newLifecycle(store);
    const delivered = record(lifecycle);
    await lifecycle.start();
    expect(lifecycle.synced).to.equal(true);
    // Every master publishes the letters the lifecycle needs, and has a subscriber.
    for (const port of await cluster.masterPorts()) {
      const [, flags] = (await cluster.admin(port).config('GET', 'notify-keyspace-events')) as string[];
      expect([...'Egxe'].every((l) => flags!.includes(l)), `flags on ${port}: ${flags}`).to.equal(true);
      expect(Number(await cluster.admin(port).pubsub('NUMSUB', '__keyevent@0__:del').then((r) => (r as [string, number])[1])), `subscribers on ${port}`).to.be.at.least(1);
    }

    const { acked, failed } = await churn(store, { until: (() => { let n = 0; return () => n++ >= 15; })() });
    expect(failed).to.deep.equal([]);
    expect(acked.size).to.equal(300);
    // A DEL by another client on each master is reported as an external revocation.
    const victims = await Promise.all([0, 1, 2].map(() => store.issue('carol', { ttl: 30 })));
    for (const v of victims) await redis.del(store.keys.token(store.keys.bucketOf(v.jti), v.jti));
    await awaitEnds(delivered, [...acked.keys(), ...victims.map((v) => v.jti)]);

    expectExactlyOnce(delivered, acked);
    for (const v of victims) {
      expect(delivered.filter((e) => e.jti === v.jti).map((e) => `${e.type}/${e.reason ?? ''}`)).to.deep.equal(['issued/', 'revoked/external']);
    }
    const journal = await journalOf(store);
    const ids = delivered.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    expect([...journal.keys()].sort()).to.deep.equal([...ids].sort());
    const perMaster = new Map<number, number>();
    for (const e of delivered) {
      const port = owners[Number(e.id.split(':')[0])]!;
      perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
    }
    expect(perMaster.size, 'events from every master').to.equal(3);
  });

  it('gives each event to exactly one member of a consumer group, across every master', async () => {
    const store = newStore();
    const members = ['a', 'b'].map((consumer) => {
      const lifecycle = new TokenLifecycle({ redis, prefix: store.keys.prefix, group: 'audit', consumer, pollInterval: 500 });
      lifecycles.push(lifecycle);
      return lifecycle;
    });
    const delivered = members.map(record);
    await Promise.all(members.map((m) => m.start()));
    const { acked, failed } = await churn(store, { until: (() => { let n = 0; return () => n++ >= 10; })() });
    expect(failed).to.deep.equal([]);
    // Members handle events side by side: put them back in journal order (per bucket) to check each token.
    const order = (id: string) => id.split(/[:-]/).map(Number) as [number, number, number];
    const all = () => delivered.flat().sort((x, y) => {
      const [xb, xm, xs] = order(x.id);
      const [yb, ym, ys] = order(y.id);
      return xb - yb || xm - ym || xs - ys;
    });
    await awaitEnds(all(), acked.keys());
    expectExactlyOnce(all(), acked);
    const ids = all().map((e) => e.id);
    expect(new Set(ids).size, 'no event handled twice in the group').to.equal(ids.length);
    expect([...(await journalOf(store)).keys()].sort()).to.deep.equal([...ids].sort());
    expect(delivered.every((events) => events.length > 0), 'both members got events').to.equal(true);
    for (let b = 0; b < store.keys.buckets; b++) {
      const [pending] = (await redis.xpending(store.keys.log(b), 'audit')) as [number];
      expect(pending, `pending in bucket ${b}`).to.equal(0);
    }
  });

  it('loses nothing acknowledged across a manual CLUSTER FAILOVER during churn', async () => {
    const store = newStore();
    const lifecycle = newLifecycle(store);
    const delivered = record(lifecycle);
    const syncs: boolean[] = [];
    lifecycle.on('sync', (s) => { syncs.push(s); });
    lifecycle.on('error', () => {}); // journal reads fail while the slots move; retried
    await lifecycle.start();

    const [master] = await cluster.masterPorts();
    const replica = await cluster.replicaOf(master!);
    let failedOver = false;
    let afterBatches = 0;
    const failover = (async () => {
      await waitFor('churn to start', () => delivered.length > 20, 5000);
      await cluster.failover(replica);
      failedOver = true;
    })();
    const { acked, failed } = await churn(store, { until: () => failedOver && ++afterBatches > 5 });
    await failover;
    expect((await cluster.masterPorts()).includes(replica), 'the replica is a master now').to.equal(true);

    // The promoted replica got the letters (CONFIG SET is not replicated) and a subscriber.
    await waitFor('the flags and a subscription on the promoted replica', async () => {
      const [, flags] = (await cluster.admin(replica).config('GET', 'notify-keyspace-events')) as string[];
      const [, subs] = (await cluster.admin(replica).pubsub('NUMSUB', '__keyevent@0__:del')) as [string, number];
      return [...'Egxe'].every((l) => flags!.includes(l)) && Number(subs) >= 1;
    }, 10_000, 50);
    // An external DEL on the promoted master is heard: proof the subscription followed.
    const owners = await ownersOf(store);
    let probe;
    do probe = await store.issue('dave', { ttl: 30 }); while (owners[store.keys.bucketOf(probe.jti)] !== replica);
    await redis.del(store.keys.token(store.keys.bucketOf(probe.jti), probe.jti));

    await awaitEnds(delivered, [...acked.keys(), probe.jti]);
    expect(failed.every((err) => err instanceof StoreUnavailableError), String(failed[0])).to.equal(true);
    expectExactlyOnce(delivered, acked);
    expect(delivered.filter((e) => e.jti === probe.jti).map((e) => e.reason ?? e.type)).to.deep.equal(['issued', 'external']);
    const journal = await journalOf(store);
    const ids = delivered.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    expect([...journal.keys()].sort(), 'delivered = journal').to.deep.equal([...ids].sort());
    expect(lifecycle.synced).to.equal(true);
  });

  it('a SIGKILLed master during churn: every write the replica acknowledged (WAIT) survives, exactly once', async () => {
    const store = newStore();
    const lifecycle = newLifecycle(store);
    const delivered = record(lifecycle);
    lifecycle.on('error', () => {});
    await lifecycle.start();

    const owners = await ownersOf(store);
    const victim = (await cluster.masterPorts())[1]!;
    const replica = await cluster.replicaOf(victim);
    const victimBucket = owners.indexOf(victim);
    expect(victimBucket).to.be.at.least(0);
    // After each batch, a checkpoint on the victim: a write, then WAIT for the replica.
    // Replication is one ordered stream, so when WAIT says the replica has the
    // checkpoint it has every write the victim acknowledged before it.
    const replicated = new Set<number>();
    let killed = false;
    let promoted = false;
    let lastDone = -1;
    let firstAfterPromotion = Infinity;
    let afterBatches = 0;
    const killer = (async () => {
      await waitFor('churn to start', () => delivered.length > 40, 5000);
      await cluster.kill(victim);
      killed = true;
      expect(await cluster.awaitPromotion(victim)).to.equal(replica);
      firstAfterPromotion = lastDone + 2; // the batch running now started before the promotion
      promoted = true;
    })();
    const { acked, failed } = await churn(store, {
      until: () => promoted && ++afterBatches > 5,
      afterBatch: async (batch) => {
        lastDone = batch;
        if (killed) return;
        const admin = cluster.admin(victim);
        try {
          await admin.set(`${store.keys.bases[victimBucket]}checkpoint`, String(batch));
          if (Number(await admin.wait(1, 1000)) >= 1) replicated.add(batch);
        } catch {
          // the victim is gone: this batch is not known to be on the replica
        }
      },
    });
    await killer;
    const onVictim = (a: Acked) => owners[a.bucket] === victim;
    // Acknowledged and on the replica before the kill, or written after the promotion.
    const guaranteed = (a: Acked) => !onVictim(a) || replicated.has(a.batch) || a.batch >= firstAfterPromotion;
    await awaitEnds(delivered, [...acked].filter(([, a]) => guaranteed(a)).map(([jti]) => jti));

    expect(failed.length, 'calls to the dead master failed meanwhile').to.be.greaterThan(0);
    expect(failed.every((err) => err instanceof StoreUnavailableError), String(failed.find((e) => !(e instanceof StoreUnavailableError)))).to.equal(true);
    expect(replicated.size, 'checkpoints before the kill').to.be.at.least(1);
    expectExactlyOnce(delivered, acked, guaranteed);
    // What the replica may not have had: never twice, never an end without its issue.
    const byJti = new Map<string, string[]>();
    for (const e of delivered) byJti.set(e.jti, [...(byJti.get(e.jti) ?? []), e.type]);
    for (const [jti, types] of byJti) {
      expect(types.filter((t) => t === 'issued').length, jti).to.be.at.most(1);
      expect(types.filter((t) => t !== 'issued').length, jti).to.be.at.most(1);
    }
    const ids = delivered.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    // The journal now is the promoted replica's: everything in it was delivered. Events
    // delivered from the victim before it died may be missing from it (not replicated).
    const journal = await journalOf(store);
    expect([...journal.keys()].filter((id) => !ids.includes(id)), 'journal entries never delivered').to.deep.equal([]);
    const rolledBack = ids.filter((id) => !journal.has(id));
    expect(rolledBack.every((id) => owners[Number(id.split(':')[0])] === victim), 'only the victim can lose entries').to.equal(true);
    const unguaranteed = [...acked.values()].filter((a) => !guaranteed(a)).length;
    const lost = [...acked.keys()].filter((jti) => !byJti.has(jti)).length;
    if (process.env.CLUSTER_REPORT) console.log(`    SIGKILL: ${acked.size} acked, ${unguaranteed} not checkpointed, ${lost} acked but lost, ${failed.length} failed calls, ${rolledBack.length} delivered entries not on the replica`);

    await cluster.restart(victim); // rejoins as a replica: the next test has a whole cluster
    expect((await cluster.topology()).find((n) => n.port === victim)?.role).to.equal('replica');
    expect(await cluster.masterPorts()).to.include(replica);
  });

  it('follows a master added with add-node + reshard: events of the moved buckets arrive', async () => {
    // A prefix with buckets in the lowest slots of the master owning slot 0: redis-cli
    // reshard --cluster-from <that master> moves its lowest-numbered slots first.
    const moved = 2048;
    let prefix = '';
    let slots: number[] = [];
    for (let i = 0; i < 200; i++) {
      prefix = testPrefix();
      slots = await slotsOf(newStore(prefix).keys.bases);
      if (slots.filter((s) => s < moved).length >= 2) break;
    }
    const store = newStore(prefix);
    const lifecycle = newLifecycle(store);
    const delivered = record(lifecycle);
    lifecycle.on('error', () => {});
    await lifecycle.start();
    const before = await Promise.all(Array.from({ length: 100 }, (_, i) => store.issue(`user${i % 3}`, { ttl: 60 })));

    const from = await cluster.ownerOf(0);
    const added = await cluster.addMaster({ slots: moved, from });
    const owners = await ownersOf(store);
    const movedBuckets = owners.map((port, b) => (port === added ? b : -1)).filter((b) => b >= 0);
    expect(movedBuckets.length, `buckets on the new master (slots ${slots.join(',')})`).to.be.at.least(2);

    await waitFor('a subscription and the flags on the new master', async () => {
      const [, flags] = (await cluster.admin(added).config('GET', 'notify-keyspace-events')) as string[];
      const [, subs] = (await cluster.admin(added).pubsub('NUMSUB', '__keyevent@0__:del')) as [string, number];
      return [...'Egxe'].every((l) => flags!.includes(l)) && Number(subs) >= 1;
    }, 10_000, 50);

    // Tokens issued before the move, now on the new master: revoked by the store,
    // deleted by another client (heard only through the new master's keyevents).
    const onNew = before.filter((t) => movedBuckets.includes(store.keys.bucketOf(t.jti)));
    expect(onNew.length).to.be.at.least(2);
    const [external, ...rest] = onNew;
    await redis.del(store.keys.token(store.keys.bucketOf(external!.jti), external!.jti));
    for (const t of rest) expect(await store.revoke(t.token)).to.equal(true);
    // And new ones expiring there.
    const fresh: string[] = [];
    while (fresh.length < 10) {
      const t = await store.issue('erin', { ttl: 1 });
      if (movedBuckets.includes(store.keys.bucketOf(t.jti))) fresh.push(t.jti);
      else await store.revoke(t.jti);
    }
    await awaitEnds(delivered, [...onNew.map((t) => t.jti), ...fresh], 10_000);
    const endOf = (jti: string) => delivered.filter((e) => e.jti === jti && e.type !== 'issued').map((e) => e.reason ?? e.type);
    expect(endOf(external!.jti)).to.deep.equal(['external']);
    for (const t of rest) expect(endOf(t.jti)).to.deep.equal(['revoke']);
    for (const jti of fresh) expect(endOf(jti)).to.deep.equal(['expired']);
    const ids = delivered.map((e) => e.id);
    expect(new Set(ids).size, 'no event delivered twice').to.equal(ids.length);
    const journal = await journalOf(store);
    expect([...journal.keys()].filter((id) => !ids.includes(id)), 'journal entries never delivered').to.deep.equal([]);
    expect(lifecycle.synced).to.equal(true);
  });
});
