// Fault case 3: a group member in a child process is SIGKILLed in the middle of a
// handler; a member started after the kill takes over its events (claimAfterMs 500).
// Across both, every event is handled exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { FaultCase } from './harness.js';
import { waitFor } from '../support/wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('faults: consumer process killed', () => {
  let c: FaultCase | undefined;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    await c?.close();
    c = undefined;
  });

  it('a member process SIGKILLed mid-handler: another member gets its events, each handled once across both', async function () {
    this.timeout(60_000);
    c = await FaultCase.open('3 consumer killed');
    const group = 'audit';
    const audience = await c.audience(`group ${group}`, group);

    // The child: `node --import tsx` (the repo's tsx as a loader), so the process we kill
    // is the consumer itself (the tsx binary would run it in a grandchild of its own).
    const proc = spawn(process.execPath, ['--import', 'tsx', join('spec', 'faults', 'consumer.ts')], {
      cwd: ROOT,
      env: { ...process.env, REDIS_PORT: String(c.server.port), PREFIX: c.prefix, GROUP: group, CONSUMER: 'child', CLAIM_AFTER_MS: '500', SLOW_SUB: 'slow' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stderr = '';
    let buffer = '';
    let ready = false;
    let started: { id: string; jti: string } | undefined;
    const childErrors: string[] = [];
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as { kind: string; id: string; type: string; jti: string; reason?: string; message?: string };
        buffer = buffer.slice(nl + 1);
        if (line.kind === 'ready') ready = true;
        else if (line.kind === 'start') started = line;
        else if (line.kind === 'handled') audience.record('child', line as never);
        else if (line.kind === 'error') childErrors.push(line.message!);
      }
    });
    const stdoutClosed = new Promise((resolve) => proc.stdout!.once('close', resolve));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_, signal) => resolve(signal)));
    await waitFor('the child consumer to start', () => {
      if (proc.exitCode !== null) throw new Error(`consumer exited with ${proc.exitCode}: ${stderr}`);
      return ready;
    }, 20_000, 20);

    // Churn; in the middle, the marked event; kill the child once its handler started.
    await c.churn.run({ batches: 10, size: 20, gapMs: 50, revokeAllEvery: 5 });
    const [marked] = await c.churn.issueMany('slow', 1, 2);
    expect(marked, 'the marked token').to.not.equal(undefined);
    const churning = c.churn.run({ batches: 10, size: 20, gapMs: 50, revokeAllEvery: 5 });
    await waitFor('the child to start handling the marked event', () => started, 10_000, 5);
    expect(started!.jti).to.equal(marked!.jti);
    proc.kill('SIGKILL');
    const killedAt = Date.now();
    // Until the other member starts no listener runs: a DEL meanwhile is reported at its deadline (documented).
    c.churn.blind = true;
    expect(await exited, 'the child died of').to.equal('SIGKILL');
    await stdoutClosed; // every line it printed has been read
    // So is a DEL the child heard but died before reaping: only its memory held the notification.
    await c.blindUnreapedDels();
    const byChild = audience.handled.length;
    await churning;

    // Another member, started after the kill.
    await c.members(audience, [`${group}-b`], { claimAfterMs: 500 });
    c.churn.blind = false;
    await c.churn.run({ batches: 10, size: 20, gapMs: 50, revokeAllEvery: 5 });
    await c.settle();
    await c.check(`child handled ${byChild} before SIGKILL mid-handler at ${killedAt}, the other member took over`);

    const markedIssued = audience.handled.filter((d) => d.id === started!.id);
    expect(markedIssued.map((d) => d.by), 'the marked event: handled once, by the other member').to.deep.equal([`${group}-b`]);
    expect(childErrors, 'child errors').to.deep.equal([]);
  });
});
