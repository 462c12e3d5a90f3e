// `npm run bench [-- --quick] [-- --only ops,http,...]`: every figure measured in this run, against a
// private redis-server started here, printed as one Markdown table and written to bench/RESULTS.md.
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { RedisServer } from '../spec/support/redis.js';
import { eventsSection } from './sections/events.js';
import { expirySection } from './sections/expiry.js';
import { httpSection } from './sections/http.js';
import { memorySection } from './sections/memory.js';
import { opsSection } from './sections/ops.js';
import { redisCostSection } from './sections/redis-cost.js';
import { sessionsSection } from './sections/sessions.js';
import type { Config, Row } from './sections/types.js';
import { ratio, sample, show } from './stats.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = onlyArg ? new Set(onlyArg.slice('--only='.length).split(',')) : undefined;

const config: Config = quick
  ? { quick, runs: 3, ops: 2_000, httpSeconds: 2, events: 5_000, expiryResident: [10_000, 100_000], expiryTokens: 100, expiryCap: 10_000, memoryTokens: 2_000, memorySteady: 50_000 }
  : { quick, runs: 5, ops: 10_000, httpSeconds: 5, events: 30_000, expiryResident: [10_000, 100_000, 1_000_000], expiryTokens: 300, expiryCap: 60_000, memoryTokens: 10_000, memorySteady: 1_000_000 };

const sections: [string, (server: RedisServer, config: Config, log: (line: string) => void) => Promise<Row[]>][] = [
  ['ops', opsSection],
  ['http', httpSection],
  ['events', eventsSection],
  ['memory', memorySection],
  ['redis-cost', redisCostSection],
  ['sessions', sessionsSection],
  ['expiry', expirySection],
];

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = Date.now();
const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction'] });
const rows: Row[] = [];
try {
  for (const [name, section] of sections) {
    if (only && !only.has(name)) continue;
    log(`# ${name}`);
    rows.push(...await section(server, config, log));
    await server.client().flushall();
  }
} finally {
  await server.stop();
}
// The cluster rows come from bench/cluster.ts (its own servers) when it is there.
if (!only || only.has('cluster')) {
  if (existsSync(new URL('./cluster.ts', import.meta.url))) {
    log('# cluster');
    try {
      type Measure = (options: { tokens?: number }) => Promise<{ issuePerSec: number; eventsPerSec: number }>;
      const path = './cluster.js'; // not resolved at type-check time: the file is written separately
      const { measureCluster, measureSingle } = (await import(path)) as { measureCluster: Measure; measureSingle: Measure };
      const tokens = quick ? 3_000 : 20_000;
      const cluster: { issuePerSec: number; eventsPerSec: number }[] = [];
      const single: { issuePerSec: number; eventsPerSec: number }[] = [];
      for (let run = 0; run < Math.min(3, config.runs); run++) {
        cluster.push(await measureCluster({ tokens }));
        single.push(await measureSingle({ tokens }));
        log(`  run ${run + 1} done`);
      }
      for (const [what, pick] of [['issue/s', (m: { issuePerSec: number }) => m.issuePerSec], ['issued events/s end to end', (m: { eventsPerSec: number }) => m.eventsPerSec]] as const) {
        const c = sample(cluster.map(pick));
        const n = sample(single.map(pick));
        rows.push({ label: `${what}, 3-master Redis Cluster, concurrency 64 | — | single node`, ours: show(c), other: show(n), vsOther: ratio(c.median, n.median),
          note: what === 'issue/s' ? `bench/cluster.ts: ${tokens} tokens per run, its own local cluster (redis-server --cluster-enabled) and single node, all on this machine's 2 cores.` : undefined });
      }
    } catch (err) {
      rows.push({ label: 'Redis Cluster', ours: 'failed', note: `bench/cluster.ts: ${err instanceof Error ? err.message : String(err)}` });
    }
  } else {
    log('# cluster: skipped (no bench/cluster.ts)');
  }
}

const cpu = cpus();
const machine = `${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}`;
const table = [
  '| measure | this library | jwt-redis (node-redis) | jwt-redis on ioredis | jose + ioredis / other | vs jwt-redis | vs jwt-redis on ioredis | vs jose + ioredis / other |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => {
    // "label | — | comparator": the row is compared with something other than the peers.
    const [label, , against] = r.label.split(' | ');
    const other = against && r.other ? `${against}: ${r.other}` : r.other;
    return `| ${label} | ${r.ours} | ${r.jwtRedis ?? '–'} | ${r.jwtRedisIoredis ?? '–'} | ${other ?? '–'} | ${r.vsJwtRedis ?? '–'} | ${r.vsJwtRedisIoredis ?? '–'} | ${r.vsOther ?? '–'} |`;
  }),
].join('\n');
const notes = rows.flatMap((r) => (r.note ? [`- ${r.label.split(' | ')[0]}: ${r.note}`] : []));
const verdict = (met: boolean | undefined) => (met === undefined ? 'not judged' : met ? 'met' : 'NOT met');
const goals = rows.flatMap((r) => (r.goal ? [`- ${verdict(r.goal.met)}: ${r.goal.text}`] : []));
const text = [
  `Run ${new Date().toISOString()} (${quick ? '--quick' : 'full'}, ${((Date.now() - started) / 1000).toFixed(0)} s) on ${machine}; redis-server private to the run.`,
  `Figures: median of ${config.runs} runs (min–max).`,
  '',
  table,
  '',
  ...notes,
  '',
  'Goals (floors, ratios measured in this run, default options):',
  ...goals,
].join('\n');
process.stdout.write(`${text}\n`);
if (!only && !quick) writeFileSync(new URL('./RESULTS.md', import.meta.url), `# Benchmark results\n\n${text}\n`);
process.exit(0);
