// The HS256 fast path: sign and verify the exact tokens this library issues with
// node:crypto, synchronously, instead of jose's WebCrypto (async, allocating:
// ~3× slower, see bench/). jose stays the reference: this path only *accepts*.
// Whatever it does not recognise byte for byte, or would refuse, it hands back
// (`undefined`) and the caller runs jose, so every refusal keeps jose's exact
// error and code. The differential test spec/hs256.spec.ts holds the two to that.
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { JWTPayload } from 'jose';

/** What the fast path checks besides the signature: what `jwtVerify` is given in signing.ts. */
export interface FastRules {
  issuer?: string;
  audience?: string | string[];
}

/** A key the fast path may use: an HS256 secret and the `kid` it is named by in headers, if any. */
export interface Hs256Key {
  kid: string | undefined;
  secret: KeyObject;
}

// base64url only, no padding, no whitespace; a 32-byte MAC is 43 characters whose
// last one carries 4 bits, so its 2 spare bits must be zero (one spelling per MAC).
const SIGNATURE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const REQUIRED = ['exp', 'iat', 'jti', 'sub'] as const;

/** The protected header we write, exactly as jose's `setProtectedHeader` serialises it. */
export function encodedHeader(kid: string | undefined): string {
  const header = kid === undefined ? { alg: 'HS256', typ: 'at+jwt' } : { alg: 'HS256', typ: 'at+jwt', kid };
  return Buffer.from(JSON.stringify(header)).toString('base64url');
}

/**
 * Signs and verifies HS256 access tokens whose header is one of the exact
 * encodings we issue (`{"alg":"HS256","typ":"at+jwt"}`, plus `kid` when named).
 * The algorithm is fixed by that byte-exact header and the key it selects; a
 * header naming anything else never reaches this code's acceptance path.
 */
export class Hs256 {
  /** encoded header → key, in the order jose's path would pick them (kid-less → current key). */
  private readonly headers: { prefix: string; secret: KeyObject }[];
  private readonly signHeader: string | undefined;
  private readonly signKey: KeyObject | undefined;
  /**
   * @internal How many tokens `verify` has accepted: lets spec/hs256.spec.ts prove
   * that the store's key ring took this path, not only that some instance could.
   */
  accepted = 0;

  /**
   * @param signing the current key when it is HS256 (signs, and verifies kid-less tokens when it has no kid).
   * @param verifying every HS256 key selectable by `kid`, as signing.ts's KeyRing selects them.
   * @param currentForNoKid the key a header without `kid` selects, when it is HS256.
   */
  constructor(signing: Hs256Key | undefined, verifying: Hs256Key[], currentForNoKid: KeyObject | undefined) {
    this.headers = [];
    if (currentForNoKid) this.headers.push({ prefix: `${encodedHeader(undefined)}.`, secret: currentForNoKid });
    for (const key of verifying) {
      if (key.kid !== undefined) this.headers.push({ prefix: `${encodedHeader(key.kid)}.`, secret: key.secret });
    }
    this.signHeader = signing ? encodedHeader(signing.kid) : undefined;
    this.signKey = signing?.secret;
  }

  /** True when `sign` can be used (the current key is HS256). */
  get canSign(): boolean {
    return this.signKey !== undefined;
  }

  /**
   * The compact JWS jose's `SignJWT(payload).setProtectedHeader(header).sign(key)` would produce, byte for byte.
   * @param json `JSON.stringify(payload)`, when the caller has it already.
   */
  sign(payload: JWTPayload, json = JSON.stringify(payload)): string {
    const input = `${this.signHeader!}.${Buffer.from(json).toString('base64url')}`;
    return `${input}.${createHmac('sha256', this.signKey!).update(input).digest('base64url')}`;
  }

  /**
   * The payload when the token is one jose would accept with these rules (at
   * `now`, epoch seconds); `undefined` when jose must decide (it may refuse, or
   * accept an unusual spelling this path does not handle).
   */
  verify(token: string, rules: FastRules, now: number): JWTPayload | undefined {
    let secret: KeyObject | undefined;
    let start = 0;
    for (const h of this.headers) {
      if (token.startsWith(h.prefix)) {
        secret = h.secret;
        start = h.prefix.length;
        break;
      }
    }
    if (secret === undefined) return undefined;
    const dot = token.indexOf('.', start);
    if (dot < 0) return undefined;
    const signature = token.slice(dot + 1);
    const segment = token.slice(start, dot);
    if (!SIGNATURE.test(signature) || segment.length % 4 === 1 || !SEGMENT.test(segment)) return undefined;

    const mac = createHmac('sha256', secret).update(token.slice(0, dot), 'latin1').digest();
    if (!timingSafeEqual(mac, Buffer.from(signature, 'base64url'))) return undefined;

    let claims: unknown;
    try {
      const json = Buffer.from(segment, 'base64url').toString('utf8');
      // U+FFFD: invalid UTF-8 (jose's decoder is fatal) or a real U+FFFD — jose decides.
      if (json.includes('\uFFFD')) return undefined;
      claims = JSON.parse(json);
    } catch {
      return undefined;
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined;
    const c = claims as Record<string, unknown>;
    for (const name of REQUIRED) if (!Object.hasOwn(c, name)) return undefined;
    if (rules.issuer !== undefined && (!Object.hasOwn(c, 'iss') || c.iss !== rules.issuer)) return undefined;
    if (rules.audience !== undefined && (!Object.hasOwn(c, 'aud') || !audienceMatches(c.aud, rules.audience))) return undefined;
    // jose: iat must be a number when present; nbf <= now; exp > now (clockTolerance 0).
    if (typeof c.iat !== 'number') return undefined;
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now)) return undefined;
    if (typeof c.exp !== 'number' || c.exp <= now) return undefined;
    this.accepted++;
    return c as JWTPayload;
  }
}

/** jose's checkAudiencePresence. */
function audienceMatches(aud: unknown, expected: string | string[]): boolean {
  const wanted = typeof expected === 'string' ? [expected] : expected;
  if (typeof aud === 'string') return wanted.includes(aud);
  if (Array.isArray(aud)) return wanted.some((a) => aud.includes(a));
  return false;
}
