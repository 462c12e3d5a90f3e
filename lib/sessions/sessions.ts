// Sessions and refresh tokens: the TokenStore calls startSession, refresh, sessions,
// revokeSession, revokeRefreshToken land here. What is stored and why: include/sessions.lua;
// the refresh token: refresh-token.ts; behaviour at the edges: docs/sessions.md.
import { ConfigError, RefreshError, StoreUnavailableError } from '../errors.js';
import { newSid, type KeySchema } from '../redis/keys.js';
import { scripts, type RedisClient } from '../redis/script.js';
import { recordRefresh, recordSessionStarted } from '../metrics/metrics.js';
import { issuedAt, type Minter } from '../tokens/mint.js';
import { checkName, optionalString, scopeString, type IssueOptions } from '../tokens/options.js';
import type { KeyRing } from '../tokens/signing.js';
import type { SessionDevice, SessionInfo, SessionTokens, TokenClaims } from '../types.js';
import { deviceJson, type SessionSettings } from './options.js';
import { RefreshKeys, parseRefreshToken, refreshHash, type RefreshParts } from './refresh-token.js';
import { sessionFromPacked, unpackSession } from './session-info.js';
import { Batcher } from '../tokens/batch.js';
import { claimsOf, NO_TEMPLATE, type Template } from '../tokens/records.js';

/** Options of `TokenStore.startSession`: those of `issue` for its access tokens, and the device. */
export interface StartSessionOptions<Claims extends object = Record<string, unknown>> extends IssueOptions<Claims> {
  device?: SessionDevice;
}

/** Options of `TokenStore.refresh`. */
export interface RefreshOptions {
  /** A narrower scope for the new access token (RFC 6749 §6); the session keeps its own. */
  scope?: string | string[];
  /** The authenticated client: a refresh token of another client's session is refused (ERR_REFRESH_CLIENT, nothing changes). */
  clientId?: string;
}

/** What the sessions need of their store. */
export interface SessionHost {
  redis: RedisClient;
  keys: KeySchema;
  retention: string;
  answerTtl: number;
  minter: Minter;
  ring: KeyRing;
  /** One Redis round trip, bounded in time (StoreUnavailableError). */
  call<T>(pending: Promise<T>): Promise<T>;
  callId(): string;
  /** Drops revoked tokens from this process' cache. */
  evict(jtis: readonly string[]): void;
  /** Group of a bucket for one command (one slot on a Cluster, see batch.ts). */
  groupOf(bucket: number): number;
  /** Counts an access token issued (metrics). */
  countIssued(clientId: string): void;
}

/** One session for session-start-n.lua: its keys, its token's template and the rest of its arguments. */
interface StartItem {
  keys: [string, string];
  template: Template;
  /** base, record, client_id, scope, claims, device, refresh hash, ttl (see the script's header). */
  args: (string | number)[];
}

/** One refresh for session-refresh-n.lua. */
interface RefreshItem {
  keys: [string, string];
  /** The client ids whose templates the call sends (the session's is one of them, or the script asks). */
  clients: readonly string[];
  /** base, generation, hash, genuine, new hash, sealed secret, lifetime, scope asked for, client (see the script's header). */
  args: (string | number)[];
}

/**
 * Most sessions per script call (group commit, see batch.ts; small, so calls overlap with
 * this process' work, as for issue: 8 measured about 10% more refreshes/s than 16), and keys per MGET.
 */
const MAX_PER_CALL = 8;
const MAX_READS_PER_CALL = 256;

/** The template arguments of a call: count, then id and claims of each. */
function templateArgs(items: readonly { template: Template }[]): (string | number)[] {
  const templates = new Map<string, string>();
  for (const { template } of items) if (template.id !== '') templates.set(template.id, template.members);
  return [templates.size, ...[...templates].flat()];
}

/** Client ids of the sessions refreshed lately, most recent first: a refresh call sends their templates. */
const RECENT_CLIENTS = 8;

const SID = /^[A-Za-z0-9_-]{16}$/;
const REFUSALS = { ERR_REFRESH_INVALID: 'invalid', ERR_REFRESH_REUSED: 'reuse', ERR_REFRESH_SCOPE: 'scope', ERR_REFRESH_CLIENT: 'client' } as const;

export class Sessions {
  private macKeys: RefreshKeys | undefined;
  private readonly starts: Batcher<StartItem, unknown[]>;
  private readonly refreshes: Batcher<RefreshItem, unknown[]>;
  private readonly reads: Batcher<string, string | null>;
  private clients: string[];

  constructor(private readonly host: SessionHost, private readonly settings: SessionSettings) {
    const { redis } = host;
    this.starts = new Batcher((_, items) => host.call(scripts.sessionStart.run(redis, items.flatMap((i) => i.keys),
      [host.retention, settings.idleMs, settings.lifetimeMs, settings.maxSessions, ...templateArgs(items), ...items.flatMap((i) => i.args)]) as Promise<unknown[][]>), MAX_PER_CALL);
    this.refreshes = new Batcher((_, items) => host.call(scripts.sessionRefresh.run(redis, items.flatMap((i) => i.keys),
      [host.retention, settings.graceMs, ...this.clientTemplates(items), ...items.flatMap((i) => i.args)]) as Promise<unknown[][]>), MAX_PER_CALL);
    this.clients = [host.minter.defaults.clientId];
    this.reads = new Batcher((_, keys) => host.call(redis.mget(...keys)), MAX_READS_PER_CALL);
  }

  private get keysForMac(): RefreshKeys {
    return (this.macKeys ??= RefreshKeys.of(this.host.ring.verifyingKeys()));
  }

  async start<C extends object>(sub: string, options: StartSessionOptions<C> = {}): Promise<SessionTokens<TokenClaims & C>> {
    checkName('sub', sub, 1024);
    if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
    const { device } = options;
    const issue: IssueOptions<C> = { scope: options.scope, claims: options.claims, clientId: options.clientId, ttl: options.ttl };
    const stored = deviceJson(device);
    const { keys } = this.host;
    const bucket = keys.bucketOf(sub);
    const sid = newSid(bucket, keys.buckets);
    const minted = await this.host.minter.mint<C>(sub, issue, { sid, bucket });
    const refreshToken = this.keysForMac.issue(sid, 0);
    const given = (issue.claims ?? {}) as Record<string, unknown>;
    const extra = Object.keys(given).length > 0 ? JSON.stringify(given) : '';
    const base = keys.bases[bucket]!;
    const run = async (): Promise<unknown[]> => {
      const template = minted.usable();
      const reply = await this.starts.add(this.host.groupOf(bucket), {
        keys: [keys.session(bucket, sid), keys.token(bucket, minted.jti)],
        template,
        args: [base, minted.record(template), minted.clientId, minted.scope ?? '', extra, stored, refreshHash(refreshToken), issue.ttl ?? 0],
      });
      if (reply[0] !== -2) return reply;
      template.collided = true;
      return run();
    };
    const [signed, reply] = await Promise.all([minted.signed, run()]);
    if (reply[0] === -1) throw new StoreUnavailableError('Redis refused the token: its deadline is not after Redis server time (are the clocks apart?)');
    this.host.evict(reply.slice(2) as string[]);
    recordSessionStarted();
    this.host.countIssued(minted.clientId);
    return tokens(minted.claims, signed, sid, refreshToken);
  }

  async refresh<C extends object>(refreshToken: string, options: RefreshOptions = {}): Promise<SessionTokens<TokenClaims & C>> {
    try {
      const [tokens, outcome] = await this.rotate<C>(refreshToken, options);
      recordRefresh(outcome);
      return tokens;
    } catch (err) {
      if (err instanceof RefreshError) recordRefresh(REFUSALS[err.code]);
      throw err;
    }
  }

  /**
   * One round trip: the script decides and writes (session-refresh-n.lua), the new access
   * token is signed after, from the session's claims it answers with. Nothing is read first:
   * what this process assumed (the tokens' lifetime, the client's template) the script
   * checks, and asks again for what it needs.
   */
  private async rotate<C extends object>(refreshToken: string, options: RefreshOptions): Promise<[SessionTokens<TokenClaims & C>, string]> {
    const parts = parseRefreshToken(refreshToken);
    if (parts === undefined) throw invalid();
    const requested = scopeString(options.scope);
    const authenticated = optionalString('clientId', options.clientId);
    const { keys, minter } = this.host;
    const bucket = keys.bucketOf(parts.sid);
    const next = this.keysForMac.rotate(parts);
    const args: (string | number)[] = [keys.bases[bucket]!, parts.generation, refreshHash(parts.token), '?', refreshHash(next.token), next.sealed, 0,
      requested ?? '', authenticated === undefined ? '' : `=${authenticated}`];
    let { ttl } = minter.defaults;
    let clients = authenticated === undefined ? this.clients : [authenticated];
    for (;;) {
      const iat = await issuedAt(ttl);
      const exp = iat + ttl;
      const jti = minter.sessionJti(exp, bucket);
      args[6] = ttl;
      const reply = await this.refreshes.add(this.host.groupOf(bucket), { keys: [keys.session(bucket, parts.sid), keys.token(bucket, jti)], clients, args }) as (string | number)[];
      switch (reply[0]) {
        case 'ok': {
          const [, , , sub, clientId, scope, given] = reply as [string, number, number, string, string, string, string];
          const extra = (given === '' ? {} : JSON.parse(given)) as Record<string, unknown>;
          extra.sid = parts.sid;
          const signed = minter.signNext<C>(extra, sub, exp, iat, jti, clientId, requested ?? (scope || undefined));
          this.host.countIssued(clientId);
          return [tokens(signed.claims, await signed.signed, parts.sid, next.token), 'ok'];
        }
        case 'again': return [await this.again<C>(reply as string[], parts), 'grace'];
        case 'ttl': ttl = Number(reply[1]); continue;
        case 'client': clients = [...clients, this.recent(String(reply[1]))]; continue;
        case 'template': {
          const { template } = minter.forRefresh(String(reply[1]));
          if (template !== NO_TEMPLATE) template.collided = true;
          continue;
        }
        case 'mac': args[3] = this.keysForMac.genuine(parts) ? '1' : '0'; continue;
        case 'other': throw otherClient();
        case 'scope': throw new RefreshError('ERR_REFRESH_SCOPE', 'the scope asked for is not within the session\'s');
        case 'late': throw new StoreUnavailableError('Redis refused the token: its deadline is not after Redis server time (are the clocks apart?)');
        case 'reuse':
          this.host.evict(reply.slice(2) as string[]);
          throw new RefreshError('ERR_REFRESH_REUSED', 'refresh token reused: its session has been ended');
        default:
          this.host.evict(reply.slice(2) as string[]);
          throw invalid();
      }
    }
  }

  /**
   * A repeat within the grace window: the pair the first refresh of `parts` gave. Its
   * access token is signed again from its record (the same claims, in the same order: with
   * HS*, RS* or EdDSA the same string); its refresh token is opened from the sealed secret.
   */
  private async again<C extends object>(reply: string[], parts: RefreshParts): Promise<SessionTokens<TokenClaims & C>> {
    const [, jti, record, members, sealed, current] = reply as [string, string, string, string, string, string];
    const read = claimsOf(jti, record, members === '' ? undefined : members);
    const refreshToken = this.keysForMac.reopen(parts, sealed, current);
    if (read === undefined || refreshToken === undefined) throw invalid();
    const { claims, signed } = this.host.minter.signAgain<C>(read);
    return tokens(claims, await signed, parts.sid, refreshToken);
  }

  /** Remembers `clientId` as a client of sessions refreshed lately; returns it. */
  private recent(clientId: string): string {
    this.clients = [clientId, ...this.clients.filter((c) => c !== clientId)].slice(0, RECENT_CLIENTS);
    return clientId;
  }

  /** The template arguments of a refresh call: count, then client_id, template id, claims and mode of each client (see session-refresh-n.lua). */
  private clientTemplates(items: readonly RefreshItem[]): (string | number)[] {
    const seen = new Set<string>();
    const out: (string | number)[] = [0];
    for (const { clients } of items) {
      for (const clientId of clients) {
        if (seen.has(clientId)) continue;
        seen.add(clientId);
        const { template, members, mode } = this.host.minter.forRefresh(clientId);
        out.push(clientId, template.id, members, mode);
      }
    }
    out[0] = seen.size;
    return out;
  }

  /** When each session's idle deadline last slid on verify, by sid (bounded; see `slideOnVerify`). */
  private readonly touched = new Map<string, number>();

  /**
   * `verify` accepted a token: with `slideOnVerify`, a token of a session slides its idle
   * deadline, at most once per `slideEveryMs`. Fire and forget: the answer does not wait.
   */
  verified(claims: object): void {
    const every = this.settings.slideEveryMs;
    const sid = (claims as { sid?: unknown }).sid;
    if (every === 0 || typeof sid !== 'string' || !SID.test(sid)) return;
    const now = Date.now();
    if (now - (this.touched.get(sid) ?? 0) < every) return;
    if (this.touched.size >= 10_000) this.touched.clear();
    this.touched.set(sid, now);
    const { keys } = this.host;
    const bucket = keys.bucketOf(sid);
    scripts.sessionTouch.run(this.host.redis, [keys.session(bucket, sid)], [keys.bases[bucket]!]).catch(() => {
      this.touched.delete(sid); // the next verify tries again
    });
  }

  /** The live sessions of `sub`, oldest first. */
  async list(sub: string): Promise<SessionInfo[]> {
    checkName('sub', sub, 1024);
    const { keys } = this.host;
    const bucket = keys.bucketOf(sub);
    const rows = (await this.host.call(scripts.sessionsList.run(this.host.redis, [keys.sessions(bucket)], [keys.bases[bucket]!, sub]))) as string[];
    const out: SessionInfo[] = [];
    for (let i = 0; i + 1 < rows.length; i += 2) {
      const info = sessionFromPacked(rows[i]!, rows[i + 1]!);
      if (info !== undefined) out.push(info);
    }
    return out;
  }

  /** Ends a session (its access tokens are revoked). Resolves false when it had ended already. */
  async end(sid: string, reason: 'revoked' | 'logout'): Promise<boolean> {
    if (typeof sid !== 'string' || !SID.test(sid)) throw new ConfigError('sid', 'a session id (16 base64url characters)');
    const { keys } = this.host;
    const bucket = keys.bucketOf(sid);
    const reply = (await this.host.call(scripts.sessionEnd.run(this.host.redis, [keys.session(bucket, sid), keys.answer(bucket, this.host.callId())],
      [keys.bases[bucket]!, this.host.retention, reason, this.host.answerTtl]))) as unknown[];
    this.host.evict(reply.slice(1) as string[]);
    return reply[0] === 1;
  }

  /**
   * RFC 7009 for a refresh token: ends its session when it is the session's current or
   * previous refresh token, or one of ours (its MAC). Resolves false for anything else.
   */
  async revokeRefreshToken(token: string, options: { clientId?: string } = {}): Promise<boolean> {
    const parts = parseRefreshToken(token);
    if (parts === undefined) return false;
    const { keys } = this.host;
    const bucket = keys.bucketOf(parts.sid);
    const genuine = this.keysForMac.genuine(parts);
    if (!genuine || options.clientId !== undefined) {
      const hash = refreshHash(parts.token);
      const stored = unpackSession(await this.reads.add(this.host.groupOf(bucket), keys.session(bucket, parts.sid)));
      if (stored === undefined) return false;
      if (!genuine && hash !== stored.current && hash !== stored.previous) return false;
      if (options.clientId !== undefined && options.clientId !== stored.clientId) throw otherClient();
    }
    return this.end(parts.sid, 'revoked');
  }
}

function otherClient(): RefreshError {
  return new RefreshError('ERR_REFRESH_CLIENT', 'refresh token was not issued to this client');
}

function invalid(): RefreshError {
  return new RefreshError('ERR_REFRESH_INVALID', 'refresh token is invalid, used, or its session has ended');
}

/** What startSession and refresh resolve to: the access token (its claims, signed) and the refresh token. */
function tokens<C extends object>(claims: TokenClaims & C, token: string, sid: string, refreshToken: string): SessionTokens<TokenClaims & C> {
  return { token, jti: claims.jti, sub: claims.sub, expiresAt: claims.exp * 1000, claims, sid, refreshToken };
}
