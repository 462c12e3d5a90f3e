// Fault case: a reuse storm (every session's old refresh token replayed at once, so every
// session ends with reuse_detected) while a consumer-group member in a child process is
// SIGKILLed in the middle of a session_ended handler. Another member started after the
// kill takes over: every session_ended the journal holds is handled exactly once.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { TokenLifecycle, TokenStore, type TokenEvent } from '../../lib/index.js';
import { journalEvent } from '../../lib/events/event.js';
import { SECRET } from '../support/fixture.js';
import { RedisServer, testPrefix } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SESSIONS = 100;

describe('faults: consumer killed during a reuse storm', () => {
  it('no session_ended is lost or handled twice across the killed member and the one that takes over', async function () {
    this.timeout(60_000);
    const server = await RedisServer.start();
    const redis = server.client();
    const prefix = testPrefix();
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix, sessions: { refreshGrace: 100 } });
    const child = spawn(process.execPath, ['--import', 'tsx', join('spec', 'faults', 'consumer.ts')], {
      cwd: ROOT,
      env: { ...process.env, REDIS_PORT: String(server.port), PREFIX: prefix, GROUP: 'audit', CONSUMER: 'child', CLAIM_AFTER_MS: '500', SLOW_SUB: 'slow', SLOW_TYPE: 'session_ended' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let member: TokenLifecycle | undefined;
    try {
      const handled: { by: string; id: string; type: string }[] = [];
      let ready = false;
      let stuck: string | undefined;
      let buffer = '';
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = JSON.parse(buffer.slice(0, nl)) as { kind: string; id: string; type: string };
          buffer = buffer.slice(nl + 1);
          if (line.kind === 'ready') ready = true;
          else if (line.kind === 'start') stuck = line.id;
          else if (line.kind === 'handled') handled.push({ by: 'child', id: line.id, type: line.type });
        }
      });
      const closed = new Promise((resolve) => child.stdout!.once('close', resolve));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_, signal) => resolve(signal)));
      await waitFor('the child member to start', () => {
        if (child.exitCode !== null) throw new Error(`consumer exited with ${child.exitCode}: ${stderr}`);
        return ready;
      }, 20_000, 20);

      // Sessions, each refreshed once; the slow one sits in the middle.
      const subs = Array.from({ length: SESSIONS }, (_, i) => (i === SESSIONS / 2 ? 'slow' : `user-${i}`));
      const started = await Promise.all(subs.map((sub) => store.startSession(sub)));
      await Promise.all(started.map((s) => store.refresh(s.refreshToken)));
      await new Promise((r) => setTimeout(r, 150));
      // The storm: every old refresh token replayed at once, after the grace window.
      const codes = await Promise.all(started.map((s) => store.refresh(s.refreshToken).then(() => 'ok', (e: { code: string }) => e.code)));
      expect(new Set(codes)).to.deep.equal(new Set(['ERR_REFRESH_REUSED']));
      await waitFor('the child to be inside the slow session_ended handler', () => stuck, 10_000, 5);
      child.kill('SIGKILL');
      expect(await exited).to.equal('SIGKILL');
      await closed;
      const byChild = handled.length;

      member = new TokenLifecycle({ redis, prefix, group: 'audit', consumer: 'member', claimAfterMs: 500, pollInterval: 200 });
      for (const type of ['issued', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const) {
        member.on(type, (e: TokenEvent) => { handled.push({ by: 'member', id: e.id, type: e.type }); });
      }
      await member.start();

      // What the journal holds: every session_ended, of every bucket.
      const journaled = new Set<string>();
      for (let b = 0; b < store.keys.buckets; b++) {
        for (const [id, fields] of await redis.xrange(store.keys.log(b), '-', '+')) if (journalEvent(b, id, fields).type === 'session_ended') journaled.add(`${b}:${id}`);
      }
      expect(journaled.size).to.equal(SESSIONS);
      await waitFor('every session_ended handled', () => handled.filter((h) => h.type === 'session_ended').length >= SESSIONS, 15_000);
      await new Promise((r) => setTimeout(r, 700)); // a duplicate would be redelivered after claimAfterMs
      const ended = handled.filter((h) => h.type === 'session_ended');
      expect(ended.length, `session_ended handled (child ${byChild} events before the kill)`).to.equal(SESSIONS);
      expect(new Set(ended.map((h) => h.id))).to.deep.equal(journaled);
      expect(ended.filter((h) => h.id === stuck).map((h) => h.by), 'the one the child died in').to.deep.equal(['member']);
      expect(ended.some((h) => h.by === 'child'), 'the child handled some before it died').to.equal(true);
      const all = handled.map((h) => h.id);
      expect(new Set(all).size, 'no event handled twice').to.equal(all.length);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await member?.stop();
      await store.close();
      redis.disconnect();
      await server.stop();
    }
  });
});
