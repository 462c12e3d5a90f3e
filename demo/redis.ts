// Choosing a Redis for the demo, so that `npm run demo` works on a bare machine:
// REDIS_URL if set, else a Redis already answering on 127.0.0.1:6379, else a private
// redis-server started on a free port just for this run (and stopped with it).
import { Redis } from 'ioredis';
import { RedisServer } from '../spec/support/redis.js';

/** The Redis the demo runs on. */
export interface DemoRedis {
  redis: Redis;
  /** Where Redis is, for the startup log (never includes a password). */
  description: string;
  /** Closes the client, and stops the redis-server only if `demoRedis` started it. */
  close(): Promise<void>;
}

/** How long a Redis on the default port gets to answer PING before we start our own. */
const PROBE_TIMEOUT = 500;

export const INSTALL_HINT =
  'redis-server is not installed, and no Redis answers on 127.0.0.1:6379. ' +
  'Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`), ' +
  'or point the demo at a running Redis with REDIS_URL=redis://host:port.';

/**
 * Finds or starts a Redis for the demo.
 *
 * @throws Error saying how to install redis-server when none can be found or started.
 */
export async function demoRedis(env: NodeJS.ProcessEnv = process.env): Promise<DemoRedis> {
  const url = env.REDIS_URL;
  if (url) {
    const redis = new Redis(url);
    redis.on('error', () => {}); // ioredis reconnects; requests fail with StoreUnavailableError meanwhile
    return { redis, description: `${redacted(url)} (from REDIS_URL)`, close: () => quit(redis) };
  }

  if (await answersPing('127.0.0.1', 6379)) {
    const redis = new Redis(6379, '127.0.0.1');
    redis.on('error', () => {});
    return { redis, description: 'redis://127.0.0.1:6379 (already running there)', close: () => quit(redis) };
  }

  return startPrivateRedis();
}

async function answersPing(host: string, port: number): Promise<boolean> {
  const probe = new Redis(port, host, {
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  probe.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    const deadline = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), PROBE_TIMEOUT); });
    const ping = probe.connect().then(() => probe.ping()).then((reply) => reply === 'PONG', () => false);
    return await Promise.race([ping, deadline]);
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
}

/**
 * Starts a redis-server of our own on a free loopback port, in a temp dir, without
 * persistence (spec/support's RedisServer, the one spawner the tests and bench use
 * too). `close()` stops it and removes the dir; if the demo dies without calling
 * it, the server is killed when the process exits.
 * @param command The executable (tests name a missing one to check the install hint).
 */
export async function startPrivateRedis(command = 'redis-server'): Promise<DemoRedis> {
  let server: RedisServer;
  try {
    server = await RedisServer.start({ command });
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(INSTALL_HINT, { cause: err }) : err;
  }
  const redis = server.client();
  return {
    redis,
    description: `redis://127.0.0.1:${server.port} (a private redis-server started for this demo, no persistence; stopped on exit)`,
    close: async () => {
      await quit(redis);
      await server.stop();
    },
  };
}

/** QUIT politely, but never hang on a Redis that is already gone. */
async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    redis.quit().catch(() => {}),
    new Promise((resolve) => { timer = setTimeout(resolve, 1000); }),
  ]);
  clearTimeout(timer);
  redis.disconnect();
}

function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'REDIS_URL';
  }
}
