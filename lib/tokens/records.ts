// Record encoding, the TypeScript half (the Lua half is scripts/include/records.lua,
// `expand`). A token's record in the hash of its expiry second holds only what its
// template and its jti do not:
//   "<template id>,<exp - iat>,<scope length>,<extra length>:<scope><extra><sub>"
// Claims the tokens of a store share (iss, aud, client_id) are stored once per bucket
// as a template; jti, exp and iat come from the jti and the record.
import { fnv1a, secondOf, type KeySchema } from '../redis/keys.js';
import type { TokenClaims } from '../types.js';

/**
 * Claims the tokens of a store share (iss, aud, client_id) are stored once per expiry
 * second and bucket as a template, not in each record.
 */
export interface Template {
  id: string;
  /** The claims, as the members of a JSON object. */
  members: string;
  /** Redis holds other claims under this id (another store's template): records carry these claims themselves. */
  collided: boolean;
}
/** Records that hold every claim themselves (their template's id is taken by other claims). */
export const NO_TEMPLATE: Template = { id: '', members: '', collided: false };
/** Client ids with a template of their own; tokens of further ones carry client_id in their record. */
const MAX_TEMPLATES = 256;

/** The templates of one store and the records of its tokens. */
export class Records {
  /** Templates by client_id; '' holds iss and aud only. */
  private readonly templates = new Map<string, Template>();

  constructor(private readonly issuer: string | undefined, private readonly audience: string | string[] | undefined) {
    this.template('');
  }

  /** The template every client id past the first MAX_TEMPLATES falls back to (iss and aud only). */
  get shared(): Template {
    return this.templates.get('')!;
  }

  /** The template of tokens of `clientId` ('': iss and aud only, for client ids past MAX_TEMPLATES). */
  template(clientId: string): Template {
    let found = this.templates.get(clientId);
    if (found) return found;
    if (this.templates.size >= MAX_TEMPLATES) return this.templates.get('')!;
    const claims: Record<string, unknown> = {};
    if (this.issuer !== undefined) claims.iss = this.issuer;
    if (this.audience !== undefined) claims.aud = this.audience;
    if (clientId !== '') claims.client_id = clientId;
    const members = JSON.stringify(claims).slice(1, -1);
    // A short id keeps records inside Redis' compact hash encoding. Ids can collide (32 bits):
    // issue-n.lua never lets a template overwrite another one's claims (see `collided`).
    found = { id: members === '' ? '' : fnv1a(members).toString(36), members, collided: false };
    this.templates.set(clientId, found);
    return found;
  }

  /**
   * How session-refresh-n.lua writes the record of a session's next token, whose claims it
   * takes from the session (see `session_record`): the template `issue` would use now for
   * `clientId`, and which claims the record then holds itself, as {@link record} decides:
   * `mode` 0 none, 1 client_id, 2 client_id and `members` (iss and aud: no template).
   * After Redis refused `template` (another store's id), mark it `collided` and ask again.
   */
  forRefresh(clientId: string): { template: Template; mode: 0 | 1 | 2; members: string } {
    const own = this.template(clientId);
    const usable = own.collided ? this.shared : own;
    if (usable.collided) return { template: NO_TEMPLATE, mode: 2, members: this.shared.members };
    return { template: usable, mode: usable.id === '' || usable === this.shared ? 1 : 0, members: usable.members };
  }

  /**
   * A token's record: what the template and the jti do not hold (see include/records.lua).
   * jti, exp, iss, aud and client_id are not stored per token, unless no template holds them.
   */
  record(template: Template, clientId: string, extra: Record<string, unknown>, scope: string | undefined, sub: string, age: number): string {
    let own: Record<string, unknown> = extra;
    if (template === NO_TEMPLATE) {
      own = Object.assign({}, extra, { client_id: clientId });
      if (this.issuer !== undefined) own.iss = this.issuer;
      if (this.audience !== undefined) own.aud = this.audience;
    } else if (template.id === '' || this.templates.get('') === template) own = Object.assign({}, extra, { client_id: clientId });
    const rest = Object.keys(own).length > 0 ? JSON.stringify(own) : '';
    return `${template.id},${age},${scope === undefined ? '' : scope.length},${Buffer.byteLength(rest)}:${scope ?? ''}${rest}${sub}`;
  }
}

const RECORD = /^(\w*),(\d+),(\d*),(\d+):/;
const NOT_ASCII = /[^\x00-\x7f]/;

/** A record's template id ('' for none), or undefined for a malformed record. */
export function templateOf(record: string): string | undefined {
  return RECORD.exec(record)?.[1];
}

/** Parsed template members, kept by their text (a store has a handful). */
const parsedTemplates = new Map<string, [string, unknown][]>();

function templateClaims(members: string): [string, unknown][] {
  let found = parsedTemplates.get(members);
  if (!found) {
    if (parsedTemplates.size >= 1024) parsedTemplates.clear();
    found = Object.entries(JSON.parse(`{${members}}`) as Record<string, unknown>);
    parsedTemplates.set(members, found);
  }
  return found;
}

/**
 * A token's claims from its jti, its record and its template's claims (JSON members;
 * undefined when it has none or they are not known), the same claims as
 * include/records.lua's `expand` builds in Redis. Undefined for a malformed record.
 */
export function claimsOf(jti: string, record: string, members: string | undefined): TokenClaims | undefined {
  const m = RECORD.exec(record);
  const exp = secondOf(jti);
  if (!m || exp === undefined) return undefined;
  let rest = record.slice(m[0].length);
  const claims: Record<string, unknown> = { jti, exp, iat: exp - Number(m[2]) };
  if (m[3] !== '') {
    const scope = rest.slice(0, Number(m[3])); // ASCII: scope tokens are (RFC 6749 §3.3)
    claims.scope = scope;
    rest = rest.slice(scope.length);
  }
  // The extra claims' length is in bytes.
  const extraBytes = Number(m[4]);
  let extra = '';
  let sub = rest;
  if (extraBytes > 0) {
    if (NOT_ASCII.test(rest)) {
      const bytes = Buffer.from(rest);
      extra = bytes.toString('utf8', 0, extraBytes);
      sub = bytes.toString('utf8', extraBytes);
    } else {
      extra = rest.slice(0, extraBytes);
      sub = rest.slice(extraBytes);
    }
  }
  claims.sub = sub;
  try {
    if (members) for (const [name, value] of templateClaims(members)) claims[name] = Array.isArray(value) ? value.slice() : value;
    if (extra !== '') Object.assign(claims, JSON.parse(extra) as Record<string, unknown>);
  } catch {
    return undefined;
  }
  return claims as TokenClaims;
}

/** One token for the issue script (see issue-n.lua). */
export interface IssueItem {
  bucket: number;
  jti: string;
  record: string;
  template: Template;
  /** Overdue tokens of its bucket to reap first. */
  reap: number;
}

/**
 * The keys and arguments of one issue-n.lua call for `items` (see its header): the
 * tokens go grouped by bucket, so `order[i]` is the index in `items` of the token whose
 * result is the script's i-th.
 */
export function issueCall(k: KeySchema, retention: string, items: IssueItem[]): { keys: string[]; args: (string | number)[]; order: number[] } {
  const templates = new Map<string, string>();
  const byBucket = new Map<number, number[]>();
  items.forEach((item, i) => {
    if (item.template.id !== '') templates.set(item.template.id, item.template.members);
    const group = byBucket.get(item.bucket);
    if (group) group.push(i);
    else byBucket.set(item.bucket, [i]);
  });
  const args: (string | number)[] = [retention, templates.size];
  for (const [id, members] of templates) args.push(id, members);
  const keys: string[] = [];
  const order: number[] = [];
  for (const [bucket, group] of byBucket) {
    let reap = 0;
    for (const i of group) reap += items[i]!.reap;
    args.push(k.bases[bucket]!, reap, group.length);
    for (const i of group) {
      const item = items[i]!;
      keys.push(k.token(bucket, item.jti));
      args.push(item.record);
      order.push(i);
    }
  }
  return { keys, args, order };
}
