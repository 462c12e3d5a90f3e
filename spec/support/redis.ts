// Real redis-server processes for the tests: started on free loopback ports in a
// private temp dir, stopped by the tests (or, as a last resort, when mocha exits).
// Never touches the Redis on 127.0.0.1:6379.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from '../../demo/redis.js';

export { freePort };

const live = new Set<RedisServer>();
process.on('exit', () => {
  for (const server of live) server.proc?.kill('SIGKILL');
});

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']`. */
  args?: string[];
}

export class RedisServer {
  proc: ChildProcess | undefined;
  readonly dir: string;
  private readonly clients = new Set<Redis>();

  private constructor(readonly port: number, private readonly args: string[]) {
    this.dir = mkdtempSync(join(tmpdir(), 'rtl-redis-'));
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.args ?? []);
    live.add(server);
    await server.spawn();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async spawn(): Promise<void> {
    const proc = spawn('redis-server', [
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
    const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    const deadline = Date.now() + 10_000;
    try {
      for (;;) {
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
