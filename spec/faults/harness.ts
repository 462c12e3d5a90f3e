// The fault-injection harness: a churn of tokens (issued, revoked, revokeAll'd,
// deleted by another client, expiring), the readers under test (broadcast
// listeners and consumer groups), and a checker that compares what each reader's
// handlers completed with the journal read straight from every bucket.
//
// A reader ("audience") is one broadcast listener, or one consumer group as a
// whole (all its members, in-process or child processes). For each audience:
//   checked     journal entries written after the audience started;
//   lost        of those, entries no handler of the audience completed;
//   duplicated  handler completions beyond the first for an entry;
//   invented    completions for no such entry (or with a different type/jti/reason).
// And for every token: exactly one `issued` and one ending event, the ending
// being the one the churn caused (see Churn.expected). And revokeAll token by
// token: which tokens each call revoked (see checkRevokeAll), each with exactly
// one `revoked`/`revokeAll` event per audience, and no other token with one.
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { StoreUnavailableError, TokenLifecycle, TokenStore, type TokenEvent, type TokenLifecycleOptions } from '../../lib/index.js';
import { journalEvent } from '../../lib/events/event.js';
import { compareIds } from '../../lib/redis/streams.js';
import type { KeySchema } from '../../lib/redis/keys.js';
import { SECRET } from '../support/fixture.js';
import { RedisServer, testPrefix } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { records } from '../support/records.js';

export const EVENT_TYPES = ['issued', 'expired', 'revoked'] as const;

/** One handler completion. */
export interface Delivery {
  id: string;
  type: string;
  jti: string;
  reason?: string | undefined;
  /** Which member (or listener) handled it. */
  by: string;
}

export interface Figures {
  checked: number;
  lost: number;
  duplicated: number;
  invented: number;
}

interface JournalEntry {
  bucket: number;
  sid: string;
  type: string;
  jti: string;
  reason: string | undefined;
  sub: string | undefined;
  /** When the script that wrote it ran (its `at` field: Redis' TIME, epoch ms). */
  at: number;
}

/** Events each audience must have checked: a case that checks fewer proves little. */
export const VOLUME_FLOOR = 1000;

/** A reader whose deliveries are checked: one broadcast listener, or one consumer group. */
export class Audience {
  readonly handled: Delivery[] = [];
  /** Per bucket: the journal's last id before this audience started (its entries come after). */
  from: string[] = [];

  constructor(readonly name: string, readonly group: string | undefined) {}

  record(by: string, e: Pick<TokenEvent, 'id' | 'type' | 'jti' | 'reason'>): void {
    this.handled.push({ id: e.id, type: e.type, jti: e.jti, reason: e.reason, by });
  }

  /** Records every handler completion of `lifecycle` (async handlers: recorded when they resolve). */
  attach(lifecycle: TokenLifecycle, by: string): void {
    for (const type of EVENT_TYPES) {
      lifecycle.on(type, async (e) => {
        await new Promise((r) => setImmediate(r)); // a handler that yields, awaited across faults
        this.record(by, e);
      });
    }
  }
}

/** Per bucket, the id of the journal's last entry ('0-0' when empty). */
export async function journalEnds(redis: Redis, keys: KeySchema): Promise<string[]> {
  return Promise.all(Array.from({ length: keys.buckets }, async (_, b) => {
    const last = await redis.xrevrange(keys.log(b), '+', '-', 'COUNT', 1);
    return last[0]?.[0] ?? '0-0';
  }));
}

/** Every journal entry of every bucket, read with XRANGE, keyed by event id (`<bucket>:<stream id>`). */
export async function readJournal(redis: Redis, keys: KeySchema): Promise<Map<string, JournalEntry>> {
  const out = new Map<string, JournalEntry>();
  for (let b = 0; b < keys.buckets; b++) {
    for (const [sid, fields] of await redis.xrange(keys.log(b), '-', '+')) {
      // The entry carries the token's record (without its template: sub is in the record).
      const e = journalEvent(b, sid, fields);
      out.set(`${b}:${sid}`, { bucket: b, sid, type: e.type, jti: e.jti, reason: e.reason, sub: e.sub || undefined, at: parseInt(sid, 10) });
    }
  }
  return out;
}

/** The entries of `journal` that belong to `audience` (written after it started). */
function entriesOf(audience: Audience, journal: Map<string, JournalEntry>): Map<string, JournalEntry> {
  const out = new Map<string, JournalEntry>();
  for (const [id, e] of journal) if (compareIds(e.sid, audience.from[e.bucket] ?? '0-0') > 0) out.set(id, e);
  return out;
}

export function compare(audience: Audience, journal: Map<string, JournalEntry>): Figures & { lostIds: string[]; duplicatedIds: string[]; inventedIds: string[] } {
  const mine = entriesOf(audience, journal);
  const counts = new Map<string, number>();
  const inventedIds: string[] = [];
  for (const d of audience.handled) {
    counts.set(d.id, (counts.get(d.id) ?? 0) + 1);
    const e = mine.get(d.id);
    if (!e || e.type !== d.type || e.jti !== d.jti || (e.reason ?? undefined) !== (d.reason ?? undefined)) inventedIds.push(d.id);
  }
  const lostIds = [...mine.keys()].filter((id) => !counts.has(id));
  const duplicatedIds = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const duplicated = [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
  return { checked: mine.size, lost: lostIds.length, duplicated, invented: inventedIds.length, lostIds, duplicatedIds, inventedIds };
}

/**
 * Tokens whose events `audience` handled out of order: its ending before its `issued`.
 * A listener gets a token's events in journal order (documented: in order per token);
 * a group's members may not (a redelivered entry comes late), so check listeners only.
 */
export function outOfOrder(audience: Audience): string[] {
  const issuedAt = new Map<string, number>();
  const wrong: string[] = [];
  audience.handled.forEach((d, i) => {
    if (d.type === 'issued') issuedAt.set(d.jti, i);
    else if (!issuedAt.has(d.jti)) wrong.push(`${d.jti}: ${d.type}${d.reason ? `/${d.reason}` : ''} handled before its issued`);
  });
  return wrong;
}

// ---- churn ---------------------------------------------------------------------

type OpKind = 'revoke' | 'revokeAll' | 'del';
type Outcome = 'done' | 'noop' | 'failed';
const REASON: Record<OpKind, string> = { revoke: 'revoke', revokeAll: 'revokeAll', del: 'external' };
/** A DEL that returned this close to its token's deadline (ms) may have been heard after it. */
const DEL_AT_DEADLINE_MS = 50;

interface Op {
  kind: OpKind;
  outcome: Outcome;
  /**
   * Done while no listener could hear the DEL's notification, or while a stall could hold
   * its reap until after the token's deadline (documented: then reported as expiry).
   */
  blind: boolean;
  /** When the call returned (epoch ms), for the failure messages. */
  at?: number;
}

export interface TokenRecord {
  jti: string;
  sub: string;
  deadline: number;
  issuedAt: number;
  ops: Op[];
}

/** One revokeAll() call, as the churn made it. */
export interface RevokeAllCall {
  sub: string;
  /** Epoch ms just before the call was sent, and just after it resolved (undefined: it failed). */
  startedAt: number;
  endedAt?: number | undefined;
  /** What it resolved with (undefined: it failed, and may still run later). */
  count?: number | undefined;
  /** store.list(sub) just before the call (undefined if that failed in a fault). */
  listed?: string[] | undefined;
  /** The churn's tokens of `sub` at the call. */
  candidates: string[];
  /** Of those, the ones nothing but resolved revokeAll calls was tried on: live unless expired or revoked by an earlier call. */
  untouched: string[];
}

export interface ChurnOptions {
  /** Subjects tokens are issued to. @default 6 */
  subjects?: number;
  /** Token TTLs, seconds (picked in turn). @default [1, 2] */
  ttls?: number[];
}

/** Is this a failure a fault may cause (Redis unreachable, a connection killed)? */
function tolerated(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  // ioredis errors of the DEL client: connection closed / retries exhausted / LOADING
  return err instanceof Error && /Connection is closed|max retries|ECONNRE|LOADING|EPIPE|Stream isn't writeable/i.test(err.message);
}

/**
 * Issues tokens to a few subjects with short TTLs, revokes some, revokeAll's some
 * subjects, deletes some keys from another client, and records what it did, so the
 * checker knows how each token must end. Calls that fail in a fault are counted,
 * not thrown (they may still have taken effect: the journal tells).
 */
export class Churn {
  readonly tokens = new Map<string, TokenRecord>();
  readonly failures: Record<string, number> = { issue: 0, revoke: 0, revokeAll: 0, del: 0 };
  /** Set while no listener of any audience runs: a DEL then is reported as expiry (documented). */
  blind = false;
  /** The latest deadline a failed issue() could still have written. */
  lastDeadline = 0;
  attempts = 0;
  /** Every revokeAll() call, in the order made (the churn makes them one at a time). */
  readonly revokeAllCalls: RevokeAllCall[] = [];
  private n = 0;
  private readonly subjects: number;
  private readonly ttls: number[];
  /** revokeAll calls that failed: they may still run later (ioredis' offline queue), per subject. */
  private readonly failedRevokeAll = new Map<string, number>();

  constructor(readonly store: TokenStore, private readonly other: Redis, options: ChurnOptions = {}) {
    this.subjects = options.subjects ?? 6;
    this.ttls = options.ttls ?? [1, 2];
  }

  /** Issues `size` tokens at once; some are then revoked or deleted. */
  async batch(size: number): Promise<void> {
    await Promise.all(Array.from({ length: size }, () => this.one()));
  }

  /** Issues `size` tokens to `sub` with `ttl`, nothing else. */
  async issueMany(sub: string, size: number, ttl: number): Promise<TokenRecord[]> {
    const out: TokenRecord[] = [];
    await Promise.all(Array.from({ length: size }, async () => {
      const t = await this.issue(sub, ttl);
      if (t) out.push(t);
    }));
    return out;
  }

  /** `batches` batches of `size`, `gapMs` apart; every `revokeAllEvery`th batch ends with a revokeAll. */
  async run(options: { batches: number; size: number; gapMs?: number; revokeAllEvery?: number; between?: (batch: number) => Promise<void> | void }): Promise<void> {
    for (let i = 0; i < options.batches; i++) {
      await this.batch(options.size);
      if (options.revokeAllEvery && i % options.revokeAllEvery === options.revokeAllEvery - 1) await this.revokeAll(`user${i % this.subjects}`);
      await options.between?.(i);
      await new Promise((r) => setTimeout(r, options.gapMs ?? 30));
    }
  }

  private async issue(sub: string, ttl: number): Promise<TokenRecord | undefined> {
    this.attempts++;
    const issuedAt = Date.now();
    try {
      const t = await this.store.issue(sub, { ttl });
      const record: TokenRecord = { jti: t.jti, sub, deadline: t.expiresAt, issuedAt, ops: [] };
      // A revokeAll that failed may still run (queued in ioredis) and take tokens issued since.
      const failedAt = this.failedRevokeAll.get(sub);
      if (failedAt !== undefined && issuedAt - failedAt < 15_000) record.ops.push({ kind: 'revokeAll', outcome: 'failed', blind: false });
      this.tokens.set(t.jti, record);
      return record;
    } catch (err) {
      if (!tolerated(err)) throw err;
      this.failures.issue!++;
      // It may still be written (ioredis sends it when Redis is back): it must end by then.
      this.lastDeadline = Math.max(this.lastDeadline, Math.ceil((Date.now() + ttl * 1000) / 1000) * 1000);
      return undefined;
    }
  }

  private async one(): Promise<void> {
    const n = this.n++;
    const t = await this.issue(`user${n % this.subjects}`, this.ttls[n % this.ttls.length]!);
    if (!t) return;
    if (n % 4 === 1) await this.revoke(t);
    else if (n % 9 === 2) await this.del(t);
  }

  async revoke(t: TokenRecord): Promise<void> {
    const op: Op = { kind: 'revoke', outcome: 'failed', blind: false };
    t.ops.push(op);
    try {
      op.outcome = (await this.store.revoke(t.jti)) ? 'done' : 'noop';
    } catch (err) {
      if (!tolerated(err)) throw err;
      this.failures.revoke!++;
    }
  }

  async del(t: TokenRecord): Promise<void> {
    const op: Op = { kind: 'del', outcome: 'failed', blind: this.blind };
    t.ops.push(op);
    const keys = this.store.keys;
    try {
      op.outcome = (await this.other.del(keys.token(keys.bucketOf(t.jti), t.jti))) === 1 ? 'done' : 'noop';
      op.at = Date.now();
      op.blind ||= this.blind;
    } catch (err) {
      if (!tolerated(err)) throw err;
      this.failures.del!++;
    }
  }

  async revokeAll(sub: string): Promise<number> {
    // The store's own view of what is live just before; in a fault it may fail (then the churn's records alone).
    let listed: string[] | undefined;
    try {
      listed = (await this.store.list(sub)).map((t) => t.jti);
    } catch (err) {
      if (!tolerated(err)) throw err;
    }
    const targets = [...this.tokens.values()].filter((t) => t.sub === sub);
    const call: RevokeAllCall = {
      sub, startedAt: 0, listed,
      candidates: targets.map((t) => t.jti),
      untouched: targets.filter((t) => t.ops.every((op) => op.kind === 'revokeAll' && op.outcome !== 'failed')).map((t) => t.jti),
    };
    this.revokeAllCalls.push(call);
    const ops = targets.map((t) => {
      const op: Op = { kind: 'revokeAll', outcome: 'failed', blind: false };
      t.ops.push(op);
      return op;
    });
    call.startedAt = Date.now();
    try {
      const count = await this.store.revokeAll(sub);
      call.endedAt = Date.now();
      call.count = count;
      for (const op of ops) op.outcome = 'noop'; // which tokens it took: found in the journal by checkRevokeAll
      return count;
    } catch (err) {
      if (!tolerated(err)) throw err;
      this.failures.revokeAll!++;
      this.failedRevokeAll.set(sub, Date.now());
      return 0;
    }
  }

  /** How `t` may end: `expired`, or `revoked/<reason>` of an operation tried on it; exactly one if an operation says it did it. */
  expected(t: TokenRecord): { allowed: Set<string>; required: string | undefined } {
    const allowed = new Set(['expired']);
    let required: string | undefined;
    for (const op of t.ops) {
      allowed.add(`revoked/${REASON[op.kind]}`);
      // A DEL that returned at the deadline was heard after it: a reap then says expiry (documented).
      const late = op.kind === 'del' && op.at !== undefined && op.at >= t.deadline - DEL_AT_DEADLINE_MS;
      if (op.outcome === 'done' && !(op.kind === 'del' && (op.blind || late))) required = `revoked/${REASON[op.kind]}`;
    }
    return { allowed, required };
  }
}

// ---- a case ----------------------------------------------------------------------

export interface Member {
  name: string;
  lifecycle: TokenLifecycle;
}

/**
 * One fault case: its own redis-server, a fresh prefix, a store, a churn, the
 * readers under test, and the check at the end.
 */
export class FaultCase {
  server!: RedisServer;
  /** The checker's connection. */
  redis!: Redis;
  /** Kills, stalls and CONFIG. */
  admin!: Redis;
  store!: TokenStore;
  churn!: Churn;
  keys!: KeySchema;
  readonly prefix = testPrefix();
  readonly audiences: Audience[] = [];
  readonly lifecycles: TokenLifecycle[] = [];
  readonly errors: Error[] = [];
  readonly gaps: unknown[] = [];
  /** Extra options every lifecycle of this case gets (e.g. buckets). */
  private lifecycleDefaults: Partial<TokenLifecycleOptions> = {};

  constructor(readonly name: string) {}

  static async open(name: string, options: { args?: string[]; churn?: ChurnOptions; buckets?: number } = {}): Promise<FaultCase> {
    const c = new FaultCase(name);
    c.server = await RedisServer.start({ args: options.args ?? [] });
    c.redis = c.server.client();
    c.admin = c.server.client();
    const layout = options.buckets ? { buckets: options.buckets } : {};
    c.lifecycleDefaults = layout;
    c.store = new TokenStore({ redis: c.server.client(), key: SECRET, issuer: 'https://issuer.test', prefix: c.prefix, ...layout });
    c.keys = c.store.keys;
    c.churn = new Churn(c.store, c.server.client(), options.churn);
    return c;
  }

  /** A lifecycle on its own connection (as another process would have), feeding `audience`. */
  lifecycle(audience: Audience, by: string, options: Partial<TokenLifecycleOptions> = {}): TokenLifecycle {
    const lifecycle = new TokenLifecycle({ redis: this.server.client(), prefix: this.prefix, pollInterval: 500, ...this.lifecycleDefaults, ...options });
    audience.attach(lifecycle, by);
    lifecycle.on('error', (err) => { this.errors.push(err); });
    lifecycle.on('gap', (gap) => { this.gaps.push(gap); });
    this.lifecycles.push(lifecycle);
    return lifecycle;
  }

  /** A new audience whose entries are those written from now on. */
  async audience(name: string, group?: string): Promise<Audience> {
    const audience = new Audience(name, group);
    audience.from = await journalEnds(this.redis, this.keys);
    this.audiences.push(audience);
    return audience;
  }

  /** A started broadcast listener. */
  async broadcast(name = 'broadcast'): Promise<{ audience: Audience; lifecycle: TokenLifecycle }> {
    const audience = await this.audience(name);
    const lifecycle = this.lifecycle(audience, name);
    await lifecycle.start();
    return { audience, lifecycle };
  }

  /** A started consumer group of `size` members. */
  async group(group: string, size: number, options: Partial<TokenLifecycleOptions> = {}): Promise<{ audience: Audience; members: Member[] }> {
    const audience = await this.audience(`group ${group}`, group);
    const members = await this.members(audience, Array.from({ length: size }, (_, i) => `${group}-m${i + 1}`), options);
    return { audience, members };
  }

  /** Starts members (consumer names `names`) of `audience`'s group. */
  async members(audience: Audience, names: string[], options: Partial<TokenLifecycleOptions> = {}): Promise<Member[]> {
    const members = names.map((name) => ({ name, lifecycle: this.lifecycle(audience, name, { group: audience.group!, consumer: name, claimAfterMs: 1000, ...options }) }));
    await Promise.all(members.map((m) => m.lifecycle.start()));
    return members;
  }

  /** Pending (delivered, unacknowledged) entries of a group over all buckets. */
  async pending(group: string): Promise<number> {
    let n = 0;
    for (let b = 0; b < this.keys.buckets; b++) {
      try {
        const [count] = (await this.redis.xpending(this.keys.log(b), group)) as [number];
        n += Number(count);
      } catch {
        // no group on this bucket (yet)
      }
    }
    return n;
  }

  /**
   * Marks as blind every DEL done whose token has no end journaled yet: its notification
   * is only in the lifecycles' memory until one of them reaps it, so Redis going down now
   * can leave it to a reaper that never saw the DEL (documented: reported as expiry).
   */
  async blindUnreapedDels(): Promise<void> {
    const ended = new Set<string>();
    for (const e of (await readJournal(this.redis, this.keys)).values()) if (e.type !== 'issued') ended.add(e.jti);
    for (const t of this.churn.tokens.values()) {
      if (ended.has(t.jti)) continue;
      for (const op of t.ops) if (op.kind === 'del' && op.outcome === 'done') op.blind = true;
    }
  }

  /** Tokens with a record still (not yet ended). */
  async unended(): Promise<number> {
    return records(this.redis, this.keys);
  }

  /**
   * Waits for a settled state: every deadline passed, every token ended, every
   * audience has handled every entry of its own at least once, nothing pending in
   * any group. Then nothing more can arrive, and the comparison is fair.
   */
  async settle(timeoutMs = 25_000): Promise<void> {
    let state = '';
    try {
      await waitFor('a settled state', async () => {
        if (Date.now() < this.churn.lastDeadline + 50) return (state = 'deadlines not passed yet', false);
        const unended = await this.unended();
        if (unended > 0) return (state = `${unended} tokens not ended`, false);
        const journal = await readJournal(this.redis, this.keys);
        for (const a of this.audiences) {
          const { lost } = compare(a, journal);
          if (lost > 0) return (state = `${a.name}: ${lost} entries not handled yet`, false);
          if (a.group) {
            const pending = await this.pending(a.group);
            if (pending > 0) return (state = `${a.name}: ${pending} entries pending`, false);
          }
        }
        return true;
      }, timeoutMs, 100);
    } catch (err) {
      // The figures below say what is wrong; the state says why it did not settle.
      console.log(`faults: ${this.name}: did not settle: ${state} (${(err as Error).message})`);
    }
  }

  /** Compares every audience with the journal, checks every token's fate, prints the summary line, asserts. */
  async check(extra = ''): Promise<Figures> {
    const journal = await readJournal(this.redis, this.keys);
    const total: Figures = { checked: 0, lost: 0, duplicated: 0, invented: 0 };
    const details: string[] = [];
    const failures: string[] = [];
    const checked = new Map<string, number>();
    for (const a of this.audiences) {
      const f = compare(a, journal);
      checked.set(a.name, f.checked);
      total.checked += f.checked;
      total.lost += f.lost;
      total.duplicated += f.duplicated;
      total.invented += f.invented;
      const members = [...new Set(a.handled.map((d) => d.by))].map((by) => `${by} ${a.handled.filter((d) => d.by === by).length}`);
      details.push(`${a.name} ${f.checked}${a.group ? ` [${members.join(', ')}]` : ''}`);
      if (f.lost || f.duplicated || f.invented) {
        failures.push(`${a.name}: lost ${f.lost} ${JSON.stringify(f.lostIds.slice(0, 5))}, duplicated ${f.duplicated} ${JSON.stringify(f.duplicatedIds.slice(0, 5).map((id) => ({ id, by: a.handled.filter((d) => d.id === id).map((d) => d.by), entry: journal.get(id) })))}, invented ${f.invented} ${JSON.stringify(f.inventedIds.slice(0, 5))}`);
      }
    }

    // Every token: one `issued`, one ending, the right one. From the journal, which
    // every audience was just compared with.
    const byJti = new Map<string, JournalEntry[]>();
    for (const e of journal.values()) byJti.set(e.jti, [...(byJti.get(e.jti) ?? []), e]);
    const wrong: string[] = [];
    let blindExpired = 0;
    for (const t of this.churn.tokens.values()) {
      const events = byJti.get(t.jti) ?? [];
      const issued = events.filter((e) => e.type === 'issued');
      const ends = events.filter((e) => e.type !== 'issued').map((e) => (e.type === 'expired' ? 'expired' : `revoked/${e.reason}`));
      const { allowed, required } = this.churn.expected(t);
      if (issued.length !== 1 || ends.length !== 1) wrong.push(`${t.jti}: ${issued.length} issued, ends ${JSON.stringify(ends)}`);
      else if (!allowed.has(ends[0]!) || (required && ends[0] !== required)) {
        wrong.push(`${t.jti}: ended ${ends[0]}, expected ${required ?? [...allowed].join('|')} (ops ${JSON.stringify(t.ops)}, deadline ${t.deadline}, issued ${t.issuedAt})`);
      } else if (ends[0] === 'expired' && t.ops.some((op) => op.kind === 'del' && op.outcome === 'done' && op.blind)) blindExpired++;
    }
    // Tokens whose issue() failed may still have been written: then they too appear exactly once.
    for (const [jti, events] of byJti) {
      if (this.churn.tokens.has(jti)) continue;
      const issued = events.filter((e) => e.type === 'issued').length;
      const ends = events.length - issued;
      if (issued !== 1 || ends !== 1) wrong.push(`${jti} (issue failed): ${issued} issued, ${ends} ends`);
    }
    const revokeAll = this.checkRevokeAll(journal);
    const deadLetters = await this.deadLetters();

    const store = Object.entries(this.churn.failures).filter(([, n]) => n > 0).map(([op, n]) => `${op} ${n}`).join(', ');
    const line = `faults: ${this.name}: checked ${total.checked}, lost ${total.lost}, duplicated ${total.duplicated}, invented ${total.invented}`
      + ` (${details.join('; ')}; tokens ${this.churn.tokens.size}/${this.churn.attempts} issued`
      + `${store ? `, store calls failed in the fault: ${store}` : ''}${blindExpired ? `, DELs while no listener ran reported as expiry: ${blindExpired}` : ''}`
      + `; ${revokeAll.summary}${extra ? `; ${extra}` : ''})`;
    console.log(line);

    expect(failures, 'lost / duplicated / invented').to.deep.equal([]);
    expect(revokeAll.wrong, 'revokeAll, token by token').to.deep.equal([]);
    expect(wrong, 'tokens with a wrong lifecycle').to.deep.equal([]);
    expect(deadLetters, 'dead letters').to.equal(0);
    expect(this.gaps, 'gap events').to.deep.equal([]);
    for (const [name, n] of checked) expect(n, `events checked for ${name}`).to.be.at.least(VOLUME_FLOOR);
    return total;
  }

  /**
   * Which tokens each revokeAll() call revoked, and that exactly those got one
   * `revoked`/`revokeAll` event, in the journal and from every audience.
   *
   * A call's scripts write its entries with `at` = Redis' TIME while they run, inside
   * [startedAt, endedAt] (same host clock); the churn makes calls one at a time, each
   * after its batch resolved, so the windows of resolved calls never overlap. An entry
   * in no such window can only be a failed call that still ran (ioredis' offline queue),
   * of the same subject, later than it started.
   *
   * Per resolved call: it revoked what it said it did; only tokens of its subject
   * that were live just before (the churn's and store.list's), none past its deadline
   * when the call began; and every token nothing else touched, not revoked by an
   * earlier call and whose deadline is after the call ended (so live all through it).
   * After a failed call of the same subject (a fault), that one may have run in this
   * one's window, just before it (one connection, in order): the window then holds
   * what both revoked, so at least what this call said, and list() ran after it.
   */
  private checkRevokeAll(journal: Map<string, JournalEntry>): { wrong: string[]; summary: string } {
    const wrong: string[] = [];
    const calls = this.churn.revokeAllCalls;
    const byCall = calls.map(() => [] as [string, JournalEntry][]);
    const subOf = (e: JournalEntry) => e.sub ?? this.churn.tokens.get(e.jti)?.sub;
    for (const [id, e] of journal) {
      if (e.type !== 'revoked' || e.reason !== 'revokeAll') continue;
      const sub = subOf(e);
      let i = calls.findIndex((c) => c.endedAt !== undefined && c.sub === sub && e.at >= c.startedAt && e.at <= c.endedAt);
      if (i < 0) i = calls.findLastIndex((c) => c.endedAt === undefined && c.sub === sub && e.at >= c.startedAt);
      if (i < 0) wrong.push(`${e.jti} (${sub}): revoked by revokeAll at ${e.at}, in no call's window`);
      else byCall[i]!.push([id, e]);
    }
    const issueFailed = this.churn.failures.issue! > 0;
    const revokedEarlier = new Set<string>();
    calls.forEach((c, i) => {
      const revoked = new Set(byCall[i]!.map(([, e]) => e.jti));
      const name = `revokeAll #${i + 1} (${c.sub}, ${c.startedAt}–${c.endedAt ?? 'failed'})`;
      const failed = c.endedAt === undefined;
      const afterFailed = calls.slice(0, i).some((p) => p.endedAt === undefined && p.sub === c.sub);
      for (const jti of revoked) {
        const t = this.churn.tokens.get(jti);
        // A token whose issue() failed may still have been written, after the churn's records were taken.
        if (!t && issueFailed) continue;
        // A failed call may run late, and take tokens issued since.
        if (!t || (failed ? t.sub !== c.sub : !c.candidates.includes(jti))) wrong.push(`${name}: revoked ${jti}, not a token of ${c.sub} at the call`);
        else if (c.listed && !failed && !afterFailed && !c.listed.includes(jti)) wrong.push(`${name}: revoked ${jti}, not listed live just before`);
        else if (t.deadline < c.startedAt) wrong.push(`${name}: revoked ${jti}, whose deadline ${t.deadline} had passed`);
      }
      if (!failed) {
        if (afterFailed ? revoked.size < c.count! : revoked.size !== c.count) wrong.push(`${name}: said ${c.count}, the journal has ${revoked.size} ${JSON.stringify([...revoked].slice(0, 5))}`);
        for (const jti of c.untouched) {
          if (revokedEarlier.has(jti) || revoked.has(jti)) continue;
          const t = this.churn.tokens.get(jti)!;
          if (t.deadline > c.endedAt!) wrong.push(`${name}: did not revoke ${jti}, live all through the call (deadline ${t.deadline})`);
        }
      }
      for (const jti of revoked) revokedEarlier.add(jti);
    });

    // From every audience: one `revoked`/`revokeAll` for each of those tokens (of its entries), none for any other.
    const all = new Map(byCall.flat());
    for (const a of this.audiences) {
      const mine = entriesOf(a, journal);
      const expected = new Set([...all].filter(([id]) => mine.has(id)).map(([, e]) => e.jti));
      const got = new Map<string, number>();
      for (const d of a.handled) if (d.type === 'revoked' && d.reason === 'revokeAll') got.set(d.jti, (got.get(d.jti) ?? 0) + 1);
      for (const jti of expected) if (got.get(jti) !== 1) wrong.push(`${a.name}: ${got.get(jti) ?? 0} revokeAll events for ${jti}, expected 1`);
      for (const [jti, n] of got) if (!expected.has(jti)) wrong.push(`${a.name}: ${n} revokeAll events for ${jti}, which no call revoked`);
    }

    const failed = calls.filter((c) => c.endedAt === undefined).length;
    const summary = `revokeAll: ${calls.length} calls${failed ? ` (${failed} failed)` : ''}, ${all.size} tokens revoked, each checked`;
    return { wrong, summary };
  }

  private async deadLetters(): Promise<number> {
    let n = 0;
    for (const a of this.audiences) {
      if (!a.group) continue;
      for (let b = 0; b < this.keys.buckets; b++) n += await this.redis.xlen(this.keys.deadLetters(b, a.group));
    }
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.lifecycles.map((l) => l.stop()));
    await this.server?.stop();
  }
}

/** Sleeps `ms`: only for pacing a fault (how long Redis stays down, spacing kills), never to wait for a state. */
export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
