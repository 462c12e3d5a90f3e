// Minting an access token: its options checked, its claims, jti and signature, and its
// record for Redis. Shared by `issue` and the session calls (lib/sessions/), which
// place a session's tokens in its bucket and add the `sid` claim.
import { ConfigError } from '../errors.js';
import { inBucket, newJti, type KeySchema } from '../redis/keys.js';
import type { TokenClaims } from '../types.js';
import { RESERVED, base64urlLength, checkClaims, checkName, checkTtl, optionalString, scopeString, type IssueOptions } from './options.js';
import { NO_TEMPLATE, type Records, type Template } from './records.js';
import type { KeyRing } from './signing.js';

/** Milliseconds a token lives at least (only a ttl of 1 s could come closer to its exp). */
const MIN_LIFETIME = 100;

/** A token ready to be written: signed (or being signed) while Redis writes it. */
export interface Minted<C extends object> {
  claims: TokenClaims & C;
  jti: string;
  bucket: number;
  clientId: string;
  scope: string | undefined;
  /** The further claims (not registered ones), as given. */
  extra: Record<string, unknown>;
  /** The signed token. */
  signed: Promise<string>;
  /** The template its record uses, until Redis says its id holds other claims (see Records). */
  template: Template;
  /** Its record for `template` (see include/records.lua). */
  record(template: Template): string;
  /**
   * The template to write with now: `template`, or once Redis refused it (a short id's
   * collision: the caller marks it `collided`), the shared one, or none.
   */
  usable(): Template;
}

export interface MintSettings {
  ttl: number;
  issuer: string | undefined;
  audience: string | string[] | undefined;
  defaultClientId: string;
  maxTokenLength: number;
}

/**
 * `iat` of a token that lives `ttl` s. exp - iat is exactly the ttl asked for: RFC 9068
 * consumers, gateways that cap token age and `expires_in` all read it as the lifetime.
 * (So a token lives between ttl - 1 and ttl seconds from now, and dies in Redis at its
 * `exp`, to the millisecond.) With a ttl of 1 s, a token issued in the last milliseconds
 * of a second would die before Redis stored it: such an issue waits for the next second.
 * (A timer can fire a millisecond early: wait for the clock itself.)
 */
export async function issuedAt(ttl: number): Promise<number> {
  let now = Date.now();
  while (ttl === 1 && now % 1000 > 1000 - MIN_LIFETIME) {
    await new Promise((resolve) => setTimeout(resolve, 1001 - (now % 1000)));
    now = Date.now();
  }
  return Math.floor(now / 1000);
}

/**
 * A token's claims in the order every token of this store has them: its further claims,
 * then sub, exp, iat, jti, client_id, iss, aud, scope. A repeated refresh signs the
 * claims again from Redis (see Minter.signAgain): with a deterministic algorithm (HS*,
 * RS*, EdDSA) this order makes it the very same token.
 */
function ordered(extra: Record<string, unknown>, sub: string, exp: number, iat: number, jti: string, clientId: string,
  iss: string | undefined, aud: string | string[] | undefined, scope: string | undefined): TokenClaims {
  const claims = Object.assign({}, extra) as TokenClaims;
  claims.sub = sub;
  claims.exp = exp;
  claims.iat = iat;
  claims.jti = jti;
  claims.client_id = clientId;
  if (iss !== undefined) claims.iss = iss;
  if (aud !== undefined) claims.aud = aud;
  if (scope !== undefined) claims.scope = scope;
  return claims;
}

/** Registered claims (the rest are further ones, `sid` among them). */
const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope']);

export class Minter {
  /** Characters a token has besides its payload (header, signature, dots): learnt from the first one signed. */
  private tokenOverhead: number | undefined;

  constructor(private readonly ring: KeyRing, private readonly records: Records, private readonly keys: KeySchema, private readonly settings: MintSettings) {}

  /** The lifetime (s) and client_id of a token issued with neither option. */
  get defaults(): { ttl: number; clientId: string } {
    return { ttl: this.settings.ttl, clientId: this.settings.defaultClientId };
  }

  /** See Records.forRefresh. */
  forRefresh(clientId: string): ReturnType<Records['forRefresh']> {
    return this.records.forRefresh(clientId);
  }

  /**
   * Checks the options and mints a token for `sub`. With `session`, the token carries its
   * `sid` claim and its jti falls in the session's bucket.
   */
  async mint<C extends object>(sub: string, options: IssueOptions<C>, session?: { sid: string; bucket: number }): Promise<Minted<C>> {
    const { settings } = this;
    checkName('sub', sub, 1024);
    const ttl = options.ttl === undefined ? settings.ttl : checkTtl('ttl', options.ttl);
    const scope = scopeString(options.scope);
    const clientId = optionalString('clientId', options.clientId) ?? settings.defaultClientId;
    const given = (options.claims ?? {}) as Record<string, unknown>;
    if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new ConfigError('claims', 'a plain object');
    for (const name of Object.keys(given)) {
      if (RESERVED.has(name)) throw new ConfigError(`claims.${name}`, 'no registered claim: set it through its own option');
    }
    checkClaims('claims', given);
    // Object.assign, not spread: V8 spreads a non-empty object into a literal with more
    // properties on a slow path (about 3 µs each, measured), twice per token here.
    const extra = session === undefined ? given : Object.assign({}, given, { sid: session.sid });

    const iat = await issuedAt(ttl);
    const exp = iat + ttl;
    const jti = session === undefined ? newJti(exp) : this.sessionJti(exp, session.bucket);
    const claims = ordered(extra, sub, exp, iat, jti, clientId, settings.issuer, settings.audience, scope) as TokenClaims & C;

    const json = JSON.stringify(claims);
    // Never mint a token `verify` would refuse. Its length is known before signing: the
    // header and the signature have a fixed length per key, learnt from the first token.
    const payloadLength = base64urlLength(Buffer.byteLength(json));
    let first: string | undefined;
    if (this.tokenOverhead === undefined) {
      first = await this.ring.sign(claims, json);
      this.tokenOverhead = first.length - payloadLength;
    }
    if (payloadLength + this.tokenOverhead > settings.maxTokenLength) {
      throw new ConfigError('claims', `claims that keep the token within maxTokenLength (${settings.maxTokenLength} characters; this one would have ${payloadLength + this.tokenOverhead})`);
    }
    const records = this.records;
    const signed = first !== undefined ? Promise.resolve(first) : this.ring.sign(claims, json);
    const minted: Minted<C> = {
      claims, jti, clientId, scope, extra, signed,
      bucket: session?.bucket ?? this.keys.bucketOf(jti),
      template: records.template(clientId),
      // The record holds what the template and the jti do not (see include/records.lua):
      // jti, exp, iss, aud and client_id are not stored per token.
      record: (template) => records.record(template, clientId, extra, scope, sub, exp - iat),
      usable() {
        const template = minted.template.collided ? records.shared : minted.template;
        return template.collided ? NO_TEMPLATE : template;
      },
    };
    return minted;
  }

  /** A jti for a token of the session `sid` (in its bucket) that expires at `exp`. */
  sessionJti(exp: number, bucket: number): string {
    for (;;) {
      const jti = inBucket(newJti(exp), bucket, this.keys.buckets);
      if (jti !== undefined) return jti;
    }
  }

  /**
   * Signs a session's next access token, whose record session-refresh-n.lua wrote from the
   * session's claims (sub, client_id, scope, further claims) and this store's iss and aud.
   */
  signNext<C extends object>(extra: Record<string, unknown>, sub: string, exp: number, iat: number, jti: string, clientId: string, scope: string | undefined): { claims: TokenClaims & C; signed: Promise<string> } {
    const claims = ordered(extra, sub, exp, iat, jti, clientId, this.settings.issuer, this.settings.audience, scope) as TokenClaims & C;
    return { claims, signed: this.ring.sign(claims, JSON.stringify(claims)) };
  }

  /** Signs again a token whose claims were read back from Redis (`claimsOf`), in the order it was first signed in. */
  signAgain<C extends object>(read: TokenClaims): { claims: TokenClaims & C; signed: Promise<string> } {
    const extra: Record<string, unknown> = {};
    for (const name of Object.keys(read)) if (!REGISTERED.has(name)) extra[name] = (read as Record<string, unknown>)[name];
    const claims = ordered(extra, read.sub, read.exp, read.iat, read.jti, read.client_id as string, read.iss, read.aud, read.scope) as TokenClaims & C;
    return { claims, signed: this.ring.sign(claims, JSON.stringify(claims)) };
  }
}
