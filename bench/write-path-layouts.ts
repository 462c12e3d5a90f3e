// Candidate write paths for issue 11, measured side by side: Redis CPU per issued token
// (INFO commandstats) and bytes per live token (MEMORY USAGE summed), for 2,000 tokens at
// once and 50,000 live with deadlines spread over 900 s. Each variant swaps the issue
// script in place (the store's own arguments are unchanged), so the figures show what a
// layout change would save before the readers are changed to match:
//   base  today's script
//   S     (landed on 2026-11-30 as include/subjects.lua, so no longer a variant)
//   C     (landed on 2026-11-30: entries carry type, jti and the record, no claims, no `at`)
//   B     one journal entry per script call and bucket: jti -> record pairs
//   F     the floor of this layout: only the four writes per token (SET PXAT NX of the key,
//         HSET of the record, HSETNX of the subject entry, XADD of the entry), no logic:
//         no templates, no reaping, no wake, the subject taken as the record's last 9
//         characters. What no script keeping these four structures per token can beat.
//         For revoke likewise (REVOKE_FLOOR below): the record read, the key deleted, the
//         record buried, one entry; no kept answer, no wake.
// Every run also measures a plain SET of a new key on the same server, the issue's unit.
// Run: npx tsx bench/write-path-layouts.ts [base|C|B|F]
import { createHash } from 'node:crypto';
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
const FLOOR = `local g = 3 + 2 * tonumber(ARGV[2])
local out, k = {}, 0
while g <= #ARGV do
  local base, n = ARGV[g], tonumber(ARGV[g + 2])
  local skip, log = #base + 3, base .. 'log'
  for i = g + 3, g + 2 + n do
    k = k + 1
    local key, record = KEYS[k], ARGV[i]
    local jti = string.sub(key, skip)
    local second = string.format('%d', tonumber(string.sub(jti, 1, 7), 36))
    redis.call('SET', key, '1', 'PXAT', second .. '000', 'NX')
    redis.call('HSET', base .. 'x:' .. second, jti, record, '~', '')
    redis.call('HSETNX', base .. 'subs', string.sub(record, -9), jti)
    redis.call('XADD', log, 'MAXLEN', '~', '100000', '*', 'issued', jti .. ' ' .. record)
    out[k] = 1
  end
  g = g + 3 + n
end
return out
`;
// The same floor for revoke: read the record, delete the key, bury the record, one entry
// with the named fields every version's revocation feed reads; no kept answer, no wake.
const REVOKE_FLOOR = `local out = {}
for i = 0, #KEYS - 2 do
  local base, jti = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local window = base .. 'x:' .. string.format('%d', tonumber(string.sub(jti, 1, 7), 36))
  local record = redis.call('HGET', window, jti)
  if redis.call('DEL', KEYS[i + 1]) == 1 then
    if record then redis.call('HSET', window, jti, '-' .. record) end
    redis.call('XADD', base .. 'log', 'MAXLEN', '~', '100000', '*', 'type', 'revoked', 'jti', jti, 'reason', '', 'record', record or '')
    out[i + 1] = 1
  else
    out[i + 1] = 0
  end
end
return out
`;
/** Runs `lua` in place of the store's script `name` (the store's own arguments are unchanged). */
function swap(name: 'issue' | 'revoke', lua: string): void {
  const sha = createHash('sha1').update(lua).digest('hex');
  type Client = { evalsha(...a: unknown[]): Promise<unknown>; eval(...a: unknown[]): Promise<unknown> };
  (scripts as unknown as Record<string, unknown>)[name] = { name, numberOfKeys: -1, run: async (redis: Client, keys: string[], args: unknown[]) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      return redis.eval(lua, keys.length, ...keys, ...args);
    }
  } };
}
if (variant !== 'base') {
  let lua = variant === 'F' ? FLOOR : inc(readFileSync(`${dir}issue-n.lua`, 'utf8'));
  const rep = (a: string, b: string) => { if (!lua.includes(a)) throw new Error(`missing: ${a}`); lua = lua.replace(a, b); };
  if (variant.includes('S')) throw new Error('S is the layout now (include/subjects.lua)');
  if (variant.includes('C')) throw new Error('C is the layout now (include/journal.lua)');
  if (variant.includes('B')) {
    rep("      journal(base, retention, 'issued', jti, false, record, now)", "    local b = batch[base] if not b then b = {} batch[base] = b end b[#b + 1] = jti b[#b + 1] = record");
    rep("local out = {}\nlocal k = 0", "local out = {}\nlocal batch = {}\nlocal k = 0");
    const last = lua.lastIndexOf('return out\n'); // the script's own, after the includes' functions
    lua = `${lua.slice(0, last)}for base, fields in pairs(batch) do redis.call('XADD', base .. 'log', 'MAXLEN', '~', 6250, '*', 't', 'i', unpack(fields)) end\n${lua.slice(last)}`;
  }
  swap('issue', lua);
}
if (variant === 'F') swap('revoke', REVOKE_FLOOR);
const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction'] });
const redis = server.client();
/** A command's Redis CPU in µs since the last RESETSTAT (INFO commandstats), in all and per call. */
async function cpuOf(command: string): Promise<{ usec: number; perCall: number }> {
  const m = new RegExp(`cmdstat_${command}:calls=\\d+,usec=(\\d+),usec_per_call=([\\d.]+)`).exec(await redis.info('commandstats'))!;
  return { usec: Number(m[1]), perCall: Number(m[2]) };
}
const key = 'a-test-secret-that-is-at-least-32-bytes-long';
for (const [label, n, ttl] of [['2k at once', 2000, () => 900], ['50k steady', 50000, (i: number) => 900 + (i % 900)]] as const) {
  await redis.flushall();
  const store = new TokenStore({ redis, key, issuer: 'https://issuer.bench', audience: 'api', cache: false });
  await store.issue('warm');
  await redis.config('RESETSTAT');
  await throughput(n, 256, (i) => store.issue(`user${i}`, { scope: 'read write', ttl: ttl(i) }));
  const { usec } = await cpuOf('evalsha');
  const found = await usage(redis, 'tok:*');
  const by = [...found.by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(0)}`).join(', ');
  console.log(`${variant} ${label}: ${(usec / n).toFixed(2)} us/token, ${(found.total / n).toFixed(0)} B/token (${by})`);
}
// Revoke, 20,000 live tokens revoked by jti (the 50k steady tokens are still resident).
{
  const store = new TokenStore({ redis, key, issuer: 'https://issuer.bench', audience: 'api', cache: false });
  const jtis: string[] = [];
  await throughput(20_000, 256, async (i) => { jtis[i] = (await store.issue(`revoked${i}`, { scope: 'read write', ttl: 900 })).jti; });
  await redis.config('RESETSTAT');
  await throughput(20_000, 256, (i) => store.revoke(jtis[i]!));
  console.log(`${variant} revoke 20k: ${((await cpuOf('evalsha')).usec / 20_000).toFixed(2)} us/token`);
}
await redis.config('RESETSTAT');
await throughput(50_000, 256, (i) => redis.set(`plain:${i}`, '1'));
console.log(`SET of a new key: ${(await cpuOf('set')).perCall} us`);
await server.stop();
