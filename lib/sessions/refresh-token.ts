// Refresh tokens: opaque strings `<sid>.<generation>.<secret>.<mac>`.
//   sid         the session (16 characters). It names the session's bucket, so the token
//               finds its Redis Cluster slot; it is not secret (access tokens carry it).
//   generation  how many times the session's refresh token rotated, base 36.
//   secret      128 random bits (22 base64url characters).
//   mac         HMAC-SHA256 of the rest under a key derived from the store's signing key,
//               truncated to 128 bits: it proves that a token of an older generation was
//               ours, so its reuse is theft, not a guess (a forged one is only refused).
// Redis keeps SHA-256 of the current token and of the one before (96 bits each), never
// a token. For a repeated refresh within the grace window, the session keeps the new
// token's secret sealed: XORed with HMAC-SHA256, under the MAC key, of the presented token.
// Only a holder of that token, through a store with that key, can open it; the access
// token of the pair is signed again from its record (see sessions.ts).
import { createHmac, createSecretKey, hash, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.js';
import type { NamedKey } from '../tokens/signing.js';

const SHAPE = /^([A-Za-z0-9_-]{16})\.([0-9a-z]{1,8})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$/;

export interface RefreshParts {
  token: string;
  sid: string;
  generation: number;
  secret: string;
  mac: string;
}

/**
 * HKDF-SHA256 (RFC 5869) for a 32-byte key: extract, then one block of expand. Two HMACs:
 * `hkdfSync` costs several times more per call (a crypto job).
 */
function hkdf32(ikm: Buffer, salt: string, info: string): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk).update(info).update(ONE).digest();
}
const ONE = Buffer.from([1]);

// Random bytes from a pooled CSPRNG buffer: one randomFillSync per 4 KiB, every byte used once.
let pool = Buffer.alloc(0);
let poolOffset = 0;
function random(n: number): Buffer {
  if (poolOffset + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(4096));
    poolOffset = 0;
  }
  poolOffset += n;
  return pool.subarray(poolOffset - n, poolOffset);
}

/** The parts of a refresh token, or undefined for anything that is not one. */
export function parseRefreshToken(token: unknown): RefreshParts | undefined {
  if (typeof token !== 'string' || token.length > 100) return undefined;
  const m = SHAPE.exec(token);
  if (!m) return undefined;
  return { token, sid: m[1]!, generation: parseInt(m[2]!, 36), secret: m[3]!, mac: m[4]! };
}

/**
 * What Redis keeps of a refresh token: SHA-256, its first 96 bits. Enough to tell the
 * current token from any other (the token has 128 random bits), and nothing to rebuild it from.
 */
export function refreshHash(token: string): string {
  // The one-shot `hash` (Node 20.12): no Hash object per call.
  return hash('sha256', token, 'buffer').subarray(0, 12).toString('base64url');
}

/** The MAC keys of a store: derived from each of its keys that can sign (or HMAC secrets), the current one first. */
export class RefreshKeys {
  private constructor(private readonly keys: KeyObject[]) {}

  /** Keys whose material cannot be read (a non-extractable CryptoKey) are skipped; with none, tokens carry no valid MAC. */
  static of(keys: readonly NamedKey[]): RefreshKeys {
    const out: KeyObject[] = [];
    for (const key of keys) {
      const material = key.sign ?? (key.verify.type === 'secret' ? key.verify : undefined);
      const bytes = material === undefined ? undefined : exported(material);
      if (bytes !== undefined) out.push(createSecretKey(hkdf32(bytes, 'redis-token-lifecycle', 'refresh token mac v1')));
    }
    return new RefreshKeys(out);
  }

  /** A new refresh token for `sid` at `generation`. */
  issue(sid: string, generation: number): string {
    const secret = random(16).toString('base64url');
    const body = `${sid}.${generation.toString(36)}.${secret}`;
    const key = this.keys[0];
    const mac = key === undefined ? random(16).toString('base64url') : macOf(key, body);
    return `${body}.${mac}`;
  }

  /**
   * The token that replaces `presented` (the next generation, a new secret) and that
   * secret sealed for a repeat of this refresh within the grace window ({@link reopen}).
   */
  rotate(presented: RefreshParts): { token: string; sealed: string } {
    const key = this.keys[0];
    if (key === undefined) throw new ConfigError('key', 'a key this store can sign with (refresh needs it)');
    const secret = random(16);
    const body = `${presented.sid}.${(presented.generation + 1).toString(36)}.${secret.toString('base64url')}`;
    return { token: `${body}.${macOf(key, body)}`, sealed: xor(secret, pad(key, presented)).toString('base64url') };
  }

  /**
   * The token {@link rotate} gave for `presented`, from its sealed secret: the one of the
   * store's keys (rotated since, maybe) whose result Redis holds as the current token (`current`, its hash).
   */
  reopen(presented: RefreshParts, sealed: string, current: string): string | undefined {
    const bytes = Buffer.from(sealed, 'base64url');
    if (bytes.length !== 16) return undefined;
    for (const key of this.keys) {
      const body = `${presented.sid}.${(presented.generation + 1).toString(36)}.${xor(bytes, pad(key, presented)).toString('base64url')}`;
      const token = `${body}.${macOf(key, body)}`;
      if (refreshHash(token) === current) return token;
    }
    return undefined;
  }

  /** True when one of the store's keys made this token's MAC. */
  genuine(parts: RefreshParts): boolean {
    const body = parts.token.slice(0, parts.token.lastIndexOf('.'));
    const given = Buffer.from(parts.mac, 'base64url');
    return this.keys.some((key) => timingSafeEqual(Buffer.from(macOf(key, body), 'base64url'), given));
  }
}

/** What seals the next secret: 128 bits of HMAC-SHA256, under the MAC key, of the whole presented token. */
function pad(key: KeyObject, presented: RefreshParts): Buffer {
  return createHmac('sha256', key).update('grace v1 ').update(presented.token).digest();
}

/** The first 16 bytes of `secret` XOR `mask`. */
function xor(secret: Buffer, mask: Buffer): Buffer {
  const out = Buffer.allocUnsafe(16);
  for (let i = 0; i < 16; i++) out[i] = secret[i]! ^ mask[i]!;
  return out;
}

function macOf(key: KeyObject, body: string): string {
  return createHmac('sha256', key).update(body).digest().subarray(0, 16).toString('base64url');
}

function exported(key: KeyObject): Buffer | undefined {
  try {
    return key.type === 'secret' ? key.export() : key.export({ format: 'der', type: 'pkcs8' });
  } catch {
    return undefined;
  }
}
