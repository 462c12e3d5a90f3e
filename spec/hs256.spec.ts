// The HS256 fast path against jose, the reference: thousands of generated valid and
// invalid tokens, verified by a KeyRing with the fast path and by one with jose
// alone. Both must accept the same tokens with the same payload and refuse the
// same tokens with the same TokenError code. Signing must match jose byte for byte.
// Acceptances are counted on the fast path the ring itself uses, so a ring that
// stopped taking it would fail the test.
import { expect } from 'chai';
import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { TokenError } from '../lib/index.js';
import { Hs256, encodedHeader } from '../lib/tokens/hs256.js';
import { KeyRing, namedKey, type VerifyRules } from '../lib/tokens/signing.js';

const SECRET_A = 'fast-path-secret-a-that-is-at-least-32-bytes';
const SECRET_B = 'fast-path-secret-b-that-is-at-least-32-bytes';
const ISS = 'https://issuer.test';
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const bytes = (s: string) => new TextEncoder().encode(s);

/** Deterministic randomness, so that a failure can be reproduced from its seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]! };
}

/** A compact JWS over exactly these segment strings, signed with `secret` (HS256). */
function raw(header: string, payload: string, secret: string | Buffer = SECRET_A): string {
  const input = `${header}.${payload}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

type Outcome = { ok: true; payload: unknown } | { ok: false; code: string };

async function outcome(ring: KeyRing, token: string, rules: VerifyRules): Promise<Outcome> {
  try {
    return { ok: true, payload: await ring.verify(token, rules) };
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    return { ok: false, code: err.code };
  }
}

interface Setup {
  name: string;
  rules: VerifyRules;
  fast: KeyRing;
  jose: KeyRing;
}

function setup(name: string, rules: Omit<VerifyRules, 'maxTokenLength'>, kid?: string): Setup {
  const current = () => namedKey('key', SECRET_A, undefined, kid, true);
  const older = () => (kid ? [namedKey('verifyKeys[0]', SECRET_B, undefined, 'old', false)] : []);
  const fast = new KeyRing(current(), older());
  const jose = new KeyRing(current(), older(), false);
  return { name, rules: { ...rules, maxTokenLength: 8192 }, fast, jose };
}

/** How many tokens the fast path of this ring has accepted: 0 when the ring does not use one. */
const fastAccepted = (ring: KeyRing) => ring.hs256?.accepted ?? 0;

const SETUPS = [
  setup('issuer + audience', { issuer: ISS, audience: 'api' }),
  setup('audience list, kid + older key', { audience: ['api', 'other'] }, 'k1'),
  setup('no issuer or audience', {}),
];

/** Generates tokens of every kind, around `now` (epoch seconds). */
async function generate(seed: number, now: number): Promise<[string, string][]> {
  const r = rng(seed);
  const out: [string, string][] = [];
  const add = (kind: string, token: string) => out.push([kind, token]);
  const jti = () => randomBytes(16).toString('base64url');
  const base = () => ({ sub: r.pick(['alice', 'bob', 'ünïcødé', 'a'.repeat(200), '1']), jti: jti(), iat: now - r.int(100), exp: now + 1 + r.int(1000), client_id: 'web', scope: 'read write' });
  const headers = [
    { alg: 'HS256', typ: 'at+jwt' },
    { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
    { alg: 'HS256', typ: 'at+jwt', kid: 'old' },
  ];
  const sign = (payload: Record<string, unknown>, header: Record<string, unknown> = r.pick(headers), secret = SECRET_A) =>
    new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(bytes(secret));

  // Valid-looking tokens with every claim variation jose cares about.
  for (let i = 0; i < 400; i++) {
    const claims: Record<string, unknown> = { ...base(), n: i };
    if (r.next() < 0.7) claims.iss = r.next() < 0.9 ? ISS : `${ISS}/other`;
    const aud = r.int(6);
    if (aud === 1) claims.aud = 'api';
    if (aud === 2) claims.aud = ['x', 'api'];
    if (aud === 3) claims.aud = ['other'];
    if (aud === 4) claims.aud = 'nope';
    if (aud === 5) claims.aud = [1, 'api'];
    if (r.next() < 0.3) claims.nbf = now - 5 + r.int(10);
    if (r.next() < 0.2) claims.extra = { nested: [1, 2, { deep: 'é' }], u: '\u2028' };
    const header = headers[i % 3]!;
    const secret = i % 3 === 2 && r.next() < 0.8 ? SECRET_B : r.next() < 0.9 ? SECRET_A : SECRET_B;
    add('claims variation', await sign(claims, header, secret));
  }
  // Times: exactly at the edges jose draws.
  for (const [label, patch] of [
    ['exp = now', { exp: now }], ['exp = now + 1', { exp: now + 1 }], ['exp = now - 1', { exp: now - 1 }],
    ['exp long ago', { exp: 1_000_000 }], ['exp float', { exp: now + 0.5 }], ['exp float past', { exp: now - 0.5 }],
    ['exp string', { exp: String(now + 100) }], ['exp null', { exp: null }], ['exp negative', { exp: -1 }],
    ['nbf = now', { nbf: now }], ['nbf = now + 1', { nbf: now + 1 }], ['nbf float', { nbf: now + 0.5 }],
    ['nbf null', { nbf: null }], ['nbf string', { nbf: String(now) }], ['iat string', { iat: 'yesterday' }],
    ['iat in the future', { iat: now + 3600 }], ['iat null', { iat: null }],
  ] as const) {
    for (let i = 0; i < 10; i++) add(label, await sign({ ...base(), iss: ISS, aud: 'api', ...patch, n: i }));
  }
  const big = `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${b64({ ...base(), iss: ISS, aud: 'api' })}`;
  add('exp 1e400 (Infinity)', raw(b64({ alg: 'HS256', typ: 'at+jwt' }), b64(`{"sub":"a","jti":"${jti()}","iat":${now},"exp":1e400,"iss":"${ISS}","aud":"api"}`)));
  add('exp -1e400', raw(b64({ alg: 'HS256', typ: 'at+jwt' }), b64(`{"sub":"a","jti":"${jti()}","iat":${now},"exp":-1e400,"iss":"${ISS}","aud":"api"}`)));
  // Missing claims, wrong ids.
  for (const name of ['exp', 'iat', 'jti', 'sub', 'iss', 'aud']) {
    for (let i = 0; i < 10; i++) {
      const claims: Record<string, unknown> = { ...base(), iss: ISS, aud: 'api', n: i };
      delete claims[name];
      add(`no ${name}`, await sign(claims));
    }
  }
  for (const j of ['short', 'a b c d e f g h i j', 42, null, 'x'.repeat(129), 'é'.repeat(20)]) add('bad jti', await sign({ ...base(), iss: ISS, aud: 'api', jti: j }));
  for (const s of ['', 42, null, ['a']]) add('bad sub', await sign({ ...base(), iss: ISS, aud: 'api', sub: s }));
  // Headers: only the exact shapes we issue take the fast path; jose judges the rest.
  const payload = b64({ ...base(), iss: ISS, aud: 'api' });
  for (const header of [
    { typ: 'at+jwt', alg: 'HS256' }, { alg: 'HS256', typ: 'AT+JWT' }, { alg: 'HS256', typ: 'application/at+jwt' },
    { alg: 'HS256', typ: 'JWT' }, { alg: 'HS256' }, { alg: 'HS256', typ: 'at+jwt', extra: 1 },
    { alg: 'HS256', typ: 'at+jwt', crit: ['x'], x: 1 }, { alg: 'HS256', typ: 'at+jwt', crit: ['b64'], b64: false },
    { alg: 'HS256', typ: 'at+jwt', crit: ['b64'], b64: true }, { alg: 'HS256', typ: 'at+jwt', b64: false },
    { alg: 'HS256', typ: 'at+jwt', crit: [] }, { alg: 'HS256', typ: 'at+jwt', kid: 'nope' }, { alg: 'HS256', typ: 'at+jwt', kid: 'k1', extra: true },
    { alg: 'HS512', typ: 'at+jwt' }, { alg: 'hs256', typ: 'at+jwt' }, { alg: 'none', typ: 'at+jwt' }, { alg: 'RS256', typ: 'at+jwt' },
    { alg: 'HS256', typ: 'at+jwt', kid: null }, { alg: 'HS256', typ: 'at+jwt', kid: 1 }, { alg: 'HS256', typ: 'at+jwt', jku: 'https://evil' },
  ]) {
    add('odd header', raw(b64(header), payload));
    add('odd header, key B', raw(b64(header), payload, SECRET_B));
  }
  for (const text of ['{"alg":"HS256","typ":"at+jwt"} ', ' {"alg":"HS256","typ":"at+jwt"}', '{"alg": "HS256","typ":"at+jwt"}', '{"alg":"HS256","typ":"at+jwt","alg":"HS256"}',
    '{"alg":"HS256","typ":"at+jwt","typ":"JWT"}', '\uFEFF{"alg":"HS256","typ":"at+jwt"}', '{"alg":"HS\\u0032\\u0035\\u0036","typ":"at+jwt"}', 'null', '[]', '"x"', '{']) {
    add('header spelling', raw(b64(text), payload));
  }
  // Payload spellings, all correctly signed: jose's decoder is what counts.
  const claimsJson = JSON.stringify({ ...base(), iss: ISS, aud: 'api' });
  const h = encodedHeader(undefined);
  const p = b64(claimsJson);
  const variants = [
    `${p}=`, `${p}==`, ` ${p}`, `${p} `, `${p.slice(0, 10)} ${p.slice(10)}`, `${p.slice(0, 10)}\n${p.slice(10)}`,
    p.replace(/-/g, '+').replace(/_/g, '/'), `${p}A`, `${p}AA`, b64(`\uFEFF${claimsJson}`), b64(` ${claimsJson} `),
    Buffer.concat([Buffer.from(claimsJson.slice(0, -1)), Buffer.from(',"bad":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]).toString('base64url'),
    b64(claimsJson.replace(/}$/, ',"r":"\uFFFD"}')), b64(claimsJson.replace(/}$/, ',"__proto__":{"admin":true}}')),
    b64(claimsJson.replace(/}$/, ',"sub":"dup"}')), b64('[]'), b64('null'), b64('42'), b64('"s"'), b64(''), '', b64('{}'),
    b64(claimsJson.replace(/}$/, `,"big":"${'x'.repeat(6000)}"}`)),
  ];
  for (const v of variants) add('payload spelling', raw(h, v));
  // Non-canonical trailing bits in the payload (signed as such) and in the signature.
  for (let i = 0; i < 20; i++) {
    const json = JSON.stringify({ ...base(), iss: ISS, aud: 'api', pad: 'x'.repeat(i) });
    const enc = b64(json);
    if (enc.length % 4 !== 0) {
      const last = enc[enc.length - 1]!;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const bumped = alphabet[(alphabet.indexOf(last) + 1) % 64]!;
      add('non-canonical payload', raw(h, enc.slice(0, -1) + bumped));
    }
  }
  // Mutations of valid tokens: one character, truncation, extension, segments swapped.
  const good = await Promise.all(Array.from({ length: 40 }, (_, i) => sign({ ...base(), iss: ISS, aud: 'api', n: i }, headers[0])));
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= +/';
  for (let i = 0; i < 1200; i++) {
    const t = r.pick(good);
    const at = r.int(t.length);
    add('one character changed', t.slice(0, at) + r.pick([...alphabet]) + t.slice(at + 1));
  }
  for (let i = 0; i < 200; i++) {
    const t = r.pick(good);
    const at = r.int(t.length);
    add(r.next() < 0.5 ? 'truncated' : 'character inserted', r.next() < 0.5 ? t.slice(0, at) : t.slice(0, at) + r.pick([...alphabet]) + t.slice(at));
  }
  for (const t of good.slice(0, 10)) {
    const [a, b, c] = t.split('.') as [string, string, string];
    add('shape', `${a}.${b}`); add('shape', `${a}.${b}.${c}.${c}`); add('shape', `${a}..${c}`); add('shape', `.${b}.${c}`);
    add('shape', `${t}.`); add('shape', ` ${t}`); add('shape', `${t}\n`); add('shape', `${b}.${a}.${c}`);
    // The 2 spare bits of the signature's last character: same MAC, other spelling.
    const alt = c.slice(0, -1) + String.fromCharCode(c.charCodeAt(c.length - 1) + 1);
    add('non-canonical signature', `${a}.${b}.${alt}`);
  }
  // Wrong keys, and a valid token as the whole string of something larger.
  for (let i = 0; i < 100; i++) add('wrong key', await sign({ ...base(), iss: ISS, aud: 'api', n: i }, headers[0], randomBytes(32).toString('hex')));
  add('huge', raw(h, b64({ ...base(), iss: ISS, aud: 'api', big: 'x'.repeat(10_000) })));
  add('huge, under the limit', raw(h, b64({ ...base(), iss: ISS, aud: 'api', big: 'x'.repeat(5_500) })));
  add('jose-made', big + '.' + createHmac('sha256', SECRET_A).update(big).digest('base64url'));
  return out;
}

describe('HS256 fast path (differential against jose)', () => {
  it('accepts and refuses exactly what jose does, with the same code', async function () {
    this.timeout(120_000);
    let compared = 0;
    let acceptedByFastPath = 0;
    let accepted = 0;
    const kinds = new Map<string, string>();
    for (let seed = 1; seed <= 2; seed++) {
      const now = Math.floor(Date.now() / 1000);
      const tokens = await generate(seed, now);
      for (const s of SETUPS) {
        for (const [kind, token] of tokens) {
          for (let attempt = 0; ; attempt++) {
            const before = Math.floor(Date.now() / 1000);
            const count = fastAccepted(s.fast);
            const fast = await outcome(s.fast, token, s.rules);
            // Counted on the ring's own fast path: a ring that skips it accepts nothing here.
            const tookFastPath = fastAccepted(s.fast) > count;
            const reference = await outcome(s.jose, token, s.rules);
            // A second boundary between the two verdicts can flip exp/nbf edge cases: look again.
            if (Math.floor(Date.now() / 1000) !== before && attempt < 3) continue;
            const where = `${s.name} / ${kind} (seed ${seed}): ${token.slice(0, 120)}`;
            expect(fast, where).to.deep.equal(reference);
            if (tookFastPath) {
              acceptedByFastPath++;
              // Only our own jti/sub rule (checked after either path) may refuse what the fast path accepts.
              const fastOnly = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
              const ids = typeof fastOnly.jti === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(fastOnly.jti) && typeof fastOnly.sub === 'string' && fastOnly.sub !== '';
              expect(reference.ok || (!ids && reference.code === 'ERR_TOKEN_CLAIMS'), `fast path accepted what jose refuses (${JSON.stringify(reference)}): ${where} … ${token.slice(-80)}`).to.equal(true);
            }
            if (reference.ok) accepted++;
            kinds.set(`${kind} → ${reference.ok ? 'ok' : reference.code}`, kind);
            compared++;
            break;
          }
        }
      }
    }
    expect(compared).to.be.at.least(6000);
    // The reference is jose alone.
    for (const s of SETUPS) expect(s.jose.hs256, s.name).to.equal(undefined);
    // The test proves something only if both verdicts occur, and the fast path did the accepting.
    expect(accepted).to.be.at.least(300);
    expect(acceptedByFastPath).to.be.at.least(accepted * 0.9);
    for (const outcome of ['ERR_TOKEN_MALFORMED', 'ERR_TOKEN_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_TOKEN_CLAIMS']) {
      expect([...kinds.keys()].some((k) => k.endsWith(outcome)), outcome).to.equal(true);
    }
  });

  it('signs byte for byte what jose signs, and jose verifies it', async () => {
    const r = rng(7);
    for (const kid of [undefined, 'k1', 'ключ "quoted"']) {
      const key = namedKey('key', SECRET_A, undefined, kid, true);
      const hs = new Hs256({ kid, secret: key.sign! }, [], key.verify);
      for (let i = 0; i < 300; i++) {
        const payload: Record<string, unknown> = { sub: `u${r.int(1e6)}`, jti: randomBytes(16).toString('base64url'), iat: 1_700_000_000 + i, exp: 1_800_000_000 + r.int(1e6) };
        if (r.next() < 0.5) payload.scope = 'read write';
        if (r.next() < 0.3) payload.extra = { list: [1, 'two', null, true], text: 'é\u2028"\\' };
        if (r.next() < 0.3) payload.aud = ['a', 'b'];
        const header = kid === undefined ? { alg: 'HS256', typ: 'at+jwt' } : { alg: 'HS256', typ: 'at+jwt', kid };
        const expected = await new SignJWT(payload).setProtectedHeader(header).sign(bytes(SECRET_A));
        const mine = hs.sign(payload);
        expect(mine).to.equal(expected);
        const { payload: back } = await jwtVerify(mine, bytes(SECRET_A), { algorithms: ['HS256'], typ: 'at+jwt', currentDate: new Date(1_700_000_000_000) });
        expect(back).to.deep.equal(payload);
      }
    }
  });

  it('is used by KeyRing only for HS256 keys', async () => {
    const es = namedKey('key', { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI' }, undefined, undefined, true);
    const ring = new KeyRing(es, []);
    const now = Math.floor(Date.now() / 1000);
    const token = await ring.sign({ sub: 'a', jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 60 });
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).to.deep.equal({ alg: 'ES256', typ: 'at+jwt' });
    expect((await ring.verify(token, { maxTokenLength: 8192 })).sub).to.equal('a');
    // An HS256 token signed with the EC key's public x as a secret must not pass (alg fixed by the key).
    const forged = raw(b64({ alg: 'HS256', typ: 'at+jwt' }), b64({ sub: 'a', jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 60 }), 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU');
    let code: string | undefined;
    try { await ring.verify(forged, { maxTokenLength: 8192 }); } catch (err) { code = (err as TokenError).code; }
    expect(code).to.equal('ERR_TOKEN_SIGNATURE');
  });
});
