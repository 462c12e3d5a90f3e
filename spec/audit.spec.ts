import { Writable } from 'node:stream';
import { expect } from 'chai';
import { ConfigError, auditLog, type TokenEvent } from '../lib/index.js';
import { useRedis } from './support/fixture.js';
import { waitFor } from './support/wait.js';

describe('auditLog', () => {
  const fx = useRedis();

  it('writes one JSON line per event with exactly the documented fields, never the token', async () => {
    const store = fx.store({ clientId: 'web' });
    const lifecycle = fx.lifecycle();
    const lines: string[] = [];
    auditLog({ lifecycle, write: (line) => { lines.push(line); } });
    const withTenant: string[] = [];
    auditLog({ lifecycle, write: (line) => { withTenant.push(line); }, fields: ['tenant', 'iss'] });
    await lifecycle.start();
    const a = await store.issue('alice', { ttl: 1, scope: 'read write', claims: { tenant: 't1', secret: 'nope' } });
    const b = await store.issue('bob', { ttl: 60 });
    await store.revoke(b.token);
    await waitFor('issued ×2, revoked, expired', () => lines.length >= 4, 5000);
    expect(lines).to.have.length(4);
    for (const line of [...lines, ...withTenant]) {
      expect(line).to.not.include('\n');
      expect(line).to.not.include(a.token).and.not.include(b.token);
      expect(line).to.not.include('nope');
    }
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const issuedA = records.find((r) => r.type === 'issued' && r.jti === a.jti)!;
    expect(Object.keys(issuedA)).to.deep.equal(['time', 'type', 'jti', 'sub', 'client_id', 'scope', 'id']);
    expect(issuedA).to.deep.include({ type: 'issued', jti: a.jti, sub: 'alice', client_id: 'web', scope: 'read write' });
    expect(issuedA.id).to.match(/^\d+:\d+-\d+$/);
    expect(new Date(issuedA.time as string).toISOString()).to.equal(issuedA.time);
    expect(Date.parse(issuedA.time as string)).to.be.closeTo(Date.now(), 5000);
    const revoked = records.find((r) => r.type === 'revoked')!;
    expect(Object.keys(revoked)).to.deep.equal(['time', 'type', 'reason', 'jti', 'sub', 'client_id', 'id']);
    expect(revoked).to.deep.include({ reason: 'revoke', jti: b.jti, sub: 'bob' });
    const expired = records.find((r) => r.type === 'expired')!;
    expect(expired).to.deep.include({ jti: a.jti, sub: 'alice', scope: 'read write' });
    expect(expired).to.not.have.property('reason');

    await waitFor('the second sink', () => withTenant.length >= 4);
    const extra = withTenant.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.type === 'issued' && r.jti === a.jti)!;
    expect(Object.keys(extra)).to.deep.equal(['time', 'type', 'jti', 'sub', 'client_id', 'scope', 'id', 'tenant', 'iss']);
    expect(extra).to.deep.include({ tenant: 't1', iss: 'https://issuer.test' });
  });

  it('writes session events too: sid, device on session_started, reason on session_ended, and the sid of a session\'s tokens', async () => {
    const store = fx.store({ clientId: 'web' });
    const lifecycle = fx.lifecycle();
    const lines: string[] = [];
    auditLog({ lifecycle, write: (line) => { lines.push(line); } });
    await lifecycle.start();
    const s = await store.startSession('alice', { scope: 'read', device: { userAgent: 'curl/8', ip: '192.0.2.1' } });
    const r = await store.refresh(s.refreshToken);
    await store.revokeSession(s.sid, 'logout');
    // session_started and refreshed (each with the access token it issued), revoked ×2, session_ended
    await waitFor('five records', () => lines.length >= 5, 5000);
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((x) => x.type)).to.deep.equal(['session_started', 'refreshed', 'revoked', 'revoked', 'session_ended']);
    expect(Object.keys(records[0]!)).to.deep.equal(['time', 'type', 'jti', 'sub', 'sid', 'device', 'client_id', 'scope', 'id']);
    expect(records[0]).to.deep.include({ jti: s.jti, sub: 'alice', sid: s.sid, device: { userAgent: 'curl/8', ip: '192.0.2.1' }, client_id: 'web', scope: 'read' });
    expect(records[1]).to.deep.include({ type: 'refreshed', jti: r.jti, sid: s.sid });
    expect(records.slice(2, 4).map((x) => [x.reason, x.sid])).to.deep.equal([['session', s.sid], ['session', s.sid]]);
    expect(records[4]).to.deep.include({ type: 'session_ended', reason: 'logout', sid: s.sid, jti: '' });
    for (const line of lines) expect(line).to.not.include(s.refreshToken).and.not.include(r.refreshToken).and.not.include(s.token);
  });

  it('respects a slow stream\'s backpressure: never writes while it asks to drain, and loses nothing', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const received: string[] = [];
    const stream = new Writable({
      highWaterMark: 64,
      write(chunk: Buffer, _enc, callback) {
        received.push(chunk.toString());
        setTimeout(callback, 5);
      },
    });
    let violations = 0;
    let waits = 0;
    const write = stream.write.bind(stream);
    stream.write = ((chunk: string) => {
      if (stream.writableNeedDrain) violations++;
      const ok = write(chunk);
      if (!ok) waits++;
      return ok;
    }) as typeof stream.write;
    auditLog({ lifecycle, write: stream });
    await lifecycle.start();
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => store.issue(`u${i}`)));
    await waitFor('40 lines through the slow stream', () => received.length >= 40, 10_000);
    expect(violations).to.equal(0);
    expect(waits).to.be.greaterThan(30); // every line (> 64 bytes) filled the buffer
    const jtis = received.map((line) => (JSON.parse(line) as { jti: string }).jti);
    expect(new Set(jtis)).to.deep.equal(new Set(tokens.map((t) => t.jti)));
    expect(received.every((l) => l.endsWith('\n'))).to.equal(true);
  });

  it('gives a pino-like logger objects (event_time, since loggers stamp their own time)', async () => {
    const store = fx.store({ clientId: 'cli' });
    const lifecycle = fx.lifecycle();
    const got: unknown[] = [];
    auditLog({ lifecycle, write: { info(record: Record<string, unknown>) { got.push(record); } } });
    await lifecycle.start();
    const t = await store.issue('carol', { scope: 'admin' });
    await store.revokeAll('carol');
    await waitFor('two objects', () => got.length >= 2);
    const [issued, revoked] = got as Record<string, unknown>[];
    expect(issued).to.be.an('object');
    expect(Object.keys(issued!)).to.deep.equal(['event_time', 'type', 'jti', 'sub', 'client_id', 'scope', 'id']);
    expect(issued).to.deep.include({ type: 'issued', jti: t.jti, sub: 'carol', client_id: 'cli', scope: 'admin' });
    expect(revoked).to.deep.include({ type: 'revoked', reason: 'revokeAll', jti: t.jti });
  });

  it('with a consumer group, two instances write each event exactly once between them', async () => {
    const store = fx.store();
    const a = fx.lifecycle({ group: 'audit', consumer: 'a' });
    const b = fx.lifecycle({ group: 'audit', consumer: 'b' });
    const linesA: string[] = [];
    const linesB: string[] = [];
    auditLog({ lifecycle: a, write: async (line) => { await new Promise((r) => setImmediate(r)); linesA.push(line); } });
    auditLog({ lifecycle: b, write: (line) => { linesB.push(line); } });
    await Promise.all([a.start(), b.start()]);
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => store.issue(`g${i % 4}`)));
    await Promise.all(tokens.slice(0, 10).map((t) => store.revoke(t.jti)));
    await waitFor('50 lines over both instances', () => linesA.length + linesB.length >= 50, 8000);
    const ids = [...linesA, ...linesB].map((l) => (JSON.parse(l) as { id: string }).id);
    expect(ids).to.have.length(50);
    expect(new Set(ids).size).to.equal(50);
    expect(linesA.length).to.be.greaterThan(0);
    expect(linesB.length).to.be.greaterThan(0);
  });

  it('acknowledges a group event only once its write succeeded: a failed write is retried', async () => {
    const store = fx.store();
    const member = fx.lifecycle({ group: 'g', consumer: 'm', claimAfterMs: 300 });
    member.on('error', () => {});
    const lines: string[] = [];
    let calls = 0;
    auditLog({
      lifecycle: member,
      write: async (line) => {
        if (++calls === 1) throw new Error('disk full');
        lines.push(line);
      },
    });
    await member.start();
    const t = await store.issue('flaky');
    await waitFor('the retried write', () => lines.length >= 1, 5000);
    expect(calls).to.be.greaterThanOrEqual(2);
    expect((JSON.parse(lines[0]!) as TokenEvent).jti).to.equal(t.jti);
    await waitFor('nothing pending', async () => ((await fx.redis.xpending(store.keys.log(store.keys.bucketOf(t.jti)), 'g')) as [number])[0] === 0);
  });

  it('close() detaches it from the lifecycle', async () => {
    const store = fx.store();
    const lifecycle = fx.lifecycle();
    const lines: string[] = [];
    const seen: TokenEvent[] = [];
    const audit = auditLog({ lifecycle, write: (line) => { lines.push(line); } });
    expect(lifecycle.listenerCount('issued')).to.equal(1);
    await lifecycle.start();
    await store.issue('dan');
    await waitFor('the first line', () => lines.length === 1);
    audit.close();
    audit.close(); // twice is fine
    expect(lifecycle.listenerCount('issued')).to.equal(0);
    expect(lifecycle.listenerCount('expired')).to.equal(0);
    expect(lifecycle.listenerCount('revoked')).to.equal(0);
    lifecycle.on('issued', (e) => { seen.push(e); });
    await store.issue('dan');
    await waitFor('the second event', () => seen.length === 1);
    expect(lines).to.have.length(1);
  });

  it('rejects bad options with a ConfigError naming the option', () => {
    const lifecycle = fx.lifecycle();
    const bad = (options: unknown, option: string) => {
      expect(() => auditLog(options as never)).to.throw(ConfigError).with.property('option', option);
    };
    bad(undefined, 'options');
    bad({ write: () => {} }, 'lifecycle');
    bad({ lifecycle: {}, write: () => {} }, 'lifecycle');
    bad({ lifecycle }, 'write');
    bad({ lifecycle, write: 'stdout' }, 'write');
    bad({ lifecycle, write: {} }, 'write');
    bad({ lifecycle, write: () => {}, fields: 'tenant' }, 'fields');
    bad({ lifecycle, write: () => {}, fields: [''] }, 'fields');
    bad({ lifecycle, write: () => {}, fields: ['time'] }, 'fields');
    bad({ lifecycle, write: () => {}, fields: ['token'] }, 'fields');
    expect(lifecycle.listenerCount('issued')).to.equal(0);
  });
});
