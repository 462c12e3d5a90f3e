// Signing keys: validated synchronously at construction with node:crypto (so a bad
// key fails there, naming the option), imported once as CryptoKey for jose.
import { createPrivateKey, createPublicKey, createSecretKey, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify, SignJWT, errors as jose, type JWK, type JWTPayload } from 'jose';
import { ConfigError, TokenError, type TokenErrorCode } from '../errors.js';
import { Hs256 } from './hs256.js';

/**
 * Key material: an HMAC secret (string or bytes, >= 32 bytes), a PEM private key,
 * a JWK (private, or `oct`), a Node `KeyObject` or a WebCrypto `CryptoKey`
 * (extractable, so that its public half can be derived). Bytes that are public key
 * material (PEM text, or a DER SPKI/PKCS#1 public key or X.509 certificate) are
 * refused as a secret: anyone holding the public key could sign with it.
 */
type CryptoKey = webcrypto.CryptoKey;

export type KeyInput = string | Uint8Array | KeyObject | CryptoKey | JWK;

/** An older key still accepted by `verify`, looked up by the token's `kid`. */
export type VerifyKeyInput = { kid: string; key: KeyInput; algorithm?: string } | (JWK & { kid: string });

const HMAC = { HS256: 32, HS384: 48, HS512: 64 } as const;
const EC_CURVES: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const ASYMMETRIC = new Set(['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);

export interface NamedKey {
  readonly kid: string | undefined;
  readonly alg: string;
  /** What signs (the private key or the secret); absent on verify-only keys. */
  readonly sign: KeyObject | undefined;
  /** What verifies (the public key or the secret). */
  readonly verify: KeyObject;
}

// Node 20 has CryptoKey as a global class only (not on node:crypto's webcrypto).
const CryptoKeyClass = (globalThis as { CryptoKey?: abstract new () => CryptoKey }).CryptoKey;
function isCryptoKey(value: unknown): value is CryptoKey {
  return CryptoKeyClass !== undefined && value instanceof CryptoKeyClass;
}

function isJwk(value: unknown): value is JWK {
  return typeof value === 'object' && value !== null && typeof (value as JWK).kty === 'string'
    && !(value instanceof KeyObject) && !(value instanceof Uint8Array);
}

function toKeyObject(option: string, input: KeyInput): KeyObject {
  try {
    if (input instanceof KeyObject) return input;
    if (isCryptoKey(input)) return KeyObject.from(input);
    if (input instanceof Uint8Array) return createSecretKey(input);
    if (typeof input === 'string') {
      if (input.includes('-----BEGIN')) {
        return input.includes('PRIVATE KEY') ? createPrivateKey(input) : createPublicKey(input);
      }
      return createSecretKey(Buffer.from(input, 'utf8'));
    }
    if (isJwk(input)) {
      if (input.kty === 'oct') {
        if (typeof input.k !== 'string') throw new Error('oct JWK without k');
        return createSecretKey(Buffer.from(input.k, 'base64url'));
      }
      return input.d ? createPrivateKey({ key: input as never, format: 'jwk' }) : createPublicKey({ key: input as never, format: 'jwk' });
    }
  } catch (cause) {
    throw new ConfigError(option, 'a secret of at least 32 bytes, a PEM or JWK key, a KeyObject or a CryptoKey', { cause });
  }
  throw new ConfigError(option, 'a secret of at least 32 bytes, a PEM or JWK key, a KeyObject or a CryptoKey');
}

/**
 * What public key material these secret bytes are, if any. Public keys and
 * certificates are published, so an HMAC "secret" made of one lets anyone sign: the
 * classic algorithm-confusion forgery. Bytes that parse as one are never a secret.
 */
function publicMaterial(bytes: Buffer): string | undefined {
  if (bytes.includes('-----BEGIN')) return 'PEM text';
  const parses = (parse: () => unknown) => {
    try {
      parse();
      return true;
    } catch {
      return false;
    }
  };
  if (parses(() => createPublicKey({ key: bytes, format: 'der', type: 'spki' }))) return 'an SPKI public key (DER)';
  if (parses(() => createPublicKey({ key: bytes, format: 'der', type: 'pkcs1' }))) return 'a PKCS#1 RSA public key (DER)';
  if (parses(() => new X509Certificate(bytes))) return 'an X.509 certificate';
  return undefined;
}

function refusePublicMaterial(option: string, key: KeyObject): void {
  const found = publicMaterial(key.export());
  if (found !== undefined) {
    throw new ConfigError(option, `an HMAC secret, not public key material (got ${found}); give a public key as a PEM string, a JWK or a KeyObject`);
  }
}

function inferAlgorithm(option: string, key: KeyObject): string {
  if (key.type === 'secret') return 'HS256';
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const alg = EC_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (alg) return alg;
      break;
    }
    case 'ed25519': return 'EdDSA';
    case 'rsa': return 'RS256';
  }
  throw new ConfigError(option, 'an HMAC secret or an EC (P-256/384/521), Ed25519 or RSA key');
}

function checkAlgorithm(option: string, key: KeyObject, alg: string): void {
  if (key.type === 'secret') {
    const min = HMAC[alg as keyof typeof HMAC];
    if (!min) throw new ConfigError(`${option}`, `algorithm HS256, HS384 or HS512 for a secret key (got ${alg})`);
    if ((key.symmetricKeySize ?? 0) < min) throw new ConfigError(option, `a secret of at least ${min} bytes for ${alg}`);
    return;
  }
  if (!ASYMMETRIC.has(alg)) throw new ConfigError(option, `an algorithm matching the key (got ${alg})`);
  const inferred = inferAlgorithm(option, key);
  const family = (a: string) => (a === 'Ed25519' ? 'EdDSA' : a.startsWith('PS') ? `RS${a.slice(2)}` : a);
  const same = family(alg) === inferred || (inferred === 'RS256' && family(alg).startsWith('RS'));
  if (!same) throw new ConfigError(option, `an algorithm matching the key: ${inferred} (got ${alg})`);
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new ConfigError(option, 'an RSA key of at least 2048 bits');
  }
}

export function namedKey(option: string, input: KeyInput, alg: string | undefined, kid: string | undefined, signing: boolean): NamedKey {
  const key = toKeyObject(option, input);
  if (key.type === 'secret') refusePublicMaterial(option, key);
  const algorithm = alg ?? inferAlgorithm(option, key);
  checkAlgorithm(option, key, algorithm);
  const jwkKid = isJwk(input) && typeof input.kid === 'string' ? input.kid : undefined;
  const name = kid ?? jwkKid;
  if (key.type === 'secret') return { kid: name, alg: algorithm, sign: signing ? key : undefined, verify: key };
  if (key.type === 'private') return { kid: name, alg: algorithm, sign: signing ? key : undefined, verify: createPublicKey(key) };
  if (signing) throw new ConfigError(option, 'a private key or a secret (a public key cannot sign)');
  return { kid: name, alg: algorithm, sign: undefined, verify: key };
}

/** KeyObject → CryptoKey once: jose signs and verifies ~2.3× faster with an imported CryptoKey. */
const imported = new WeakMap<KeyObject, Promise<CryptoKey>>();
export function cryptoKey(key: KeyObject, alg: string): Promise<CryptoKey> {
  let promise = imported.get(key);
  if (!promise) {
    if (key.type === 'secret') {
      const hash = `SHA-${alg.slice(2)}`;
      promise = webcrypto.subtle.importKey('raw', key.export(), { name: 'HMAC', hash }, false, ['sign', 'verify']);
    } else {
      promise = importJWK(key.export({ format: 'jwk' }) as JWK, alg) as Promise<CryptoKey>;
    }
    imported.set(key, promise);
  }
  return promise;
}

const joseCodes: Record<string, TokenErrorCode> = {
  ERR_JWT_EXPIRED: 'ERR_TOKEN_EXPIRED',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'ERR_TOKEN_SIGNATURE',
  ERR_JOSE_ALG_NOT_ALLOWED: 'ERR_TOKEN_SIGNATURE',
  ERR_JWT_CLAIM_VALIDATION_FAILED: 'ERR_TOKEN_CLAIMS',
};

/** A jose error as a TokenError that keeps it as `cause`. */
export function tokenError(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  const code = err instanceof jose.JOSEError ? joseCodes[err.code] ?? 'ERR_TOKEN_MALFORMED' : 'ERR_TOKEN_MALFORMED';
  const detail = err instanceof jose.JWTClaimValidationFailed ? `: ${err.claim} ${err.reason}` : '';
  const messages: Record<TokenErrorCode, string> = {
    ERR_TOKEN_MALFORMED: 'token is malformed',
    ERR_TOKEN_SIGNATURE: 'token signature is invalid',
    ERR_TOKEN_EXPIRED: 'token has expired',
    ERR_TOKEN_REVOKED: 'token has been revoked',
    ERR_TOKEN_CLAIMS: `token claims are invalid${detail}`,
  };
  return new TokenError(code, messages[code], { cause: err });
}

export interface VerifyRules {
  issuer?: string;
  audience?: string | string[];
  maxTokenLength: number;
}

/** The keys of one store: the current signing key and the older ones, by `kid`. */
export class KeyRing {
  private readonly byKid = new Map<string, NamedKey>();
  /** node:crypto for the exact HS256 tokens we issue; jose for everything else (see hs256.ts). */
  private readonly fast: Hs256 | undefined;

  /** @param fastPath `false` only in tests: jose alone, the reference the fast path is checked against. */
  constructor(readonly current: NamedKey, older: NamedKey[], fastPath = true) {
    for (const key of [current, ...older]) if (key.kid !== undefined) this.byKid.set(key.kid, key);
    if (!fastPath) return;
    const hs256 = (key: NamedKey) => key.alg === 'HS256';
    const named = [...this.byKid.values()].filter(hs256).map((key) => ({ kid: key.kid, secret: key.verify }));
    const signing = hs256(current) && current.sign ? { kid: current.kid, secret: current.sign } : undefined;
    if (signing || named.length > 0) this.fast = new Hs256(signing, named, hs256(current) ? current.verify : undefined);
  }

  /** @internal The fast path this ring verifies with, if any (tests read its `accepted` count). */
  get hs256(): Hs256 | undefined {
    return this.fast;
  }

  /** Every key `verify` accepts: the current key, then the older ones (as looked up by `kid`). */
  verifyingKeys(): NamedKey[] {
    const keys = [...this.byKid.values()];
    if (this.current.kid === undefined) keys.unshift(this.current);
    return keys;
  }

  /** @param json `JSON.stringify(payload)`, when the caller has it already (the fast path signs exactly it). */
  async sign(payload: JWTPayload, json?: string): Promise<string> {
    const { current } = this;
    if (this.fast?.canSign) return this.fast.sign(payload, json);
    const header = current.kid === undefined ? { alg: current.alg, typ: 'at+jwt' } : { alg: current.alg, typ: 'at+jwt', kid: current.kid };
    return new SignJWT(payload).setProtectedHeader(header).sign(await cryptoKey(current.sign!, current.alg));
  }

  /** Signature, algorithm (fixed by the key, never by the header alone), typ and claims. */
  async verify(token: unknown, rules: VerifyRules): Promise<JWTPayload> {
    if (typeof token !== 'string' || token.length === 0 || token.length > rules.maxTokenLength) {
      throw new TokenError('ERR_TOKEN_MALFORMED', 'token is malformed');
    }
    // The fast path accepts canonical signatures only; anything it does not accept goes on.
    const fast = this.fast?.verify(token, rules, Math.floor(Date.now() / 1000));
    if (fast !== undefined) return checkIds(fast);
    // The signature is the only part not covered by the signature itself: refuse
    // non-canonical base64url (spare trailing bits) so one token has one spelling.
    const dot = token.lastIndexOf('.');
    const signature = token.slice(dot + 1);
    if (dot < 0 || Buffer.from(signature, 'base64url').toString('base64url') !== signature) {
      throw new TokenError('ERR_TOKEN_MALFORMED', 'token is malformed');
    }
    try {
      const header = decodeProtectedHeader(token);
      const key = header.kid === undefined ? this.current : this.byKid.get(header.kid);
      if (!key) throw new TokenError('ERR_TOKEN_SIGNATURE', 'token is signed with an unknown key');
      const { payload } = await jwtVerify(token, await cryptoKey(key.verify, key.alg), {
        algorithms: [key.alg],
        typ: 'at+jwt',
        issuer: rules.issuer,
        audience: rules.audience,
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      });
      return checkIds(payload);
    } catch (err) {
      throw tokenError(err);
    }
  }

  /**
   * The jti a `revoke` names: a jti as given, or a token's after its signature and claims
   * are checked (only a token we signed may revoke: a forged one naming someone's jti must
   * not). Undefined for an expired token: nothing is left to revoke.
   */
  async jtiOf(tokenOrJti: string, rules: VerifyRules): Promise<string | undefined> {
    if (typeof tokenOrJti !== 'string' || tokenOrJti.length === 0) throw new ConfigError('tokenOrJti', 'a token or a jti');
    if (!tokenOrJti.includes('.')) {
      if (!/^[A-Za-z0-9_-]{16,128}$/.test(tokenOrJti)) throw new ConfigError('tokenOrJti', 'a token or a jti');
      return tokenOrJti;
    }
    try {
      return (await this.verify(tokenOrJti, rules)).jti as string;
    } catch (err) {
      if (err instanceof TokenError && err.code === 'ERR_TOKEN_EXPIRED') return undefined;
      throw err;
    }
  }
}

/** What jose does not check for us: a jti we could have made, a non-empty sub. */
function checkIds(payload: JWTPayload): JWTPayload {
  if (typeof payload.jti !== 'string' || !/^[A-Za-z0-9_-]{16,128}$/.test(payload.jti)) {
    throw new TokenError('ERR_TOKEN_CLAIMS', 'token claims are invalid: jti');
  }
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
    throw new TokenError('ERR_TOKEN_CLAIMS', 'token claims are invalid: sub');
  }
  return payload;
}

/** Members of a public JWK per key type (RFC 7518 §6): nothing else is ever published. */
const PUBLIC_MEMBERS: Record<string, readonly string[]> = { EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'], RSA: ['n', 'e'] };

/**
 * The public half of an asymmetric key as a JWK with `kid` (when named), `alg` and
 * `use: 'sig'`; `undefined` for a secret. Built from an allow-list of public members,
 * so no private part (`d`, `p`, `q`, …) can slip through.
 */
export function publicJwk(key: NamedKey): JWK | undefined {
  if (key.verify.type !== 'public') return undefined;
  const full = key.verify.export({ format: 'jwk' }) as Record<string, string>;
  const members = PUBLIC_MEMBERS[full.kty ?? ''];
  if (members === undefined) return undefined;
  const jwk: Record<string, string> = { kty: full.kty! };
  for (const name of members) if (full[name] !== undefined) jwk[name] = full[name];
  if (key.kid !== undefined) jwk.kid = key.kid;
  jwk.alg = key.alg;
  jwk.use = 'sig';
  return jwk as JWK;
}

/** The key ring of a store's options: `key` (with `algorithm` and `kid`) signs, `verifyKeys` verify too. */
export function keyRing(options: { key?: unknown; algorithm?: unknown; kid?: unknown; verifyKeys?: unknown }): KeyRing {
  if (options.key === undefined || options.key === null) throw new ConfigError('key', 'a signing key or secret');
  const name = (option: string, value: unknown) => {
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) throw new ConfigError(option, 'a non-empty string');
    return value as string | undefined;
  };
  const current = namedKey('key', options.key as KeyInput, name('algorithm', options.algorithm), name('kid', options.kid), true);
  if (options.verifyKeys !== undefined && !Array.isArray(options.verifyKeys)) {
    throw new ConfigError('verifyKeys', 'an array of { kid, key } or JWKs with a kid');
  }
  const older = ((options.verifyKeys ?? []) as VerifyKeyInput[]).map((entry, i) => {
    const option = `verifyKeys[${i}]`;
    if (typeof entry !== 'object' || entry === null || typeof entry.kid !== 'string' || entry.kid.length === 0) {
      throw new ConfigError(option, 'an object with a non-empty string kid');
    }
    const input = 'key' in entry && entry.key !== undefined ? entry.key : entry;
    const alg = 'algorithm' in entry ? entry.algorithm : (entry as { alg?: string }).alg;
    return namedKey(option, input as KeyInput, alg, entry.kid, false);
  });
  return new KeyRing(current, older);
}
