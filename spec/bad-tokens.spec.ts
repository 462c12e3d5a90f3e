// 2000+ random and crafted bad tokens: verify refuses every one with a TokenError
// and a known code, never another error, never a crash, never a pass.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { TokenError } from '../lib/index.js';
import { SECRET, useRedis } from './support/fixture.js';

const CODES = ['ERR_TOKEN_MALFORMED', 'ERR_TOKEN_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_TOKEN_REVOKED', 'ERR_TOKEN_CLAIMS'];
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const secret = new TextEncoder().encode(SECRET);
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u00e9\u0000';

function randomString(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return out;
}

describe('verify with 2000+ bad tokens', () => {
  const fx = useRedis();

  it('refuses every one with a TokenError', async function () {
    this.timeout(60_000);
    const store = fx.store({ audience: 'api' });
    const good = await store.issue('alice', { scope: 'read' });
    const [h, p, s] = good.token.split('.') as [string, string, string];
    const claims = { sub: 'alice', jti: 'AAAAAAAAAAAAAAAAAAAAAA', iss: 'https://issuer.test', aud: 'api' };
    const signed = (payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: Uint8Array = secret) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', ...header }).setIssuedAt().setExpirationTime('5m').sign(key);

    const bad: [string, unknown][] = [];
    const add = (kind: string, token: unknown) => bad.push([kind, token]);

    for (let i = 0; i < 500; i++) add('random string', randomString(Math.floor(Math.random() * 300)));
    for (let i = 0; i < 300; i++) add('random segments', [randomBytes(10 + i % 40), randomBytes(i % 80), randomBytes(32)].map((x) => x.toString('base64url')).join('.'));
    for (let i = 0; i < 100; i++) add('alg none', new UnsecuredJWT({ ...claims, n: i }).setIssuedAt().setExpirationTime('5m').encode());
    for (let i = 0; i < 50; i++) add('alg none, typ at+jwt', `${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.`);
    for (let i = 0; i < 200; i++) add('wrong key', await signed({ ...claims, n: i }, {}, randomBytes(32)));
    for (let i = 0; i < 50; i++) add('wrong audience', await signed({ ...claims, aud: `other${i}` }));
    for (let i = 0; i < 50; i++) add('wrong issuer', await signed({ ...claims, iss: `https://evil${i}.test` }));
    for (let i = 0; i < 30; i++) add('wrong typ', await signed({ ...claims, n: i }, { typ: 'JWT' }));
    for (let i = 0; i < 30; i++) add('no jti', await signed({ sub: 'alice', iss: claims.iss, aud: 'api', n: i }));
    for (let i = 0; i < 30; i++) add('no sub', await signed({ jti: claims.jti, iss: claims.iss, aud: 'api', n: i }));
    for (let i = 0; i < 30; i++) add('bad jti', await signed({ ...claims, jti: ['short', 'a b c d e f g h i j k', '../../etc/passwd/xxxxxxx', 42][i % 4] }));
    for (let i = 0; i < 30; i++) add('unknown kid', await signed({ ...claims, n: i }, { kid: `k${i}` }));
    for (let i = 0; i < 30; i++) add('HS512 with the same secret', await new SignJWT({ ...claims, n: i }).setProtectedHeader({ alg: 'HS512', typ: 'at+jwt' }).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(SECRET.repeat(2))));
    for (let i = 0; i < 30; i++) add('expired', await new SignJWT({ ...claims, n: i }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).setIssuedAt(1_000_000).setExpirationTime(1_000_060).sign(secret));
    for (let i = 0; i < 30; i++) add('not yet valid', await signed({ ...claims, nbf: Math.floor(Date.now() / 1000) + 3600 + i }));
    for (let i = 0; i < 30; i++) add('never issued (not live)', await signed({ ...claims, jti: randomBytes(16).toString('base64url') }));
    for (let i = 1; i < good.token.length; i += Math.ceil(good.token.length / 250)) add('truncated', good.token.slice(0, i));
    for (let i = 0; i < 300; i++) {
      const at = Math.floor(Math.random() * good.token.length);
      const c = good.token[at] === 'A' ? 'B' : 'A';
      const flipped = good.token.slice(0, at) + c + good.token.slice(at + 1);
      if (flipped !== good.token && good.token[at] !== '.') add('one character changed', flipped);
    }
    for (const size of [8193, 65_536, 200 * 1024]) add(`${size} bytes`, `${h}.${'A'.repeat(size)}.${s}`);
    for (let i = 0; i < 10; i++) add('200 KB of random', randomString(200 * 1024));
    for (const header of [{}, { alg: 'HS256' }, 'not json', '[]', 'null', '1', { alg: 'HS256', typ: 'at+jwt', crit: ['x'], x: 1 }, { alg: 'HS256', typ: 'at+jwt', b64: false, crit: ['b64'] }, { alg: 'RS256', typ: 'at+jwt' }, { alg: 'hs256', typ: 'at+jwt' }]) {
      add('crafted header', `${b64(header)}.${p}.${s}`);
    }
    for (const payload of ['not json', '[]', 'null', '"str"', '{"sub":1}', '{}']) add('crafted payload', `${h}.${b64(payload)}.${s}`);
    for (const shape of ['', '.', '..', '...', `${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, ` ${good.token}`, `${good.token} `, `Bearer ${good.token}`, `${h}.${p}.${s}=`]) add('shape', shape);
    for (const value of [undefined, null, 42, {}, [], Buffer.from(good.token), new String(good.token)]) add('not a string', value);

    expect(bad.length).to.be.at.least(2000);
    const outcomes = new Map<string, number>();
    for (const [kind, token] of bad) {
      let err: unknown;
      try {
        await store.verify(token as string);
      } catch (e) {
        err = e;
      }
      expect(err, `${kind}: ${String(token).slice(0, 80)} was accepted`).to.not.equal(undefined);
      expect(err, `${kind}: ${String(err)}`).to.be.instanceOf(TokenError);
      expect(CODES, kind).to.include((err as TokenError).code);
      const key = `${kind} → ${(err as TokenError).code}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    // The crafted families land on the code that says why.
    const only = (kind: string, code: string) => expect([...outcomes.keys()].filter((k) => k.startsWith(`${kind} →`)), kind).to.deep.equal([`${kind} → ${code}`]);
    only('wrong key', 'ERR_TOKEN_SIGNATURE');
    only('alg none', 'ERR_TOKEN_SIGNATURE');
    only('wrong audience', 'ERR_TOKEN_CLAIMS');
    only('wrong issuer', 'ERR_TOKEN_CLAIMS');
    only('no jti', 'ERR_TOKEN_CLAIMS');
    only('expired', 'ERR_TOKEN_EXPIRED');
    only('never issued (not live)', 'ERR_TOKEN_REVOKED');
    only('200 KB of random', 'ERR_TOKEN_MALFORMED');
    only('not a string', 'ERR_TOKEN_MALFORMED');
    // And the good token is still good.
    expect((await store.verify(good.token)).jti).to.equal(good.jti);
  });
});
