// Real redis-server processes: started on free loopback ports in a private temp dir,
// stopped by their owner (or, as a last resort, when the process exits). The one
// spawner of single redis-server processes, for the specs, bench and the demo's
// private Redis alike (clusters: cluster.ts). Never touches the Redis on 127.0.0.1:6379.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './ports.js';

export { freePort };

const live = new Set<RedisServer>();
process.on('exit', () => {
  for (const server of live) server.proc?.kill('SIGKILL');
});

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']`. */
  args?: string[];
  /** The executable. @default 'redis-server' */
  command?: string;
}

export class RedisServer {
  proc: ChildProcess | undefined;
  readonly dir: string;
  private readonly clients = new Set<Redis>();

  private constructor(readonly port: number, private readonly args: string[], private readonly command: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'rtl-redis-'));
  }

  /**
   * Starts a redis-server and resolves once it answers PING. Rejects (leaving no
   * process or directory behind) when it exits first, does not answer within 10 s, or
   * cannot be started: then with the spawn error itself (`code: 'ENOENT'` when the
   * executable is missing).
   */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.args ?? [], options.command ?? 'redis-server');
    live.add(server);
    try {
      await server.spawn();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** The server's process id (the process `command` started), while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async spawn(): Promise<void> {
    const proc = spawn(this.command, [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      '--enable-debug-command', 'local',
      '--loglevel', 'warning',
      ...this.args,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    let spawnError: Error | undefined;
    proc.on('error', (err) => { spawnError ??= err; }); // e.g. ENOENT: no such executable
    const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    const deadline = Date.now() + 10_000;
    try {
      for (;;) {
        if (spawnError) throw spawnError;
        if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${stderr}`);
        try {
          await probe.connect();
          if ((await probe.ping()) === 'PONG') return;
        } catch {
          probe.disconnect();
        }
        if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not answer within 10 s: ${stderr}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      probe.disconnect();
    }
  }

  /** A client of this server, disconnected by `stop()`. */
  client(options: RedisOptions = {}): Redis {
    const client = new Redis(this.port, '127.0.0.1', options);
    client.on('error', () => {}); // connection errors are expected in fault tests
    this.clients.add(client);
    return client;
  }

  /** Kill the process with a signal and wait for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill(signal);
    await gone;
  }

  /**
   * Start the process again on the same port and directory (after `kill`, or
   * killing it with SIGKILL first). `downMs` keeps it down that long before the
   * new process starts (e.g. so that tokens expire while Redis is down).
   */
  async restart(options: { downMs?: number } = {}): Promise<void> {
    await this.kill();
    if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
    await this.spawn();
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    this.clients.clear();
    await this.kill('SIGKILL');
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A key prefix no other test uses. */
export function testPrefix(): string {
  return `t${randomBytes(4).toString('hex')}:`;
}

/**
 * `client` has written a command `name` (lower case; with `arg` among its arguments, if
 * given) to its socket and has no reply to it yet: it has left this process, and Redis
 * has not answered it (e.g. while DEBUG SLEEP holds Redis).
 */
export function inFlight(client: Redis, name: string, arg?: string): boolean {
  if (client.stream?.writableLength !== 0) return false;
  return client.commandQueue.toArray().some(({ command }) =>
    command.name.toLowerCase() === name && (arg === undefined || (command as unknown as { args: unknown[] }).args.some((a) => String(a) === arg)));
}
