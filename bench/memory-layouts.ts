// `npx tsx bench/memory-layouts.ts [tokens]`: Redis bytes per live token for the layout this
// library uses and for the alternatives it was chosen over, written with plain commands (no
// scripts) into a private redis-server, so a layout change can be judged on numbers before
// lib/scripts is touched. Tokens have one subject each (the worst case for subject indexes)
// and deadlines spread over 900 s, as a steady rate of 900 s tokens leaves them; the journal
// holds one `issued` entry per token (below its default cap of 100,000 entries).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisServer } from '../spec/support/redis.js';
import { usage } from './sections/memory.js';

const n = Number(process.argv[2] ?? 200_000);
const BUCKETS = 16;
const ISS = 'https://issuer.bench';

interface Token { jti: string; sub: string; exp: number; iat: number; claims: string; record: string; bucket: number }

function tokens(): Token[] {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, (_, i) => {
    const exp = now + 900 + (i % 900);
    const jti = exp.toString(36).padStart(7, '0') + randomBytes(12).toString('base64url');
    const sub = `user${i}`;
    const claims = JSON.stringify({ sub, exp, iat: exp - 900, jti, client_id: ISS, iss: ISS, aud: 'api', scope: 'read write' });
    // What the library stores per token (see lib/scripts/include/lifecycle.lua): template id,
    // exp - iat, scope and extra lengths, scope, extra claims, sub.
    const record = `1a2b3c4,900,10,0:read write${sub}`;
    return { jti, sub, exp, iat: exp - 900, claims, record, bucket: i % BUCKETS };
  });
}

async function bytes(redis: Redis, pattern: string): Promise<number> {
  return (await usage(redis, pattern)).total;
}

type Layout = (p: ReturnType<Redis['pipeline']>, base: string, t: Token, now: number) => void;

const perSecond: Layout = (p, b, t) => {
  p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
  p.hset(`${b}x:${t.exp}`, t.jti, t.record, '~', '');
  p.zadd(`${b}due`, 'NX', t.exp * 1000, String(t.exp));
};

const layouts: [string, Layout][] = [
  ['first layout: t key + claims hash (full JSON) + due entry per token + sub:<sub> zset + journal entry with claims', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.claims);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now, 'claims', t.claims);
  }],
  ['this layout: t key + compact record in a hash per expiry second + due entry per second + sub:<sub> zset + journal entry with claims', (p, b, t, now) => {
    perSecond(p, b, t, now);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now, 'claims', t.claims);
  }],
  ['this layout, `issued` journal entry without claims (a reader would fetch them; lost if the token ended first)', (p, b, t, now) => {
    perSecond(p, b, t, now);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['this layout, no subject index (list and revokeAll would have to scan)', (p, b, t, now) => {
    perSecond(p, b, t, now);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now, 'claims', t.claims);
  }],
  ['this layout without the journal (the state alone: what a store holds per token once the journal is at its cap)', (p, b, t) => {
    perSecond(p, b, t, 0);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
  }],
];

const server = await RedisServer.start();
const redis = server.client();
try {
  const all = tokens();
  process.stdout.write(`| layout (${n} tokens, one subject each, ${BUCKETS} buckets, deadlines over 900 s) | MEMORY USAGE B/token | used_memory Δ B/token |\n| --- | ---: | ---: |\n`);
  for (const [name, layout] of layouts) {
    await redis.flushall();
    const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
    const now = Date.now();
    for (let i = 0; i < all.length; i += 1000) {
      const p = redis.pipeline();
      for (const t of all.slice(i, i + 1000)) layout(p, `L{L${t.bucket}}:`, t, now);
      await p.exec();
    }
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]) - before;
    process.stdout.write(`| ${name} | ${((await bytes(redis, 'L*')) / n).toFixed(0)} | ${(used / n).toFixed(0)} |\n`);
  }
  await redis.flushall();
  const p = redis.pipeline();
  for (const t of all) p.set(`bare:${t.jti}`, 'true', 'EX', 900);
  await p.exec();
  process.stdout.write(`| bare SET … EX key (jwt-redis) | ${((await bytes(redis, 'bare:*')) / n).toFixed(0)} | – |\n`);
} finally {
  await server.stop();
}
process.exit(0);
