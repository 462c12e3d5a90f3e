// `npx tsx bench/profile.ts <issue|verify|verify-repeated|revoke|refresh> [count]`: one operation of this
// library in a loop at concurrency 64, against a private redis-server, profiled (only the timed
// loop) with the V8 CPU profiler; prints where the time went, by package and by function, and
// writes <tmpdir>/rtl-<op>.cpuprofile for Chrome DevTools. BENCH_NO_CACHE=1 turns the cache off;
// LIFECYCLE=1 runs a TokenLifecycle consuming the events in this process, as the bench's main rows do.
// `refresh` rotates the refresh token of as many sessions, started untimed (bench/sections/sessions.ts).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Session } from 'node:inspector/promises';
import { RedisServer } from '../spec/support/redis.js';
import { TokenStore } from '../lib/index.js';
import { SECRET, ours, pool, throughput } from './ops.js';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

const op = process.argv[2] ?? 'verify';
const count = Number(process.argv[3] ?? 50_000);
const server = await RedisServer.start();
const redis = server.client();
const c = await ours(redis, { lifecycle: Boolean(process.env.LIFECYCLE) });
await c.begin?.();
const tokens = await pool(c, op === 'issue' || op === 'refresh' ? 0 : count);
// Sessions on a store of their own (default options; its events reach the lifecycle only on the default prefix).
const sessions = op === 'refresh' ? new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench' }) : undefined;
const refreshTokens: string[] = [];
if (sessions) await throughput(count, 64, async (i) => { refreshTokens[i] = (await sessions.startSession(`user-${i}`, { scope: 'read write' })).refreshToken; });
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 100 });
await session.post('Profiler.start');
const rate = await throughput(count, 64, (i) => {
  switch (op) {
    case 'issue': return c.issue();
    case 'revoke': return c.revoke(tokens[i]!.jti);
    case 'verify-repeated': return c.verify!(tokens[0]!.token);
    case 'refresh': return sessions!.refresh(refreshTokens[i]!);
    default: return c.verify!(tokens[i]!.token);
  }
}, op === 'issue' || op === 'revoke' ? c.drained : undefined);
const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
writeFileSync(`${tmpdir()}/rtl-${op}.cpuprofile`, JSON.stringify(profile));
await c.end?.();
await c.close?.();
await sessions?.close();
await server.stop();

const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byPackage = new Map<string, number>();
const byFunction = new Map<string, number>();
for (const node of profile.nodes) {
  const t = self.get(node.id) ?? 0;
  if (!t) continue;
  const { url, functionName, lineNumber } = node.callFrame;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.includes('/lib/') && !url.startsWith('node:') ? 'this library' : url.startsWith('node:') ? 'node core' : url ? url : functionName);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t);
  const fn = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules\/)?/, '')}:${lineNumber + 1}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
}
const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
process.stdout.write(`${op}: ${rate.toFixed(0)}/s at concurrency 64\nby package:\n${top(byPackage, 10)}\nby function (self):\n${top(byFunction, 18)}\n`);
