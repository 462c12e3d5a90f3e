// An Express route with bearerAuth over a store with default options (the cache on), and
// with `cache: false`, each vs the same route with no auth and with jose-only verification;
// a Fastify route with the bearerAuth hook (cache on) vs the same route with no auth:
// requests/s with autocannon (64 connections, in this process) against a server in a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import type { RedisServer } from '../../spec/support/redis.js';
import { ratio, sample, show } from '../stats.js';
import type { Config, Row } from './types.js';

// `fastify-*`: bench/fastify-server.ts, the same route on Fastify with the bearerAuth hook / with no auth.
const MODES = ['bearer', 'bearer-nocache', 'none', 'jose', 'fastify-bearer', 'fastify-none'] as const;
type Mode = (typeof MODES)[number];

async function start(mode: Mode, redisPort: number): Promise<{ child: ChildProcess; port: number; token: string }> {
  const fastify = mode.startsWith('fastify-');
  const script = new URL(fastify ? '../fastify-server.ts' : '../http-server.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, MODE: fastify ? mode.slice('fastify-'.length) : mode, REDIS_PORT: String(redisPort) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`http-server (${mode}) exited with ${code}`)));
  });
  const { port, token } = JSON.parse(line) as { port: number; token: string };
  return { child, port, token };
}

export async function httpSection(server: RedisServer, config: Config, log: (line: string) => void): Promise<Row[]> {
  const servers = new Map<Mode, Awaited<ReturnType<typeof start>>>();
  const results = new Map<Mode, number[]>();
  const failures = new Map<Mode, number>();
  try {
    for (const mode of MODES) servers.set(mode, await start(mode, server.port));
    // Two cores shared by autocannon, the server and Redis make single runs noisy: more runs.
    const runs = config.quick ? config.runs : 9;
    for (let run = 0; run < runs; run++) {
      // Each run starts with another mode, so a mode is not always the one after the same neighbour.
      for (const mode of [...MODES.slice(run % MODES.length), ...MODES.slice(0, run % MODES.length)]) {
        const s = servers.get(mode)!;
        const result = await autocannon({
          url: `http://127.0.0.1:${s.port}/me`, connections: 64, duration: config.httpSeconds,
          headers: { authorization: `Bearer ${s.token}` },
        });
        results.set(mode, [...(results.get(mode) ?? []), result.requests.average]);
        failures.set(mode, (failures.get(mode) ?? 0) + result.non2xx + result.errors + result.timeouts);
      }
      log(`  run ${run + 1}/${runs}: ${MODES.map((m) => `${m} ${Math.round(results.get(m)!.at(-1)!)}`).join(', ')} req/s`);
    }
  } finally {
    for (const s of servers.values()) s.child.kill('SIGTERM');
  }
  const [bearer, nocache, none, jose, fastifyBearer, fastifyNone] = MODES.map((m) => sample(results.get(m)!));
  const bad = [...failures].filter(([, n]) => n > 0).map(([m, n]) => `${m}: ${n} failed requests`).join(', ');
  const runs = config.quick ? config.runs : 9;
  return [
    {
      label: 'Express GET /me req/s, 64 connections: bearerAuth, default options (cache on) | — | no auth / jose-only', ours: show(bearer!), other: `${show(none!)} / ${show(jose!)}`,
      vsOther: `${ratio(bearer!.median, none!.median)} / ${ratio(bearer!.median, jose!.median)}`,
      note: `median of ${runs} runs; autocannon ${config.httpSeconds} s per run in the bench process, server in a child process (one per mode, all up for the whole section; each run starts with another mode); same route, each server's own token. bearerAuth over \`new TokenStore({ redis, key, issuer })\` on \`new Redis(port)\`: default options, so the verified-token cache is on and the store follows the journal on its own connection. ${bad || 'No failed requests.'}`,
      goal: { text: `Express bearerAuth (default options) ≥ 0.9× the same route with no auth: ${ratio(bearer!.median, none!.median)}`, met: bearer!.median >= 0.9 * none!.median },
    },
    {
      label: 'Express GET /me req/s, 64 connections: bearerAuth, cache: false | — | no auth / jose-only', ours: show(nocache!), other: `${show(none!)} / ${show(jose!)}`,
      vsOther: `${ratio(nocache!.median, none!.median)} / ${ratio(nocache!.median, jose!.median)}`,
      note: 'the same store with `cache: false`: every request verifies the signature and asks Redis (batched with the requests of the same tick).',
    },
    {
      label: 'Fastify GET /me req/s, 64 connections: bearerAuth onRequest hook, default options (cache on) | — | no auth', ours: show(fastifyBearer!), other: show(fastifyNone!),
      vsOther: ratio(fastifyBearer!.median, fastifyNone!.median),
      note: `bench/fastify-server.ts, run as the Express rows are: \`app.get('/me', { onRequest: bearerAuth(store) }, handler)\` over \`new TokenStore({ redis, key, issuer })\` (default options, the cache on) vs the same route and handler with no hook.`,
      goal: { text: `Fastify bearerAuth (default options) ≥ 0.9× the same route with no auth: ${ratio(fastifyBearer!.median, fastifyNone!.median)}`, met: fastifyBearer!.median >= 0.9 * fastifyNone!.median },
    },
  ];
}
