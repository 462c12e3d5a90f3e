// A TCP proxy in front of a test redis-server that can stall: it stops forwarding in
// both directions without closing anything (no FIN, no RST), as a silently dead link
// or a frozen middlebox does. `resume()` forwards what was held back. It can also hold
// Redis' replies only and then cut every connection: a command Redis ran whose reply
// is lost with its connection.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.js';

export class StallingProxy {
  private stalled = false;
  private holding = false;
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(readonly port: number, private readonly server: Server) {}

  static async start(targetPort: number): Promise<StallingProxy> {
    const port = await freePort();
    let proxy: StallingProxy | undefined = undefined;
    const server = createServer((client) => proxy!.pair(client, targetPort));
    proxy = new StallingProxy(port, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  private pair(client: Socket, targetPort: number): void {
    const upstream = createConnection(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    const forward = (from: Socket, to: Socket, replies: boolean) => from.on('data', (chunk: Buffer) => {
      if (this.stalled || (replies && this.holding)) this.held.push(() => to.write(chunk));
      else to.write(chunk);
    });
    forward(client, upstream, false);
    forward(upstream, client, true);
  }

  /** Stops forwarding, in both directions, without closing any connection. */
  stall(): void {
    this.stalled = true;
  }

  /** Forwards what was held back, and everything from now on. */
  resume(): void {
    this.stalled = false;
    for (const send of this.held.splice(0)) send();
  }

  /** Holds Redis' replies back (commands still reach Redis) until `cut()`. */
  holdReplies(): void {
    this.holding = true;
  }

  /** Closes every connection, dropping what was held; new connections forward as usual. */
  cut(): void {
    this.held.length = 0;
    this.holding = false;
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
