// Child process of the events bench: issues COUNT tokens on PREFIX, 64 at a time, and
// says `start` before the first and `done` after the last (so the listener's CPU is its own).
import { Redis } from 'ioredis';
import { TokenStore } from '../lib/index.js';
import { SECRET } from './ops.js';
import { throughput } from './ops.js';

const redis = new Redis(Number(process.env.REDIS_PORT), '127.0.0.1', { enableAutoPipelining: true });
const store = new TokenStore({ redis, key: SECRET, issuer: 'https://issuer.bench', prefix: process.env.PREFIX! });
const count = Number(process.env.COUNT);
process.stdout.write('start\n');
await throughput(count, 64, (i) => store.issue(`user${i}`));
process.stdout.write('done\n');
redis.disconnect();
