// `npx tsx bench/memory-layouts.ts [tokens]`: Redis bytes per live token for the current
// layout and for candidate layouts, written with plain commands (no scripts) into a private
// redis-server, so a layout change can be judged on numbers before lib/scripts is touched.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisServer } from '../spec/support/redis.js';

const n = Number(process.argv[2] ?? 10_000);
const BUCKETS = 16;
const ISS = 'https://issuer.bench';

interface Token { jti: string; sub: string; exp: number; iat: number; claims: string; compact: string; bucket: number }

function tokens(): Token[] {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, (_, i) => {
    const jti = randomBytes(16).toString('base64url');
    const sub = `user${i}`;
    const full = { sub, exp: now + 900, iat: now, jti, client_id: ISS, iss: ISS, aud: 'api', scope: 'read write' };
    // Compact: what varies per token only; jti is the hash field, iss/aud/client_id are the store's own.
    const compact = { sub, exp: now + 900, iat: now, scope: 'read write' };
    return { jti, sub, exp: now + 900, iat: now, claims: JSON.stringify(full), compact: JSON.stringify(compact), bucket: i % BUCKETS };
  });
}

async function bytes(redis: Redis, pattern: string): Promise<number> {
  let total = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) total += Number(await redis.memory('USAGE', k, 'SAMPLES', 0));
  } while (cursor !== '0');
  return total;
}

type Layout = (p: ReturnType<Redis['pipeline']>, base: string, t: Token, now: number) => void;

const layouts: [string, Layout][] = [
  ['current: t key + claims hash (full JSON) + due + sub:<sub> zset + journal entry with claims', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.claims);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now, 'claims', t.claims);
  }],
  ['journal `issued` entry without claims (reader takes them from the claims hash)', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.claims);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['… and compact claims (no jti/iss/aud/client_id: the field name and store constants)', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['… and one subject index per bucket (zset member "<sub> <jti>", ZRANGEBYLEX) instead of a key per subject', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}subs`, 0, `${t.sub} ${t.jti}`);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['… and no token key (live = due score > Redis time, one EVALSHA on verify; expiry by the sweeper)', (p, b, t, now) => {
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}subs`, 0, `${t.sub} ${t.jti}`);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['journal without claims + compact claims + per-subject keys kept, no token key', (p, b, t, now) => {
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.zadd(`${b}sub:${t.sub}`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['journal without claims + compact claims + token key, no subject index (list/revokeAll opt-in)', (p, b, t, now) => {
    p.set(`${b}t:${t.jti}`, '1', 'PXAT', t.exp * 1000);
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
  ['journal without claims + compact claims, no token key, no subject index', (p, b, t, now) => {
    p.hset(`${b}claims`, t.jti, t.compact);
    p.zadd(`${b}due`, t.exp * 1000, t.jti);
    p.xadd(`${b}log`, '*', 'type', 'issued', 'jti', t.jti, 'at', now);
  }],
];

const server = await RedisServer.start();
const redis = server.client();
try {
  const all = tokens();
  process.stdout.write(`| layout (${n} tokens, one subject each, ${BUCKETS} buckets) | MEMORY USAGE B/token | used_memory Δ B/token |\n| --- | ---: | ---: |\n`);
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
