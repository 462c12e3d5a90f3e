// Candidate write paths for issue 11, measured side by side: Redis CPU per issued token
// (INFO commandstats) and bytes per live token (MEMORY USAGE summed), for 2,000 tokens at
// once and 50,000 live with deadlines spread over 900 s. Each variant swaps the issue
// script in place (the store's own arguments are unchanged), so the figures show what a
// layout change would save before the readers are changed to match:
//   base  today's script
//   S     (landed on 2026-11-30 as include/subjects.lua, so no longer a variant)
//   C     (landed on 2026-11-30: entries carry type, jti and the record, no claims, no `at`)
//   B     one journal entry per script call and bucket: jti -> record pairs
// Run: npx tsx bench/write-path-layouts.ts [base|C|B]
import { readFileSync } from 'node:fs';
import { RedisServer } from '../spec/support/redis.js';
import { TokenStore } from '../lib/index.js';
import { scripts } from '../lib/redis/script.js';
import { throughput } from './ops.js';
import { usage } from './sections/memory.js';

const variant = process.argv[2] ?? 'base';
const dir = new URL('../lib/redis/scripts/', import.meta.url).pathname;
const inc = (t: string, done = new Set<string>()): string => t.replace(/^-- @include (\w[\w-]*)$/gm, (_, n: string) => {
  if (done.has(n)) return ''; done.add(n); return inc(readFileSync(`${dir}include/${n}.lua`, 'utf8'), done);
});
if (variant !== 'base') {
  let lua = inc(readFileSync(`${dir}issue-n.lua`, 'utf8'));
  const rep = (a: string, b: string) => { if (!lua.includes(a)) throw new Error(`missing: ${a}`); lua = lua.replace(a, b); };
  if (variant.includes('S')) throw new Error('S is the layout now (include/subjects.lua)');
  if (variant.includes('C')) throw new Error('C is the layout now (include/journal.lua)');
  if (variant.includes('B')) {
    rep("      journal(base, retention, 'issued', jti, false, record, now)", "    local b = batch[base] if not b then b = {} batch[base] = b end b[#b + 1] = jti b[#b + 1] = record");
    rep("local out = {}\nlocal k = 0", "local out = {}\nlocal batch = {}\nlocal k = 0");
    const last = lua.lastIndexOf('return out\n'); // the script's own, after the includes' functions
    lua = `${lua.slice(0, last)}for base, fields in pairs(batch) do redis.call('XADD', base .. 'log', 'MAXLEN', '~', 6250, '*', 't', 'i', unpack(fields)) end\n${lua.slice(last)}`;
  }
  const sha = (await import('node:crypto')).createHash('sha1').update(lua).digest('hex');
  type Client = { evalsha(...a: unknown[]): Promise<unknown>; eval(...a: unknown[]): Promise<unknown> };
  (scripts as unknown as Record<string, unknown>).issue = { name: 'issue-n', numberOfKeys: -1, run: async (redis: Client, keys: string[], args: unknown[]) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      return redis.eval(lua, keys.length, ...keys, ...args);
    }
  } };
}
const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction'] });
const redis = server.client();
const key = 'a-test-secret-that-is-at-least-32-bytes-long';
for (const [label, n, ttl] of [['2k at once', 2000, () => 900], ['50k steady', 50000, (i: number) => 900 + (i % 900)]] as const) {
  await redis.flushall();
  const store = new TokenStore({ redis, key, issuer: 'https://issuer.bench', audience: 'api', cache: false });
  await store.issue('warm');
  await redis.config('RESETSTAT');
  await throughput(n, 256, (i) => store.issue(`user${i}`, { scope: 'read write', ttl: ttl(i) }));
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info('commandstats'))!;
  const found = await usage(redis, 'tok:*');
  const by = [...found.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(0)}`).join(', ');
  console.log(`${variant} ${label}: ${(Number(m[2]) / n).toFixed(2)} us/token, ${(found.total / n).toFixed(0)} B/token (${by})`);
}
await server.stop();
