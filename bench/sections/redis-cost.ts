// Redis CPU per operation as instructions: redis-server runs under valgrind's callgrind,
// counting only while the operations run (callgrind_control zeroes the counters before,
// dumps them after). Instructions, unlike the µs of INFO commandstats, do not move with
// what else the machine runs, so the cost of the write path can be compared across runs
// and against a bare SET measured the same way. Skipped when valgrind is not installed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { RedisServer } from '../../spec/support/redis.js';
import { TokenStore } from '../../lib/index.js';
import { SECRET, throughput } from '../ops.js';
import type { Config, Row } from './types.js';

/** The issue's goal: 6 µs of Redis CPU per issued or revoked token, against the 0.9 µs of a SET it measured. */
const GOAL_TIMES_SET = 6 / 0.9;

interface Scenario {
  name: string;
  /** Untimed: what operations 0 to n need (tokens to revoke, sessions to refresh, resident subjects); n warms up. */
  setup(redis: Redis, store: TokenStore, n: number): Promise<(i: number) => Promise<unknown>>;
}

const RESIDENT = 20_000;
const resident = (store: TokenStore) => throughput(RESIDENT, 64, (i) => store.issue(`resident-${i}`, { scope: 'read write' }));

const SCENARIOS: Scenario[] = [
  { name: 'bare SET … EX (ioredis)', setup: async (redis) => (i) => redis.set(`bare:${i}`, '1', 'EX', 900) },
  {
    name: 'issue (a new subject each)',
    setup: async (_, store) => { await resident(store); return (i) => store.issue(`user-${i}`, { scope: 'read write' }); },
  },
  {
    name: 'revoke (by jti)',
    setup: async (_, store, n) => {
      await resident(store);
      const jtis: string[] = [];
      await throughput(n + 1, 64, async (i) => { jtis[i] = (await store.issue(`doomed-${i}`, { scope: 'read write' })).jti; });
      return (i) => store.revoke(jtis[i]!);
    },
  },
  {
    name: 'refresh (rotation)',
    setup: async (_, store, n) => {
      const device = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0', ip: '203.0.113.7' };
      const tokens: string[] = [];
      await throughput(n + 1, 64, async (i) => { tokens[i] = (await store.startSession(`user-${i}`, { scope: 'read write', device })).refreshToken; });
      return (i) => store.refresh(tokens[i]!);
    },
  },
];

function installed(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Instructions redis-server ran while `ops` operations ran, per operation. */
async function measure(scenario: Scenario, n: number, dir: string): Promise<number> {
  const out = join(dir, `${scenario.name.replace(/\W+/g, '-')}.out`);
  const wrapper = join(dir, 'redis-under-callgrind.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=${out} redis-server "$@"\n`, { mode: 0o755 });
  const server = await RedisServer.start({ command: wrapper });
  const redis = server.client();
  const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' });
  try {
    const op = await scenario.setup(redis, store, n);
    await op(n); // untimed: scripts loaded, first calls made
    execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
    await throughput(n, 64, op);
    execFileSync('callgrind_control', ['-d', String(server.pid)], { stdio: 'ignore' });
  } finally {
    await store.close();
    await server.stop();
  }
  // The dump callgrind_control asked for is <out>.1; its "summary:" line holds the total.
  const total = Number(/^summary:\s+(\d+)/m.exec(readFileSync(`${out}.1`, 'utf8'))?.[1]);
  return total / n;
}

export async function redisCostSection(_: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  if (!installed('valgrind')) {
    log('  valgrind is not installed: no instruction counts');
    return [];
  }
  const n = config.quick ? 500 : 2_000;
  const dir = mkdtempSync(join(tmpdir(), 'rtl-callgrind-'));
  const per = new Map<string, number>();
  try {
    for (const scenario of SCENARIOS) {
      per.set(scenario.name, await measure(scenario, n, dir));
      log(`  ${scenario.name}: ${Math.round(per.get(scenario.name)!).toLocaleString('en-US')} instructions per operation`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const set = per.get(SCENARIOS[0]!.name)!;
  const note = `redis-server under callgrind (valgrind), counting only while ${n.toLocaleString('en-US')} operations run at concurrency 64 on a plain ioredis client: the whole server (network, parsing, the scripts, replies). The store with default options, no lifecycle; ${RESIDENT.toLocaleString('en-US')} tokens of other subjects resident for issue and revoke. Repeatable to the instruction, whatever else the machine runs.`;
  return SCENARIOS.slice(1).map((scenario, i) => {
    const value = per.get(scenario.name)!;
    const times = value / set;
    const goal = scenario.name.startsWith('issue') || scenario.name.startsWith('revoke');
    return {
      label: `Redis instructions per operation (callgrind): ${scenario.name} | — | bare SET … EX`,
      ours: Math.round(value).toLocaleString('en-US'),
      other: Math.round(set).toLocaleString('en-US'),
      vsOther: `${times.toFixed(1)}×`,
      ...(i === 0 ? { note } : {}),
      ...(goal ? { goal: { text: `Redis CPU per ${scenario.name.split(' ')[0]}d token ≤ 6 µs, i.e. ≤ ${GOAL_TIMES_SET.toFixed(1)}× the 0.9 µs SET the issue measured (in instructions, this run): ${times.toFixed(1)}×`, met: times <= GOAL_TIMES_SET } } : {}),
    };
  });
}
