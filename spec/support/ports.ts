// Free loopback ports for the redis-server processes of spec/support (and the demo's
// private one, and bench). Asked from the kernel, then released: another process may
// take one before redis-server binds it, which then fails to start and says so.
import { createServer } from 'node:net';

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

function isBound(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(true));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(false)));
  });
}

/** A free port whose cluster bus port (port + 10000) is free too; `taken` collects what was handed out. */
export async function freeClusterPort(taken: Set<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if (!(await isBound(port)) && !(await isBound(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port pair (port, port + 10000) found');
}
