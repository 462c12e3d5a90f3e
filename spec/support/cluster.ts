// A real local Redis Cluster for the tests: `redis-server --cluster-enabled yes`
// processes on free loopback ports in a private temp dir, joined with
// `redis-cli --cluster create`, and helpers to fail it over, kill and restart
// nodes and add a master. Every wait polls a state with a deadline. Never touches
// the Redis on 127.0.0.1:6379.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { freeClusterPort } from './ports.js';
import { waitFor } from './wait.js';

export { freeClusterPort };

const execFileAsync = promisify(execFile);

/** Runs redis-cli; a failure says what redis-cli printed. */
async function run(command: string, args: string[], options: { timeout: number; maxBuffer?: number }): Promise<string> {
  try {
    return (await execFileAsync(command, args, { maxBuffer: 64 * 1024 * 1024, ...options })).stdout;
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${String(err)}\n${stderr}\n${stdout.split('\n').slice(-15).join('\n')}`, { cause: err });
  }
}

const live = new Set<RedisCluster>();
process.on('exit', () => {
  for (const cluster of live) for (const node of cluster.nodes) node.proc?.kill('SIGKILL');
});

/** How long one topology change (create, failover, reshard) may take. */
const SETTLE_TIMEOUT = 30_000;

export interface ClusterStartOptions {
  /** @default 3 */
  masters?: number;
  /** @default 1 */
  replicasPerMaster?: number;
  /** Extra `redis-server` arguments for every node. */
  args?: string[];
}

/** One redis-server process of the cluster. */
export interface ClusterNode {
  port: number;
  dir: string;
  proc: ChildProcess | undefined;
  /** The node id (40 hex digits), known once the node has joined. */
  id: string;
}

/** A node as `CLUSTER NODES` describes it. */
export interface NodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | undefined;
  failed: boolean;
  /** Slot ranges owned, as [first, last] pairs (masters only). */
  slots: [number, number][];
}

/** Parses `CLUSTER NODES` output. */
export function parseNodes(text: string): NodeInfo[] {
  return text.trim().split('\n').filter(Boolean).map((line) => {
    const [id, address, flags, master, , , , , ...slotFields] = line.split(' ');
    const port = Number(/:(\d+)@/.exec(address!)?.[1]);
    const flagList = flags!.split(',');
    const slots: [number, number][] = [];
    for (const field of slotFields) {
      if (field.startsWith('[')) continue; // a migrating/importing marker
      const [from, to] = field.split('-').map(Number);
      slots.push([from!, to ?? from!]);
    }
    return {
      id: id!,
      port,
      role: flagList.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? undefined : master,
      failed: flagList.includes('fail') || flagList.includes('noaddr'),
      slots,
    };
  });
}

export class RedisCluster {
  readonly nodes: ClusterNode[] = [];
  private readonly root: string;
  private readonly clients = new Set<Redis | Cluster>();
  private readonly admins = new Map<number, Redis>();
  private readonly ports = new Set<number>();

  private constructor(private readonly args: string[]) {
    this.root = mkdtempSync(join(tmpdir(), 'rtl-cluster-'));
  }

  /** Starts `masters` masters with `replicasPerMaster` replicas each and waits until every slot is served. */
  static async start(options: ClusterStartOptions = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    const cluster = new RedisCluster(options.args ?? []);
    live.add(cluster);
    try {
      const nodes = await Promise.all(Array.from({ length: masters * (1 + replicas) }, () => cluster.spawnNew()));
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: SETTLE_TIMEOUT });
      await cluster.settle();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** An ioredis Cluster connected through every node; disconnected by `stop()`. */
  client(options: ClusterOptions = {}): Cluster {
    const client = new Cluster(this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), options);
    client.on('error', () => {}); // node failures are expected in fault tests
    client.on('node error', () => {});
    this.clients.add(client);
    return client;
  }

  /** A direct (non-cluster) connection to one node, for admin commands. */
  admin(port: number): Redis {
    let redis = this.admins.get(port);
    if (!redis) {
      redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: (times) => Math.min(times * 50, 500) });
      redis.on('error', () => {});
      this.admins.set(port, redis);
    }
    return redis;
  }

  /** `CLUSTER NODES` as seen by `port` (any live node by default). */
  async topology(port?: number): Promise<NodeInfo[]> {
    const from = port ?? this.running()[0]?.port;
    if (from === undefined) throw new Error('no node is running');
    return parseNodes((await this.admin(from).cluster('NODES')) as string);
  }

  /** The ports of the masters that own slots, as the live nodes agree on them. */
  async masterPorts(): Promise<number[]> {
    const nodes = await this.topology();
    return nodes.filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0).map((n) => n.port).sort((a, b) => a - b);
  }

  /** The port of the master that owns `slot`. */
  async ownerOf(slot: number): Promise<number> {
    const nodes = await this.topology();
    const owner = nodes.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no master owns slot ${slot}`);
    return owner.port;
  }

  /** The port of a live replica of the master on `masterPort` (waits for the nodes to agree on one). */
  async replicaOf(masterPort: number): Promise<number> {
    return waitFor(`a live replica of master ${masterPort}`, async () => {
      const nodes = await this.topology();
      const master = nodes.find((n) => n.port === masterPort);
      return nodes.find((n) => n.role === 'replica' && !n.failed && n.masterId === master?.id && this.isRunning(n.port))?.port;
    }, SETTLE_TIMEOUT, 50);
  }

  /** SIGKILL one node and wait for the process to be gone (the cluster is not waited for). */
  async kill(port: number): Promise<void> {
    const node = this.node(port);
    const proc = node.proc;
    this.admins.get(port)?.disconnect();
    this.admins.delete(port);
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await gone;
  }

  /** Start a killed node again (same port, same nodes.conf) and wait until the cluster is whole. */
  async restart(port: number): Promise<void> {
    await this.kill(port);
    await this.spawn(this.node(port));
    await this.settle();
  }

  /**
   * `CLUSTER FAILOVER` on a replica; resolves once it is a master and the cluster is
   * whole again. A manual failover that does not complete (it gives up after 5 s,
   * e.g. while the master has not yet heard the replica's offset) is asked again.
   */
  async failover(replicaPort: number): Promise<void> {
    const admin = this.admin(replicaPort);
    const promoted = async () => ((await admin.info('replication')) as string).includes('role:master');
    await waitFor(`replica ${replicaPort} to become a master that owns slots`, async () => {
      if (!(await promoted())) {
        await admin.cluster('FAILOVER');
        if (!(await waitFor('the manual failover', promoted, 6000, 20).catch(() => false))) return false;
      }
      await this.settle();
      return (await this.masterPorts()).includes(replicaPort);
    }, SETTLE_TIMEOUT, 0);
  }

  /**
   * Waits until the replica of a killed master took over its slots (the killed node
   * is marked failed and every slot is served again by a live master).
   */
  async awaitPromotion(killedPort: number): Promise<number> {
    const killedId = this.node(killedPort).id;
    const candidates = new Set<string>();
    let promoted = 0;
    await waitFor(`a replica to take over from killed master ${killedPort}`, async () => {
      for (const { port } of this.running()) {
        const nodes = await this.topology(port);
        for (const n of nodes) if (n.masterId === killedId) candidates.add(n.id);
        const killed = nodes.find((n) => n.id === killedId);
        const owners = nodes.filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0);
        const covered = owners.reduce((sum, n) => sum + n.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
        if (!killed?.failed || covered !== 16_384 || owners.some((n) => !this.isRunning(n.port))) return false;
        promoted = owners.find((n) => candidates.has(n.id))?.port ?? promoted;
      }
      return promoted !== 0;
    }, SETTLE_TIMEOUT, 50);
    await this.settle({ ignore: [killedPort] });
    return promoted;
  }

  /**
   * Starts a new node, adds it with `redis-cli --cluster add-node` and moves slots
   * to it with `redis-cli --cluster reshard`: `slots` of them (default: its fair
   * share), from every master or only from the master on port `from` (redis-cli
   * then moves that master's lowest-numbered slots).
   * @returns the new master's port.
   */
  async addMaster(options: { slots?: number; from?: number } = {}): Promise<number> {
    const count = options.slots ?? Math.floor(16_384 / ((await this.masterPorts()).length + 1));
    const from = options.from === undefined ? 'all' : this.node(options.from).id;
    const node = await this.spawnNew();
    const seed = this.running().find((n) => n !== node)!;
    await run('redis-cli', ['--cluster', 'add-node', `127.0.0.1:${node.port}`, `127.0.0.1:${seed.port}`], { timeout: SETTLE_TIMEOUT });
    node.id = (await this.admin(node.port).cluster('MYID')) as string;
    await waitFor(`every node to know the new node ${node.port}`, async () => {
      for (const { port } of this.running()) {
        if (!(await this.topology(port)).some((n) => n.id === node.id)) return false;
      }
      return true;
    }, SETTLE_TIMEOUT, 50);
    // reshard refuses to run until every node agrees on the whole configuration, and
    // MIGRATE fails with CLUSTERDOWN while the new node does not yet see every slot served.
    await this.settle();
    await waitFor('redis-cli --cluster check to pass', () =>
      run('redis-cli', ['--cluster', 'check', `127.0.0.1:${seed.port}`], { timeout: SETTLE_TIMEOUT }).then(() => true), SETTLE_TIMEOUT, 100);
    await run('redis-cli', ['--cluster', 'reshard', `127.0.0.1:${seed.port}`, '--cluster-from', from, '--cluster-to', node.id,
      '--cluster-slots', String(count), '--cluster-yes'], { timeout: 120_000 });
    await this.settle();
    return node.port;
  }

  /** Kills every node, disconnects every client and removes the temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    this.clients.clear();
    for (const admin of this.admins.values()) admin.disconnect();
    this.admins.clear();
    await Promise.all(this.nodes.map((n) => this.kill(n.port)));
    live.delete(this);
    rmSync(this.root, { recursive: true, force: true });
  }

  /**
   * Waits until every running node (but `ignore`) says cluster_state:ok with all
   * 16384 slots ok, agrees on which live master owns each slot, no slot is being
   * migrated, and every live replica's link to its master is up.
   */
  async settle(options: { ignore?: number[] } = {}): Promise<void> {
    const ignore = new Set(options.ignore ?? []);
    let last = '';
    await waitFor('the cluster to settle', async () => {
      const running = this.running().filter((n) => !ignore.has(n.port));
      let reference: string | undefined;
      for (const node of running) {
        const admin = this.admin(node.port);
        const info = (await admin.cluster('INFO')) as string;
        if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) {
          last = `${node.port}: ${info.split('\r\n').slice(0, 4).join(' ')}`;
          return false;
        }
        const text = (await admin.cluster('NODES')) as string;
        if (text.includes('->-') || text.includes('-<-')) {
          last = `${node.port}: a slot is migrating`;
          return false;
        }
        const nodes = parseNodes(text);
        const owners = nodes.filter((n) => n.role === 'master' && n.slots.length > 0)
          .map((n) => `${n.port}:${JSON.stringify(n.slots)}:${n.failed ? 'F' : ''}`).sort().join(' ');
        if (nodes.some((n) => n.role === 'master' && n.slots.length > 0 && (n.failed || !this.isRunning(n.port)))) {
          last = `${node.port}: a slot owner is down`;
          return false;
        }
        // Roles too: a restarted master turns into a replica only when it hears the news.
        const roles = nodes.filter((n) => !n.failed && this.isRunning(n.port)).map((n) => `${n.port}:${n.role}:${n.masterId ?? ''}`).sort().join(' ');
        if (reference !== undefined && `${owners}|${roles}` !== reference) {
          last = `${node.port} disagrees on slot owners or roles`;
          return false;
        }
        reference = `${owners}|${roles}`;
        const me = nodes.find((n) => text.split('\n').some((line) => line.startsWith(n.id) && line.includes('myself')))!;
        node.id = me.id;
        if (me.role === 'replica' && me.masterId) {
          const master = nodes.find((n) => n.id === me.masterId);
          if (master && !master.failed && this.isRunning(master.port)) {
            const replication = (await admin.info('replication')) as string;
            if (!replication.includes('master_link_status:up')) {
              last = `${node.port}: replica link down`;
              return false;
            }
          }
        }
      }
      return true;
    }, SETTLE_TIMEOUT, 50).catch((err: Error) => {
      throw new Error(`${err.message} (last: ${last})`);
    });
  }

  // ---- processes -----------------------------------------------------------

  private node(port: number): ClusterNode {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on port ${port}`);
    return node;
  }

  private isRunning(port: number): boolean {
    const proc = this.nodes.find((n) => n.port === port)?.proc;
    return !!proc && proc.exitCode === null && proc.signalCode === null;
  }

  private running(): ClusterNode[] {
    return this.nodes.filter((n) => this.isRunning(n.port));
  }

  private async spawnNew(): Promise<ClusterNode> {
    const port = await freeClusterPort(this.ports);
    const dir = join(this.root, String(port));
    mkdirSync(dir);
    const node: ClusterNode = { port, dir, proc: undefined, id: '' };
    this.nodes.push(node);
    await this.spawn(node);
    return node;
  }

  private async spawn(node: ClusterNode): Promise<void> {
    const proc = spawn('redis-server', [
      '--port', String(node.port),
      '--bind', '127.0.0.1',
      '--dir', node.dir,
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', '1000',
      '--appendonly', 'no',
      '--save', '',
      '--enable-debug-command', 'local',
      '--repl-diskless-sync-delay', '0',
      '--loglevel', 'warning',
      ...this.args,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    node.proc = proc;
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const admin = this.admin(node.port);
    await waitFor(`redis-server on ${node.port} to answer`, async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${stderr}`);
      return (await admin.ping()) === 'PONG';
    }, 10_000, 20);
    node.id = (await admin.cluster('MYID')) as string;
  }
}
