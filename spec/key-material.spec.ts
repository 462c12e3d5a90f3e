// Public key material is never an HMAC secret. A public key or certificate is
// published; a store that took one as an HS256 secret would accept tokens anyone
// can sign (algorithm confusion). Each form must be refused at construction with
// a ConfigError naming the option, whether it is the signing `key` or a `verifyKeys` entry.
import { expect } from 'chai';
import { createHmac, createSecretKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError, TokenError, TokenStore, type TokenStoreOptions } from '../lib/index.js';
import { useRedis, SECRET } from './support/fixture.js';

// A self-signed P-256 test certificate (CN=redis-token-lifecycle test), embedded so
// that the test needs no openssl. Parsing it never checks its dates.
const CERTIFICATE_PEM = `-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUHZOLmRo9viQr4Xfk3rAmiLasEn0wCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwacmVkaXMtdG9rZW4tbGlmZWN5Y2xlIHRlc3QwIBcNMjYxMTMw
MTUyMTEzWhgPMjEyNjExMDYxNTIxMTNaMCUxIzAhBgNVBAMMGnJlZGlzLXRva2Vu
LWxpZmVjeWNsZSB0ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEifhkeMSE
NudZR5P8Z97ous5BajjUd46qXth+1o/CK0IvAhYPM2jSreaSD/UulrrDwC3HJ7kl
bnJKbdQgSsGp+KNTMFEwHQYDVR0OBBYEFCrp9dKco1FKvfYMFqCFdwq9v6hIMB8G
A1UdIwQYMBaAFCrp9dKco1FKvfYMFqCFdwq9v6hIMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDRwAwRAIgK2gqtOQT8ZFKpSZAijZfo1nf8ZX3nT7WWHVpAc7T
4LsCIGa1uQiU8URfCNP6XaqzVSEkSlJ/1NjwLVy0yE3Lj3bq
-----END CERTIFICATE-----
`;

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const der = (key: KeyObject, type: 'spki' | 'pkcs1') => key.export({ format: 'der', type });
const publicPem = ec.publicKey.export({ format: 'pem', type: 'spki' });

/** Bytes that parse as public key material, as they would reach an HMAC key. */
const PUBLIC_BYTES: [string, Buffer][] = [
  ['EC SPKI DER', der(ec.publicKey, 'spki')],
  ['RSA SPKI DER', der(rsa.publicKey, 'spki')],
  ['RSA PKCS#1 public DER', der(rsa.publicKey, 'pkcs1')],
  ['X.509 certificate DER', new X509Certificate(CERTIFICATE_PEM).raw],
  ['PEM public key as a Buffer', Buffer.from(publicPem)],
  ['PEM certificate as a Buffer', Buffer.from(CERTIFICATE_PEM)],
];

/** Every way those bytes can be handed over as a secret. */
const FORMS: [string, unknown][] = PUBLIC_BYTES.flatMap(([name, bytes]): [string, unknown][] => [
  [`${name} (Buffer)`, bytes],
  [`${name} (Uint8Array)`, new Uint8Array(bytes)],
  [`${name} (secret KeyObject)`, createSecretKey(bytes)],
  [`${name} (oct JWK)`, { kty: 'oct', k: bytes.toString('base64url') }],
]);

/** The error a store's constructor throws with these options; fails the test if it throws none. */
function refusal(construct: () => unknown): ConfigError {
  try {
    construct();
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  expect.fail('expected a ConfigError, the store was built');
}

describe('Key material', () => {
  const fx = useRedis();

  describe('public key material as an HMAC secret', () => {
    for (const [name, key] of FORMS) {
      it(`${name} → ERR_CONFIG naming key, and naming verifyKeys[0]`, () => {
        const asKey = refusal(() => fx.store({ key } as Partial<TokenStoreOptions>));
        expect(asKey.code).to.equal('ERR_CONFIG');
        expect(asKey.option).to.equal('key');
        expect(asKey.message).to.match(/public key material/);

        const asOlder = refusal(() => fx.store({ verifyKeys: [{ kid: 'old', key }] } as Partial<TokenStoreOptions>));
        expect(asOlder.code).to.equal('ERR_CONFIG');
        expect(asOlder.option).to.equal('verifyKeys[0]');
        expect(asOlder.message).to.match(/public key material/);
      });
    }

    // PEM strings and public KeyObjects were never made into secrets: they parse as
    // public keys, which cannot sign and whose algorithm cannot be HS256. Kept as guards.
    const publicKeys: [string, unknown][] = [
      ['PEM public key string', publicPem],
      ['PEM certificate string', CERTIFICATE_PEM],
      ['public KeyObject', ec.publicKey],
    ];
    for (const [name, key] of publicKeys) {
      it(`${name} with algorithm HS256 → ERR_CONFIG naming key, and naming verifyKeys[0]`, () => {
        const asKey = refusal(() => fx.store({ key, algorithm: 'HS256' } as Partial<TokenStoreOptions>));
        expect(asKey.code).to.equal('ERR_CONFIG');
        expect(asKey.option).to.equal('key');

        const asOlder = refusal(() => fx.store({ verifyKeys: [{ kid: 'old', key, algorithm: 'HS256' }] } as Partial<TokenStoreOptions>));
        expect(asOlder.code).to.equal('ERR_CONFIG');
        expect(asOlder.option).to.equal('verifyKeys[0]');
      });
    }

    it('a PEM public key string in verifyKeys stays an ES256 key: an HS256 token signed with its text is refused', async () => {
      const store = fx.store({ verifyKeys: [{ kid: 'es-old', key: publicPem }] });
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: 'es-old' })}.${b64({ sub: 'mallory', jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 60, iss: 'https://issuer.test' })}`;
      const forged = `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
      let err: unknown;
      try {
        await store.verify(forged);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TokenError);
      expect((err as TokenError).code).to.equal('ERR_TOKEN_SIGNATURE');
    });
  });

  describe('real secrets still work', () => {
    it('a random 32-byte secret signs as key and verifies as verifyKeys[0]', async () => {
      const secret = randomBytes(32);
      const old = fx.store({ key: secret, kid: 'old' });
      const issued = await old.issue('alice', { ttl: 60 });
      expect((await old.verify(issued.token)).sub).to.equal('alice');

      const rotated = fx.store({ key: SECRET, kid: 'new', verifyKeys: [{ kid: 'old', key: new Uint8Array(secret) }] });
      expect((await rotated.verify(issued.token)).sub).to.equal('alice');
    });

    it('a random 32-byte secret as a KeyObject and as an oct JWK', async () => {
      const secret = randomBytes(32);
      for (const key of [createSecretKey(secret), { kty: 'oct', k: secret.toString('base64url') }]) {
        const store = fx.store({ key } as Partial<TokenStoreOptions>);
        const issued = await store.issue('bob', { ttl: 60 });
        expect((await store.verify(issued.token)).sub).to.equal('bob');
      }
    });

    it('a PEM public key string still verifies in verifyKeys (as ES256)', async () => {
      const old = fx.store({ key: ec.privateKey, kid: 'es-old' });
      const issued = await old.issue('carol', { ttl: 60 });
      const rotated = fx.store({ key: SECRET, kid: 'new', verifyKeys: [{ kid: 'es-old', key: publicPem }] });
      expect((await rotated.verify(issued.token)).sub).to.equal('carol');
    });
  });
});
