import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { main } from '../lib/cli/cli.js';
import { TokenStore } from '../lib/index.js';
import { KeySchema } from '../lib/redis/keys.js';
import { SECRET, useRedis } from './support/fixture.js';
import { RedisServer, freePort, testPrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

interface Run {
  out: string[];
  err: () => string;
  code: Promise<number>;
  stop(): Promise<number>;
}

/** Runs `main()` in-process with captured output; `stop()` is Ctrl-C. */
function run(argv: string[], options: { tty?: boolean; env?: Record<string, string> } = {}): Run {
  const out: string[] = [];
  let err = '';
  let partial = '';
  const stdout = Object.assign(new Writable({
    write(chunk: Buffer, _enc, callback) {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      out.push(...lines);
      callback();
    },
  }), { isTTY: options.tty });
  const controller = new AbortController();
  const code = main(argv, {
    stdout,
    stderr: { write: (chunk: string) => { err += chunk; return true; } },
    env: options.env ?? {},
    signal: controller.signal,
    handleSignals: false,
  });
  return { out, err: () => err, code, stop: () => { controller.abort(); return code; } };
}

const live = (r: Run) => waitFor('the CLI to be live', () => r.err().includes('live:'), 8000);

/** Every journal entry of a prefix, as event ids with their stream id. */
async function journal(redis: Redis, prefix: string, buckets = 16): Promise<{ id: string; bucket: number; stream: string }[]> {
  const keys = new KeySchema(prefix, buckets);
  const all = [];
  for (let b = 0; b < buckets; b++) {
    for (const [stream] of await redis.xrange(keys.log(b), '-', '+')) all.push({ id: `${b}:${stream}`, bucket: b, stream });
  }
  return all;
}

/** `INFO commandstats` as command → calls (e.g. `config|set` → 2). */
async function commandstats(redis: Redis): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const [, name, calls] of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats.set(name!, Number(calls));
  return stats;
}

/** The commands called between two snapshots, with how often. */
function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of after) if (calls > (before.get(name) ?? 0)) out[name] = calls - (before.get(name) ?? 0);
  return out;
}

/** Commands that read (or only set up this connection): what a pure reader may send. */
const READS = new Set([
  'xread', 'xrange', 'xrevrange', 'xlen', 'xinfo|stream', 'xinfo|groups', 'info', 'ping', 'echo', 'hello', 'select',
  'command', 'command|docs', 'command|count', 'client|setname', 'client|id', 'client|info', 'client|list',
  'subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'config|get', 'exists', 'get', 'zrange', 'hget',
]);

function cmp(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}

describe('redis-token-lifecycle tail (CLI)', () => {
  const fx = useRedis();

  it('--help prints the usage and exits 0', async () => {
    const r = run(['--help']);
    expect(await r.code).to.equal(0);
    expect(r.out.join('\n')).to.include('Usage: redis-token-lifecycle tail --url');
    expect(r.out.join('\n')).to.include('--since');
  });

  it('--version prints the version of package.json and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = run(['--version']);
    expect(await r.code).to.equal(0);
    expect(r.out).to.deep.equal([version]);
    expect(r.err()).to.equal('');
  });

  it('bad arguments: a message on stderr and exit code 2, before connecting anywhere', async () => {
    const cases: [string[], RegExp][] = [
      [['tail', '--url', 'redis://127.0.0.1:1', '--nope'], /--nope/],
      [[], /missing command/],
      [['follow', '--url', 'redis://127.0.0.1:1'], /unknown command "follow"/],
      [['tail'], /--url is required/],
      [['tail', '--url', 'http://x'], /--url http:\/\/x/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--buckets', 'x'], /--buckets/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--buckets', '0'], /--buckets/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--prefix', 'a b'], /--prefix/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--since', 'yesterday-ish'], /--since yesterday-ish/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--since', '99:1700000000000-0'], /bucket 99 does not exist/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--since', '0', '--group', 'g'], /--since cannot be combined with --group/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--group', 'a b'], /--group/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--consumer', 'c'], /--consumer needs --group/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--fields', 'jti'], /--fields/],
      [['tail', '--url', 'redis://127.0.0.1:1', '--json=yes'], /--json/],
    ];
    for (const [argv, message] of cases) {
      const r = run(argv);
      expect(await r.code, argv.join(' ')).to.equal(2);
      expect(r.err(), argv.join(' ')).to.match(message);
      expect(r.out, argv.join(' ')).to.deep.equal([]);
    }
  });

  it('exits 1 with a message when Redis cannot be reached', async () => {
    const r = run(['tail', '--url', `redis://127.0.0.1:${await freePort()}`]);
    expect(await r.code).to.equal(1);
    expect(r.err()).to.match(/ECONNREFUSED/);
  });

  it('prints live events as JSON lines (the URL may come from REDIS_URL)', async () => {
    const store = fx.store({ clientId: 'web' });
    const r = run(['tail', '--prefix', store.keys.prefix, '--fields', 'tenant'], { env: { REDIS_URL: fx.server.url } });
    await live(r);
    const a = await store.issue('alice', { scope: 'read', claims: { tenant: 't1' } });
    await store.revoke(a.jti);
    await waitFor('two lines', () => r.out.length >= 2);
    expect(await r.stop()).to.equal(0);
    const [issued, revoked] = r.out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(issued!)).to.deep.equal(['time', 'type', 'jti', 'sub', 'client_id', 'scope', 'id', 'tenant']);
    expect(issued).to.deep.include({ type: 'issued', jti: a.jti, sub: 'alice', client_id: 'web', scope: 'read', tenant: 't1' });
    expect(revoked).to.deep.include({ type: 'revoked', reason: 'revoke', jti: a.jti });
    expect(r.out.join('\n')).to.not.include(a.token);
  });

  it('prints a readable line per event on a terminal, and JSON there with --json', async () => {
    const store = fx.store();
    const tty = run(['tail', '--url', fx.server.url, '--prefix', store.keys.prefix], { tty: true });
    const json = run(['tail', '--url', fx.server.url, '--prefix', store.keys.prefix, '--json'], { tty: true });
    await Promise.all([live(tty), live(json)]);
    const t = await store.issue('bob');
    await store.revokeAll('bob');
    await waitFor('two lines on each', () => tty.out.length >= 2 && json.out.length >= 2);
    await Promise.all([tty.stop(), json.stop()]);
    expect(tty.out[0]).to.match(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  issued +bob +${t.jti}$`));
    expect(tty.out[1]).to.match(new RegExp(`^\\S+Z  revoked  revokeAll  bob +${t.jti}$`));
    expect(JSON.parse(json.out[1]!)).to.deep.include({ type: 'revoked', reason: 'revokeAll' });
  });

  it('prints session events, with the sid', async () => {
    const store = fx.store();
    const tty = run(['tail', '--url', fx.server.url, '--prefix', store.keys.prefix], { tty: true });
    await live(tty);
    const s = await store.startSession('carol');
    await store.revokeSession(s.sid);
    await waitFor('three lines', () => tty.out.length >= 3);
    await tty.stop();
    expect(tty.out[0]).to.match(new RegExp(`^\\S+Z  session_started  +carol +sid ${s.sid} jti ${s.jti}$`));
    expect(tty.out[1]).to.match(new RegExp(`^\\S+Z  revoked  session +carol +${s.jti}$`));
    expect(tty.out[2]).to.match(new RegExp(`^\\S+Z  session_ended  revoked +carol +sid ${s.sid}$`));
  });

  it('--group: two tails in one group print each event once between them', async () => {
    const store = fx.store();
    const args = ['tail', '--url', fx.server.url, '--prefix', store.keys.prefix, '--group', 'ops'];
    const one = run([...args, '--consumer', 'one']);
    const two = run([...args, '--consumer', 'two']);
    await Promise.all([live(one), live(two)]);
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.issue(`u${i}`)));
    await waitFor('30 lines between them', () => one.out.length + two.out.length >= 30);
    await Promise.all([one.stop(), two.stop()]);
    const ids = [...one.out, ...two.out].map((l) => (JSON.parse(l) as { id: string }).id);
    expect(new Set(ids).size).to.equal(30);
    expect(ids).to.have.length(30);
  });

  it('is a pure reader without --group: no write command reaches Redis (no sweep, no trim, no CONFIG SET), and needs no notify-keyspace-events letter', async function () {
    this.timeout(20_000);
    // Its own server: commandstats count every client of it. notify-keyspace-events is empty (the default).
    const server = await RedisServer.start();
    const redis = server.client();
    const prefix = testPrefix();
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix, cache: false });
    let r: Run | undefined;
    try {
      // A journal written by a store: long-lived tokens, revoked ones, and tokens about to expire
      // (a sweeper would reap them: a write).
      const long = await Promise.all(Array.from({ length: 40 }, (_, i) => store.issue(`u${i % 4}`, { ttl: 600 })));
      await Promise.all(long.slice(0, 10).map((t) => store.revoke(t.jti)));
      const soon = await Promise.all(Array.from({ length: 20 }, (_, i) => store.issue(`s${i % 4}`, { ttl: 1 })));
      const lengths = async () => Promise.all(Array.from({ length: 16 }, (_, b) => redis.xlen(new KeySchema(prefix, 16).log(b))));
      const journalBefore = await lengths();
      // Window 1: the tail starts and runs past those deadlines.
      const s0 = await commandstats(redis);
      r = run(['tail', '--url', server.url, '--prefix', prefix]);
      await live(r);
      const reads = async (since: Map<string, number>, n: number) => (delta(since, await commandstats(redis)).xread ?? 0) >= n;
      const lastDeadline = Math.max(...soon.map((t) => t.expiresAt));
      await waitFor('the deadlines to pass and the tail to poll after them', async () => Date.now() > lastDeadline + 600 && reads(s0, 4), 8000);
      const d1 = delta(s0, await commandstats(redis));
      expect(Object.keys(d1).filter((c) => !READS.has(c)), `commands while tail started and ran: ${JSON.stringify(d1)}`).to.deep.equal([]);
      expect(await lengths(), 'journal lengths').to.deep.equal(journalBefore);
      expect(await redis.config('GET', 'notify-keyspace-events')).to.deep.equal(['notify-keyspace-events', '']);
      expect(r.err()).to.not.include('warning');
      // Window 2: new events arrive from a store while the tail runs; it prints them at once
      // (the store's scripts publish on the journal's wake channel),
      // then the store is done and closed, and only the tail is measured, past their deadlines.
      const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => store.issue(`f${i}`, { ttl: 1 })));
      await waitFor('the tail to print the new events', () => fresh.every((t) => r!.out.some((line) => line.includes(t.jti))), 1000);
      await (store as { close?: () => Promise<void> }).close?.();
      const s2 = await commandstats(redis);
      const freshDeadline = Math.max(...fresh.map((t) => t.expiresAt));
      await waitFor('their deadlines to pass and the tail to poll after them', async () => Date.now() > freshDeadline + 600 && reads(s2, 4), 8000);
      const d2 = delta(s2, await commandstats(redis));
      expect(Object.keys(d2).filter((c) => !READS.has(c)), `commands while only tail ran: ${JSON.stringify(d2)}`).to.deep.equal([]);
      // (Window 1's expiries may be journaled by the store's own issues in window 2, which reap a few overdue entries.)
      expect(r.out.filter((line) => line.includes('"expired"') && fresh.some((t) => line.includes(t.jti))), 'no sweep: nothing journals the new expiries').to.deep.equal([]);
      expect(await r.stop()).to.equal(0);
    } finally {
      await r?.stop();
      await server.stop();
    }
  });

  it('--configure changes no letter of notify-keyspace-events (tail needs none) and prints events at once', async function () {
    this.timeout(20_000);
    const server = await RedisServer.start({ args: ['--notify-keyspace-events', 'Eg'] });
    const redis = server.client();
    const prefix = testPrefix();
    const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.test', prefix, cache: false });
    const r = run(['tail', '--url', server.url, '--prefix', prefix, '--configure']);
    try {
      await live(r);
      const [, letters] = (await redis.config('GET', 'notify-keyspace-events')) as [string, string];
      expect(letters, 'as redis.conf set them').to.equal('gE');
      expect(r.err()).to.not.include('warning');
      const t = await store.issue('kim');
      await waitFor('its line', () => r.out.some((line) => line.includes(t.jti)), 3000);
      expect(await r.stop()).to.equal(0);
    } finally {
      await r.stop();
      await (store as { close?: () => Promise<void> }).close?.();
      await server.stop();
    }
  });

  for (const form of ['event id', 'ISO time'] as const) {
    it(`--since <${form}> replays the journal, then continues live: none missing, none twice around the hand-over`, async () => {
      const store = fx.store();
      // Enough history that the replay takes a while (pages of 500) while live events pile up.
      const before = await Promise.all(Array.from({ length: 3000 }, (_, i) => store.issue(`p${i % 5}`)));
      await Promise.all(before.slice(0, 100).map((t) => store.revoke(t.jti)));
      const entries = (await journal(fx.redis, store.keys.prefix)).sort((a, b) => cmp(a.stream, b.stream));
      const pivot = entries[500]!;
      const since = form === 'event id' ? pivot.id : new Date(Number(pivot.stream.split('-')[0])).toISOString();
      // Events keep coming while the CLI starts, replays and hands over.
      let issuing = true;
      const during = (async () => {
        for (let i = 0; issuing; i++) await store.issue(`d${i % 3}`);
      })();
      const r = run(['tail', '--url', fx.server.url, '--prefix', store.keys.prefix, '--since', since]);
      try {
        await live(r);
        await waitFor('a few live events after the hand-over', () => r.out.length > 2700);
      } finally {
        issuing = false;
        await during;
      }
      await store.revokeAll('d0');
      const all = await journal(fx.redis, store.keys.prefix);
      const sinceMs = Number(pivot.stream.split('-')[0]);
      const expected = all.filter((e) => (form === 'event id' && e.bucket === pivot.bucket ? cmp(e.stream, pivot.stream) > 0 : cmp(e.stream, `${sinceMs}-0`) >= 0));
      await waitFor('every journal entry from --since on', () => r.out.length >= expected.length, 8000);
      expect(await r.stop()).to.equal(0);
      const ids = r.out.map((l) => (JSON.parse(l) as { id: string }).id);
      expect(ids.length - new Set(ids).size, 'duplicates').to.equal(0);
      expect(ids).to.have.members(expected.map((e) => e.id));
      if (form === 'event id') expect(ids).to.not.include(pivot.id);
      else expect(ids).to.include(pivot.id);
      // The replay comes out in time order.
      const replayed = ids.slice(0, expected.filter((e) => cmp(e.stream, entries.at(-1)!.stream) <= 0).length);
      const streams = replayed.map((id) => id.split(':')[1]!);
      expect(streams).to.deep.equal([...streams].sort(cmp));
    });
  }

  /** `node --import tsx spec/support/cli-main.ts tail …`: what the bin does, without a build. */
  function child(url: string, prefix: string) {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'spec/support/cli-main.ts', 'tail', '--url', url, '--prefix', prefix], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const io = { out: '', err: '' };
    proc.stdout.on('data', (c: Buffer) => { io.out += c.toString(); });
    proc.stderr.on('data', (c: Buffer) => { io.err += c.toString(); });
    const exited = new Promise<[number | null, string | null]>((resolve) => proc.once('exit', (code, sig) => resolve([code, sig])));
    const exit = (within: number) => Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within ${within} ms: ${io.err}`)), within))]);
    return { proc, io, exit };
  }

  it('ends with exit code 0 on SIGINT even while Redis is down (a real process)', async function () {
    this.timeout(30_000);
    const server = await RedisServer.start();
    const c = child(server.url, 'down:');
    try {
      await waitFor('the child to be live', () => c.io.err.includes('live:'), 15_000);
      await server.kill();
      await waitFor('the child to notice', () => /ECONNREFUSED|unavailable|Connection is closed/i.test(c.io.err), 5000);
      c.proc.kill('SIGINT');
      expect(await c.exit(4000), c.io.err).to.deep.equal([0, null]);
    } finally {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      await server.stop();
    }
  });

  it('ends with exit code 0 on SIGINT and on SIGTERM (a real process)', async function () {
    this.timeout(30_000);
    const store = fx.store();
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const c = child(fx.server.url, store.keys.prefix);
      try {
        await waitFor(`the child to be live (${signal})`, () => c.io.err.includes('live:'), 15_000);
        const t = await store.issue('eve');
        await waitFor('its line', () => c.io.out.includes(t.jti));
        c.proc.kill(signal);
        expect(await c.exit(4000), c.io.err).to.deep.equal([0, null]);
        expect(JSON.parse(c.io.out.trim().split('\n')[0]!)).to.deep.include({ type: 'issued', jti: t.jti });
      } finally {
        if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      }
    }
  });
});
