// Record encoding, the TypeScript half (the Lua half is scripts/include/records.lua,
// `expand`). A token's record in the hash of its expiry second holds only what its
// template and its jti do not:
//   "<template id>,<exp - iat>,<scope length>,<extra length>:<scope><extra><sub>"
// Claims the tokens of a store share (iss, aud, client_id) are stored once per bucket
// as a template; jti, exp and iat come from the jti and the record.
import { fnv1a, type KeySchema } from '../redis/keys.js';

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
   * A token's record: what the template and the jti do not hold (see include/records.lua).
   * jti, exp, iss, aud and client_id are not stored per token, unless no template holds them.
   */
  record(template: Template, clientId: string, extra: Record<string, unknown>, scope: string | undefined, sub: string, age: number): string {
    let own: Record<string, unknown> = extra;
    if (template === NO_TEMPLATE) {
      own = { ...extra, client_id: clientId };
      if (this.issuer !== undefined) own.iss = this.issuer;
      if (this.audience !== undefined) own.aud = this.audience;
    } else if (template.id === '' || this.templates.get('') === template) own = { ...extra, client_id: clientId };
    const rest = Object.keys(own).length > 0 ? JSON.stringify(own) : '';
    return `${template.id},${age},${scope === undefined ? '' : scope.length},${Buffer.byteLength(rest)}:${scope ?? ''}${rest}${sub}`;
  }
}

/** One token for the issue script (see issue-n.lua). */
export interface IssueItem {
  bucket: number;
  jti: string;
  exp: number;
  sub: string;
  record: string;
  template: Template;
  json: string;
  /** Overdue tokens of its bucket to reap first. */
  reap: number;
}
/** The keys and arguments of one issue-n.lua call for `items` (see its header). */
export function issueCall(k: KeySchema, retention: string, items: IssueItem[]): { keys: string[]; args: (string | number)[] } {
  const keys: string[] = [];
  const templates = new Map<string, string>();
  const perToken: (string | number)[] = [];
  for (const { bucket, jti, exp, sub, record, template, json, reap } of items) {
    keys.push(k.token(bucket, jti), k.window(bucket, exp), k.due(bucket), k.subject(bucket, sub), k.log(bucket), k.templates(bucket));
    if (template.id !== '') templates.set(template.id, template.members);
    perToken.push(k.bases[bucket]!, jti, exp, record, template.id, json, reap);
  }
  const args: (string | number)[] = [retention, templates.size];
  for (const [id, members] of templates) args.push(id, members);
  return { keys, args: args.concat(perToken) };
}
