// Choosing a Redis for the demo, so that `npm run demo` works on a bare machine:
// REDIS_URL if set, else a Redis already answering on 127.0.0.1:6379, else a private
// redis-server started on a free port just for this run (and stopped with it).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

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
/** How long a private redis-server gets to come up. */
const START_TIMEOUT = 10_000;

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
 * persistence. `close()` stops it and removes the dir.
 * @param command The executable (tests name a missing one to check the install hint).
 */
export async function startPrivateRedis(command = 'redis-server'): Promise<DemoRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rtl-demo-redis-'));
  const proc = spawn(command, [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--loglevel', 'warning',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  // If the demo dies without running close(), the server must not outlive it.
  const killOnExit = () => proc.kill('SIGKILL');
  process.on('exit', killOnExit);
  const cleanup = () => {
    process.off('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
  };

  let stderr = '';
  proc.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const failed = new Promise<never>((_, reject) => {
    proc.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Error(INSTALL_HINT, { cause: err }) : err);
    });
    proc.once('exit', (code, signal) => reject(new Error(`redis-server exited (${signal ?? code}) before answering: ${stderr.trim()}`)));
  });
  failed.catch(() => {}); // raced below; also must not be unhandled once the server is up

  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true });
  redis.on('error', () => {});
  try {
    await Promise.race([failed, ready(redis, port)]);
  } catch (err) {
    redis.disconnect();
    await stopProcess(proc);
    cleanup();
    throw err;
  }

  return {
    redis,
    description: `redis://127.0.0.1:${port} (a private redis-server started for this demo, no persistence; stopped on exit)`,
    close: async () => {
      await quit(redis);
      await stopProcess(proc);
      cleanup();
    },
  };
}

async function ready(redis: Redis, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT;
  await redis.connect().catch(() => {});
  for (;;) {
    try {
      if ((await redis.ping()) === 'PONG') return;
    } catch {
      // still starting
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${START_TIMEOUT} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
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

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const gone = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(timer);
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
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
