// Refresh tokens: opaque strings `<sid>.<generation>.<secret>.<mac>`.
//   sid         the session (16 characters). It names the session's bucket, so the token
//               finds its Redis Cluster slot; it is not secret (access tokens carry it).
//   generation  how many times the session's refresh token rotated, base 36.
//   secret      128 random bits (22 base64url characters).
//   mac         HMAC-SHA256 of the rest under a key derived from the store's signing key,
//               truncated to 128 bits: it proves that a token of an older generation was
//               ours, so its reuse is theft, not a guess (a forged one is only refused).
// Redis keeps SHA-256 of the current token and of the one before (96 bits each), never
// a token. For a repeated refresh within the grace window, the new pair is sealed
// (AES-256-GCM) under a key derived (HKDF-Expand) from the presented token's secret: only
// the holder of that token can open it.
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hash, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
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
 * `hkdfSync` costs several times more per call (a crypto job), and a refresh derives one.
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

  /** True when one of the store's keys made this token's MAC. */
  genuine(parts: RefreshParts): boolean {
    const body = parts.token.slice(0, parts.token.lastIndexOf('.'));
    const given = Buffer.from(parts.mac, 'base64url');
    return this.keys.some((key) => timingSafeEqual(Buffer.from(macOf(key, body), 'base64url'), given));
  }
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

/**
 * The key a pair is sealed with: HKDF-Expand (RFC 5869 §2.3, one block) with the presented
 * token's secret as the pseudorandom key -- 128 uniformly random bits, so the extract step
 * adds nothing (§3.3) -- and the sid in the info.
 */
function sealKey(parts: RefreshParts): Buffer {
  return createHmac('sha256', Buffer.from(parts.secret, 'base64url')).update(`redis-token-lifecycle grace pair v1 ${parts.sid}`).update(ONE).digest();
}

/** `text` sealed for the holder of the presented refresh token (AES-256-GCM; IV, ciphertext and tag, base64url). */
export function seal(text: string, presented: RefreshParts): string {
  const iv = random(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey(presented), iv);
  const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** What {@link seal} sealed, or undefined when this token cannot open it. */
export function open(sealed: string, presented: RefreshParts): string | undefined {
  try {
    const bytes = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', sealKey(presented), bytes.subarray(0, 12));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
