import { expect } from 'chai';
import { extractBearer, MAX_AUTHORIZATION_LENGTH } from '../lib/http/bearer.js';
import { InvalidRequestError } from '../lib/http/errors.js';

function invalidRequest(header: unknown, realm?: string): InvalidRequestError {
  try {
    extractBearer(header as string, realm);
  } catch (err) {
    expect(err).to.be.instanceOf(InvalidRequestError);
    return err as InvalidRequestError;
  }
  expect.fail(`expected ${JSON.stringify(header)} to be rejected`);
}

describe('extractBearer', () => {
  describe('no bearer credentials → undefined', () => {
    for (const header of [undefined, '', '   ', 'Basic dXNlcjpwYXNz', 'Digest username="a"', 'Bearerabc', 'Token abc']) {
      it(`${JSON.stringify(header)}`, () => {
        expect(extractBearer(header)).to.equal(undefined);
      });
    }
  });

  describe('well formed → the token', () => {
    const cases: Array<[string, string]> = [
      ['Bearer abc.def.ghi', 'abc.def.ghi'],
      ['bearer abc', 'abc'],
      ['BEARER abc', 'abc'],
      ['bEaReR abc', 'abc'],
      ['Bearer   abc', 'abc'],
      ['  Bearer abc \t', 'abc'],
      ['Bearer AZaz09-._~+/', 'AZaz09-._~+/'],
      ['Bearer abc==', 'abc=='],
      ['Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl'],
    ];
    for (const [header, token] of cases) {
      it(`${JSON.stringify(header)}`, () => {
        expect(extractBearer(header)).to.equal(token);
      });
    }
  });

  describe('malformed Bearer → InvalidRequestError', () => {
    const cases = [
      'Bearer',
      'Bearer ',
      'bearer',
      'Bearer a b',
      'Bearer abc,def',
      'Bearer abc, Basic xyz',
      'Bearer =abc',
      'Bearer abc=def',
      'Bearer realm="api"',
      'Bearer abc!',
      'Bearer abc"',
      'Bearer a\\b',
      'Bearer abc\u00e9',
      'Bearer\tabc',
      'Bearer abc\r\nX-Injected: 1',
    ];
    for (const header of cases) {
      it(`${JSON.stringify(header)}`, () => {
        const err = invalidRequest(header);
        expect(err.status).to.equal(400);
        expect(err.error).to.equal('invalid_request');
        expect(err.headers['WWW-Authenticate']).to.match(/^Bearer realm="api", error="invalid_request", error_description="[^"]+"$/);
      });
    }
  });

  it('rejects a value longer than 16 KiB, whatever its scheme', () => {
    expect(MAX_AUTHORIZATION_LENGTH).to.equal(16384);
    expect(invalidRequest(`Bearer ${'a'.repeat(MAX_AUTHORIZATION_LENGTH)}`).error).to.equal('invalid_request');
    expect(invalidRequest(`Basic ${'a'.repeat(MAX_AUTHORIZATION_LENGTH)}`).error).to.equal('invalid_request');
  });

  it('accepts a value of exactly 16 KiB', () => {
    const token = 'a'.repeat(MAX_AUTHORIZATION_LENGTH - 'Bearer '.length);
    expect(extractBearer(`Bearer ${token}`)).to.equal(token);
  });

  it('rejects a header list (several Authorization values)', () => {
    expect(invalidRequest(['Bearer a', 'Bearer b']).status).to.equal(400);
  });

  it('names the given realm in the challenge', () => {
    expect(invalidRequest('Bearer a b', 'accounts').headers['WWW-Authenticate']).to.match(/^Bearer realm="accounts", error="invalid_request"/);
  });
});
