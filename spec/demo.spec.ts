import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type express from 'express';
import request from 'supertest';
import { Redis } from 'ioredis';
import { createDemoApp } from '../demo/app.js';
import { demoRedis, startPrivateRedis } from '../demo/redis.js';
import { TicketBook, TICKET_TTL_MS } from '../demo/tickets.js';
import { TokenLifecycle, TokenStore, type TokenEvent } from '../lib/index.js';
import { RedisServer, testPrefix } from './support/redis.js';
import { nextEvent, waitFor } from './support/wait.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface SseMessage {
  event: string;
  id: string;
  data: string;
}

/** A real `GET /events` over node:http, parsed as it arrives. */
class SseClient {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  response: IncomingMessage | undefined;
  /** The server ended the response. */
  ended = false;
  private buffer = '';
  private readonly req;

  constructor(url: string) {
    this.req = get(url, (res) => {
      this.response = res;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => this.feed(chunk));
      res.on('end', () => { this.ended = true; });
      res.on('error', () => {});
    });
    this.req.on('error', () => {});
  }

  /** Lifecycle events received, parsed. */
  events(type?: string): TokenEvent[] {
    return this.messages.filter((m) => type === undefined || m.event === type).map((m) => JSON.parse(m.data) as TokenEvent);
  }

  close(): void {
    this.req.destroy();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const message: SseMessage = { event: 'message', id: '', data: '' };
      let isMessage = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') message.event = value;
        else if (field === 'id') message.id = value;
        else if (field === 'data') {
          message.data += (message.data ? '\n' : '') + value;
          isMessage = true;
        }
      }
      if (isMessage) this.messages.push(message);
    }
  }
}

function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1');
    server.once('error', reject);
    server.once('listening', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

describe('demo app', () => {
  let redisServer: RedisServer;
  let store: TokenStore;
  let lifecycle: TokenLifecycle;
  let app: express.Express;
  let http: Server | undefined;
  let baseUrl: string;
  const lifecycleErrors: Error[] = [];
  const sse: SseClient[] = [];

  before(async () => {
    redisServer = await RedisServer.start();
    const redis = redisServer.client();
    const prefix = testPrefix();
    store = new TokenStore({ redis, key: randomBytes(32), issuer: 'demo-test', prefix });
    lifecycle = new TokenLifecycle({ redis, prefix });
    lifecycle.on('error', (err) => lifecycleErrors.push(err));
    await lifecycle.start();
    app = createDemoApp({ store, lifecycle, heartbeatMs: 100 });
    ({ server: http, url: baseUrl } = await listen(app));
  });

  after(async () => {
    for (const client of sse) client.close();
    await closeServer(http);
    await lifecycle?.stop();
    await redisServer?.stop();
  });

  async function ticketFor(token: string): Promise<string> {
    const res = await request(app).post('/session/ticket').auth(token, { type: 'bearer' }).expect(201).expect('cache-control', 'no-store');
    expect(res.body).to.have.all.keys('ticket', 'expiresAt');
    return res.body.ticket;
  }

  /** `GET /events` with a fresh ticket bought with `token`, once the server has opened it. */
  async function openEvents(token: string): Promise<SseClient> {
    const client = new SseClient(`${baseUrl}/events?ticket=${encodeURIComponent(await ticketFor(token))}`);
    sse.push(client);
    await waitFor('the stream to open', () => client.messages.find((m) => m.event === 'session'));
    return client;
  }

  async function login(username: string, ttl?: number): Promise<{ token: string; jti: string; sub: string; expiresAt: number }> {
    const res = await request(app).post('/login').send(ttl === undefined ? { username } : { username, ttl }).expect(201);
    return res.body;
  }

  describe('GET /', () => {
    it('serves the page and its script and styles', async () => {
      const page = await request(app).get('/').expect(200).expect('content-type', /text\/html/);
      expect(page.text).to.include('<title>redis-token-lifecycle demo</title>');
      expect(page.headers['content-security-policy']).to.match(/default-src 'self'/);
      expect(page.headers['referrer-policy']).to.equal('no-referrer');
      await request(app).get('/app.js').expect(200).expect('content-type', /javascript/);
      await request(app).get('/style.css').expect(200).expect('content-type', /text\/css/);
    });

    it('has a favicon: linked from the page, and /favicon.ico answers too', async () => {
      const page = await request(app).get('/').expect(200);
      expect(page.text).to.match(/<link rel="icon" href="favicon.svg" type="image\/svg\+xml">/);
      const svg = await request(app).get('/favicon.svg').expect(200).expect('content-type', /^image\/svg\+xml/);
      expect(String(svg.body)).to.match(/^<svg /);
      const ico = await request(app).get('/favicon.ico').expect(200).expect('content-type', /^image\/svg\+xml/);
      expect(String(ico.body)).to.equal(String(svg.body));
    });

    it('answers unknown routes 404 in JSON', async () => {
      const res = await request(app).get('/nope').expect(404).expect('content-type', /json/);
      expect(res.body.error).to.equal('not_found');
    });
  });

  describe('POST /login', () => {
    it('issues a live token with scope "read write"', async () => {
      const before = Date.now();
      const res = await request(app).post('/login').send({ username: 'alice', ttl: 60 }).expect(201).expect('content-type', /json/);
      expect(res.body).to.have.all.keys('token', 'jti', 'sub', 'expiresAt');
      expect(res.body.sub).to.equal('alice');
      expect(res.body.expiresAt).to.be.within(before + 59_000, Date.now() + 60_000); // exp - iat is the ttl: it lives ttl - 1 to ttl seconds
      const verified = await store.verify(res.body.token);
      expect(verified.jti).to.equal(res.body.jti);
      expect(verified.claims.scope).to.equal('read write');
    });

    it('uses the store default ttl when none is given', async () => {
      const { expiresAt } = await login('alice');
      expect(expiresAt).to.be.greaterThan(Date.now() + 800_000);
    });

    const bad: Array<[string, unknown]> = [
      ['no username', {}],
      ['a numeric username', { username: 42 }],
      ['an empty username', { username: '' }],
      ['a username with spaces', { username: 'a b' }],
      ['a username too long', { username: 'a'.repeat(65) }],
      ['ttl 0', { username: 'alice', ttl: 0 }],
      ['a fractional ttl', { username: 'alice', ttl: 1.5 }],
      ['a string ttl', { username: 'alice', ttl: '10' }],
      ['a ttl over a day', { username: 'alice', ttl: 86_401 }],
      ['an array body', [{ username: 'alice' }]],
    ];
    for (const [what, body] of bad) {
      it(`answers 400 (JSON) to ${what}`, async () => {
        const res = await request(app).post('/login').send(body as object).expect(400).expect('content-type', /json/);
        expect(res.body.error).to.equal('invalid_request');
        expect(res.body.error_description).to.be.a('string').and.not.empty;
      });
    }

    it('answers 400, not 500, to malformed JSON', async () => {
      const res = await request(app).post('/login').set('Content-Type', 'application/json').send('{"username": "ali')
        .expect(400).expect('content-type', /json/);
      expect(res.body.error).to.equal('invalid_request');
    });

    it('answers 400 to a body that is not JSON', async () => {
      await request(app).post('/login').set('Content-Type', 'text/plain').send('username=alice').expect(400);
    });

    it('answers 413, not 500, to a huge body', async () => {
      const res = await request(app).post('/login').send({ username: 'alice', pad: 'x'.repeat(10_000) }).expect(413).expect('content-type', /json/);
      expect(res.body.error).to.equal('invalid_request');
    });
  });

  describe('GET /me', () => {
    it('answers req.auth without the token string', async () => {
      const t = await login('bob', 60);
      const res = await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(200);
      expect(res.body).to.have.all.keys('jti', 'sub', 'expiresAt', 'claims');
      expect(res.body).to.include({ sub: 'bob', jti: t.jti, expiresAt: t.expiresAt });
      expect(res.body.claims.scope).to.equal('read write');
      expect(JSON.stringify(res.body)).not.to.include(t.token);
    });

    it('answers 401 with a bare Bearer challenge without credentials', async () => {
      const res = await request(app).get('/me').expect(401).expect('content-type', /json/);
      expect(res.headers['www-authenticate']).to.match(/^Bearer realm="[^"]+"$/);
      expect(res.body.error).to.equal('unauthorized');
    });

    it('answers 401 invalid_token to a garbage token', async () => {
      const res = await request(app).get('/me').set('Authorization', 'Bearer not.a.token').expect(401);
      expect(res.headers['www-authenticate']).to.match(/^Bearer realm="[^"]+", error="invalid_token"/);
      expect(res.body.error).to.equal('invalid_token');
    });

    it('answers 401 invalid_token to a token signed with another key', async () => {
      const other = new TokenStore({ redis: redisServer.client(), key: randomBytes(32), issuer: 'demo-test', prefix: testPrefix() });
      const { token } = await other.issue('mallory', { scope: 'read' });
      await request(app).get('/me').auth(token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
    });

    it('answers 400 invalid_request to a malformed Authorization header', async () => {
      await request(app).get('/me').set('Authorization', 'Bearer a b').expect(400).expect('www-authenticate', /error="invalid_request"/);
    });

    it('answers 403 insufficient_scope to a token without "read"', async () => {
      const { token } = await store.issue('carol', { scope: 'write', ttl: 60 });
      const res = await request(app).get('/me').auth(token, { type: 'bearer' }).expect(403);
      expect(res.headers['www-authenticate']).to.match(/error="insufficient_scope"/).and.match(/scope="read"/);
    });
  });

  describe('GET /tokens, POST /logout, POST /logout-all', () => {
    it('lists the caller\'s live tokens, marking the one presented', async () => {
      const user = `dave-${randomBytes(3).toString('hex')}`;
      const a = await login(user, 60);
      const b = await login(user, 120);
      await login('someone-else', 60);
      const res = await request(app).get('/tokens').auth(b.token, { type: 'bearer' }).expect(200);
      expect(res.body.sub).to.equal(user);
      expect(res.body.tokens.map((t: { jti: string }) => t.jti)).to.deep.equal([a.jti, b.jti]);
      expect(res.body.tokens.map((t: { current: boolean }) => t.current)).to.deep.equal([false, true]);
      await request(app).get('/tokens').expect(401);
    });

    it('logout revokes the presented token only', async () => {
      const user = `erin-${randomBytes(3).toString('hex')}`;
      const t = await login(user, 60);
      const other = await login(user, 60);
      const res = await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      expect(res.body).to.deep.equal({ revoked: true });
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
      await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(401);
      await request(app).get('/me').auth(other.token, { type: 'bearer' }).expect(200);
    });

    it('logout-all revokes every token of the caller', async () => {
      const user = `frank-${randomBytes(3).toString('hex')}`;
      const a = await login(user, 60);
      const b = await login(user, 60);
      const bystander = await login('grace', 60);
      const res = await request(app).post('/logout-all').auth(a.token, { type: 'bearer' }).expect(200);
      expect(res.body).to.deep.equal({ revoked: 2 });
      await request(app).get('/me').auth(a.token, { type: 'bearer' }).expect(401);
      await request(app).get('/me').auth(b.token, { type: 'bearer' }).expect(401);
      await request(app).get('/me').auth(bystander.token, { type: 'bearer' }).expect(200);
    });
  });

  describe('POST /session/ticket', () => {
    it('answers 401 without a bearer token, or with a dead one', async () => {
      const res = await request(app).post('/session/ticket').expect(401);
      expect(res.headers['www-authenticate']).to.match(/^Bearer realm="[^"]+"$/);
      const t = await login('olga', 60);
      await store.revoke(t.token);
      await request(app).post('/session/ticket').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
    });

    it('gives a random ticket, valid for 30 s, that is not the token', async () => {
      const t = await login('olga', 60);
      const before = Date.now();
      const res = await request(app).post('/session/ticket').auth(t.token, { type: 'bearer' }).expect(201);
      expect(res.body.ticket).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(res.body.expiresAt).to.be.within(before + TICKET_TTL_MS, Date.now() + TICKET_TTL_MS);
      expect(t.token).not.to.include(res.body.ticket);
      expect(await ticketFor(t.token)).not.to.equal(res.body.ticket);
    });
  });

  describe('GET /events', () => {
    it('refuses a request without a ticket, with a bearer token in the URL, or with the token as the ticket', async () => {
      const t = await login('uma', 60);
      for (const path of ['/events', `/events?token=${encodeURIComponent(t.token)}`, `/events?ticket=${encodeURIComponent(t.token)}`, '/events?ticket=nope']) {
        const res = await request(app).get(path).expect(401).expect('content-type', /json/).expect('cache-control', 'no-store');
        expect(res.body.error, path).to.equal('invalid_ticket');
      }
      // Not even with the token in a header: the stream is opened by ticket only.
      await request(app).get('/events').auth(t.token, { type: 'bearer' }).expect(401);
      // The old query-token endpoint is gone.
      await request(app).get('/session').query({ token: t.token }).expect(404);
    });

    it('a ticket opens one stream only', async () => {
      const t = await login('vera', 60);
      const ticket = await ticketFor(t.token);
      const first = new SseClient(`${baseUrl}/events?ticket=${ticket}`);
      sse.push(first);
      await waitFor('the stream to open', () => first.messages.find((m) => m.event === 'session'));
      const again = await request(app).get('/events').query({ ticket }).expect(401);
      expect(again.body.error).to.equal('invalid_ticket');
    });

    it('a ticket not redeemed within 30 s is refused', async () => {
      let now = Date.now();
      const tickets = new TicketBook(TICKET_TTL_MS, () => now);
      const clocked = createDemoApp({ store, lifecycle, heartbeatMs: 100, tickets });
      const t = await login('wanda', 60);
      const { body } = await request(clocked).post('/session/ticket').auth(t.token, { type: 'bearer' }).expect(201);
      expect(body.expiresAt).to.equal(now + TICKET_TTL_MS);
      now += TICKET_TTL_MS;
      await request(clocked).get('/events').query({ ticket: body.ticket }).expect(401);
      expect(tickets.size).to.equal(0);
    });

    it('a ticket whose token died before it was redeemed → 401 invalid_token', async () => {
      const t = await login('xena', 60);
      const ticket = await ticketFor(t.token);
      await store.revoke(t.token);
      const res = await request(app).get('/events').query({ ticket }).expect(401);
      expect(res.body.error).to.equal('invalid_token');
    });

    it('streams the holder\'s own issued and revoked events as SSE, opening with the session', async () => {
      const user = `heidi-${randomBytes(3).toString('hex')}`;
      const first = await login(user, 60);
      const events = await openEvents(first.token);
      expect(events.response?.statusCode).to.equal(200);
      expect(events.response?.headers['content-type']).to.match(/^text\/event-stream/);
      expect(events.response?.headers['cache-control']).to.match(/no-cache/).and.match(/no-store/);
      expect(JSON.parse(events.messages[0]!.data)).to.deep.equal({ jti: first.jti, sub: user, expiresAt: first.expiresAt });
      // Its own token's issued event came before the stream opened: it is sent from the recent ones.
      await waitFor('the first token\'s issued event', () => events.events('issued').find((e) => e.jti === first.jti));

      const t = await login(user, 60);
      const issued = await waitFor('the issued event', () => events.messages.find((m) => m.event === 'issued' && JSON.parse(m.data).jti === t.jti));
      await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      const revoked = await waitFor('the revoked event', () => events.messages.find((m) => m.event === 'revoked' && JSON.parse(m.data).jti === t.jti));

      const issuedEvent = JSON.parse(issued.data) as TokenEvent;
      expect(issuedEvent).to.include({ type: 'issued', sub: user, jti: t.jti });
      expect(issued.id).to.equal(issuedEvent.id).and.match(/^\d+:\d+-\d+$/);
      const revokedEvent = JSON.parse(revoked.data) as TokenEvent;
      expect(revokedEvent).to.include({ type: 'revoked', reason: 'revoke', sub: user, jti: t.jti });
      expect(revoked.id).to.equal(revokedEvent.id);
      expect(JSON.stringify(events.messages)).not.to.include(t.token);
      expect(events.ended).to.equal(false); // another token of the user: this stream goes on
    });

    it('never shows another user\'s events', async () => {
      const alice = await login(`alice-${randomBytes(3).toString('hex')}`, 60);
      const events = await openEvents(alice.token);
      // The stream's listener was registered first, so it has seen (and dropped) bob's
      // events by the time these resolve.
      const bobIssued = nextEvent<TokenEvent>(lifecycle, 'issued', (e) => e.sub.startsWith('bob-'));
      const bob = await login(`bob-${randomBytes(3).toString('hex')}`, 60);
      await bobIssued;
      const bobRevoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === bob.jti);
      await store.revoke(bob.token);
      await bobRevoked;
      // An event of alice's, written to the same socket after them, arrives after them.
      const later = await login(alice.sub, 60);
      await waitFor('alice\'s next event', () => events.events('issued').find((e) => e.jti === later.jti));
      expect([...new Set(events.events().map((e) => e.sub))]).to.deep.equal([alice.sub]);
      expect(JSON.stringify(events.messages)).not.to.include(bob.jti);
    });

    it('sends a heartbeat comment while idle', async () => {
      const t = await login('hank', 60);
      const events = await openEvents(t.token);
      await waitFor('a heartbeat', () => events.comments.includes('heartbeat'), 3000);
    });

    it('is closed by the server with the revoked event then a final end event when its token is revoked', async () => {
      const baseline = lifecycle.listenerCount('revoked');
      const t = await login('paul', 60);
      const session = await openEvents(t.token);
      // Another token of the same user dying does not end this stream.
      const other = await login('paul', 60);
      // Registered after the stream's listener, so it runs after it for the same event.
      const otherRevoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === other.jti);
      await store.revoke(other.token);
      await otherRevoked;
      await waitFor('the other revocation on the stream', () => session.events('revoked').find((e) => e.jti === other.jti));
      expect(session.ended).to.equal(false);

      await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      await waitFor('the server to end the stream', () => session.ended, 5000);
      const [before, last] = session.messages.slice(-2);
      expect(before!.event).to.equal('revoked');
      expect(JSON.parse(before!.data)).to.include({ jti: t.jti });
      expect(last!.event).to.equal('end');
      expect(JSON.parse(last!.data)).to.include({ reason: 'revoked' });
      expect(session.messages.filter((m) => m.event === 'end')).to.have.length(1);
      await waitFor('the stream\'s listeners to be removed', () => lifecycle.listenerCount('revoked') === baseline);
    });

    it('is closed with reason "expired" when a 1-second token expires', async () => {
      const t = await login('quinn', 1);
      const session = await openEvents(t.token);
      await waitFor('the server to end the stream', () => session.ended, 6000);
      const last = session.messages.at(-1)!;
      expect(last.event).to.equal('end');
      expect(JSON.parse(last.data)).to.deep.equal({ reason: 'expired' });
      expect(session.events('expired').map((e) => e.jti)).to.deep.equal([t.jti]);
      expect(Date.now()).to.be.at.least(t.expiresAt);
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
    });

    it('stops listening to the lifecycle when the client disconnects', async () => {
      const baseline = lifecycle.listenerCount('issued');
      const t = await login('rita', 60);
      const events = await openEvents(t.token);
      expect(lifecycle.listenerCount('issued')).to.equal(baseline + 1);
      expect(lifecycle.listenerCount('expired')).to.be.at.least(1);
      events.close();
      await waitFor('the listeners to be removed', () => lifecycle.listenerCount('issued') === baseline);
    });
  });

  describe('POST /tokens/:jti/revoke', () => {
    it('revokes one of the caller\'s own tokens by jti', async () => {
      const user = `kate-${randomBytes(3).toString('hex')}`;
      const a = await login(user, 60);
      const b = await login(user, 60);
      const res = await request(app).post(`/tokens/${b.jti}/revoke`).auth(a.token, { type: 'bearer' }).expect(200).expect('content-type', /json/);
      expect(res.body).to.deep.equal({ revoked: true });
      await request(app).get('/me').auth(b.token, { type: 'bearer' }).expect(401);
      await request(app).get('/me').auth(a.token, { type: 'bearer' }).expect(200);
      // Already gone: no longer among the caller's tokens.
      await request(app).post(`/tokens/${b.jti}/revoke`).auth(a.token, { type: 'bearer' }).expect(404);
    });

    it('answers 404 for another user\'s token and leaves it alive', async () => {
      const mine = await login(`leo-${randomBytes(3).toString('hex')}`, 60);
      const theirs = await login(`mia-${randomBytes(3).toString('hex')}`, 60);
      const res = await request(app).post(`/tokens/${theirs.jti}/revoke`).auth(mine.token, { type: 'bearer' }).expect(404).expect('content-type', /json/);
      expect(res.body.error).to.equal('not_found');
      await request(app).get('/me').auth(theirs.token, { type: 'bearer' }).expect(200);
    });

    it('answers 401 without a bearer token', async () => {
      const t = await login('nina', 60);
      await request(app).post(`/tokens/${t.jti}/revoke`).expect(401);
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(200);
    });
  });

  describe('standard endpoints', () => {
    it('introspects a live token, revokes it through RFC 7009, then introspects it as inactive', async () => {
      const { token, jti } = await login('ida');
      const live = await request(app).post('/oauth/introspect').type('form').send({ token }).expect(200);
      expect(live.body).to.include({ active: true, sub: 'ida', jti, scope: 'read write', token_type: 'Bearer' });
      await request(app).post('/oauth/revoke').type('form').send({ token }).expect(200);
      const gone = await request(app).post('/oauth/introspect').type('form').send({ token }).expect(200);
      expect(gone.body).to.deep.equal({ active: false });
      await request(app).post('/oauth/introspect').send({ token }).expect(400); // JSON, not a form
    });

    it('answers another method than the endpoint\'s 405 with Allow, not 404', async () => {
      for (const path of ['/oauth/introspect', '/oauth/revoke']) {
        for (const method of ['get', 'put', 'delete'] as const) {
          const res = await request(app)[method](path).expect(405).expect('allow', 'POST');
          expect(res.body, `${method} ${path}`).to.deep.equal({ error: 'method_not_allowed' });
        }
      }
      await request(app).post('/.well-known/jwks.json').expect(405).expect('allow', 'GET, HEAD');
    });

    it('publishes an empty JWK Set for its HMAC secret', async () => {
      const res = await request(app).get('/.well-known/jwks.json').expect(200).expect('cache-control', /max-age=300/);
      expect(res.body).to.deep.equal({ keys: [] });
    });
  });

  describe('with Redis down', () => {
    let down: RedisServer;

    before(async () => {
      down = await RedisServer.start();
    });

    after(async () => {
      await down?.stop();
    });

    it('answers 503 to /me and /login, never 401 or 500', async () => {
      const prefix = testPrefix();
      const downStore = new TokenStore({ redis: down.client(), key: randomBytes(32), issuer: 'demo-test', prefix, timeout: 500 });
      const downApp = createDemoApp({ store: downStore, lifecycle: new TokenLifecycle({ redis: down.client(), prefix }) });
      const { body: t } = await request(downApp).post('/login').send({ username: 'judy', ttl: 60 }).expect(201);
      await request(downApp).get('/me').auth(t.token, { type: 'bearer' }).expect(200);

      await down.kill();
      const res = await request(downApp).get('/me').auth(t.token, { type: 'bearer' }).expect(503).expect('retry-after', /\d+/);
      expect(res.headers['www-authenticate']).to.equal(undefined);
      expect(res.body.error).to.equal('service_unavailable');
      const login503 = await request(downApp).post('/login').send({ username: 'judy' }).expect(503).expect('content-type', /json/);
      expect(login503.body.error).to.equal('service_unavailable');
    });
  });
});

describe('demo/redis.ts', () => {
  let server: RedisServer;

  before(async () => {
    server = await RedisServer.start();
  });

  after(async () => {
    await server?.stop();
  });

  it('uses REDIS_URL when set, and close() leaves that Redis running', async () => {
    const chosen = await demoRedis({ REDIS_URL: server.url });
    try {
      expect(chosen.description).to.include(server.url);
      expect(await chosen.redis.ping()).to.equal('PONG');
    } finally {
      await chosen.close();
    }
    await waitFor('the client to be closed', () => chosen.redis.status === 'end', 2000);
    expect(await server.client().ping()).to.equal('PONG');
  });

  it('hides a password in REDIS_URL from the description', async () => {
    const chosen = await demoRedis({ REDIS_URL: `redis://:s3cret@127.0.0.1:${server.port}` });
    try {
      expect(chosen.description).not.to.include('s3cret');
    } finally {
      await chosen.close();
    }
  });

  it('starts a private redis-server, and close() stops it', async () => {
    const chosen = await startPrivateRedis();
    let port: number | undefined;
    try {
      expect(chosen.description).to.match(/private redis-server/);
      expect(await chosen.redis.ping()).to.equal('PONG');
      port = chosen.redis.options.port;
      expect(port).to.be.a('number').and.not.equal(6379);
    } finally {
      await chosen.close();
    }
    const probe = new Redis(port!, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      let refused: unknown;
      await probe.connect().catch((err: unknown) => { refused = err; });
      expect(refused, 'the private redis-server should be gone').to.be.instanceOf(Error);
    } finally {
      probe.disconnect();
    }
  });

  it('says how to install redis-server when it is missing', async () => {
    let error: unknown;
    await startPrivateRedis('redis-server-that-does-not-exist').catch((err: unknown) => { error = err; });
    expect(error).to.be.instanceOf(Error);
    const message = (error as Error).message;
    expect(message).to.include('sudo apt-get install redis-server');
    expect(message).to.include('brew install redis');
    expect(message).to.include('REDIS_URL');
  });
});

describe('npm run demo (demo/server.ts as a child process)', () => {
  let server: RedisServer;
  let child: ChildProcess | undefined;

  before(async () => {
    server = await RedisServer.start();
  });

  after(async () => {
    // The whole process group, in case the demo started anything of its own.
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await server?.stop();
  });

  it('serves the page, issues tokens, and exits 0 on SIGINT', async function () {
    this.timeout(40_000);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', REDIS_URL: server.url };
    delete env.TOKEN_SECRET;
    // What `npm run demo` runs: `node --import tsx demo/server.ts` (one process; the tsx
    // binary's signal relay to its own child sometimes ends with 130 instead of the demo's
    // exit code). In its own process group, so that SIGINT reaches it the way Ctrl-C does.
    const proc = spawn(process.execPath, ['--import', 'tsx', 'demo/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child = proc;
    let output = '';
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
    });

    const url = await waitFor('the "listening" line', () => {
      if (proc.exitCode !== null) throw new Error(`demo exited with ${proc.exitCode}: ${output}`);
      return /listening on (http:\/\/\S+)/.exec(output)?.[1];
    }, 25_000, 50);
    expect(output).to.include(`Redis: ${server.url}`);
    expect(output).to.match(/random 32-byte secret/);

    const page = await fetch(`${url}/`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/text\/html/);
    expect(await page.text()).to.include('<title>redis-token-lifecycle demo</title>');
    const login = await fetch(`${url}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'kim', ttl: 30 }) });
    expect(login.status).to.equal(201);
    const { token } = (await login.json()) as { token: string };
    const me = await fetch(`${url}/me`, { headers: { Authorization: `Bearer ${token}` } });
    expect(me.status).to.equal(200);
    // The demo's own lifecycle logs the event: it is subscribed to the same Redis.
    await waitFor('the demo to log the issued event', () => /issued\s+kim /.test(output));

    // GET /metrics: the library's instruments, through the demo's OpenTelemetry SDK and Prometheus exporter.
    const scrape = await fetch(`${url}/metrics`);
    expect(scrape.status).to.equal(200);
    expect(scrape.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await scrape.text();
    const sample = (name: string, labels: string) => Number(new RegExp(`^${name}\\{${labels}[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(sample('rtl_tokens_issued_total', 'client_id="redis-token-lifecycle-demo"'), text).to.be.at.least(1);
    expect(sample('rtl_tokens_verifications_total', 'outcome="ok"'), text).to.be.at.least(1);
    expect(sample('rtl_verify_duration_count', 'source="(?:cache|redis)"'), text).to.be.at.least(1);
    expect(sample('rtl_event_lag_count', 'type="issued"'), text).to.be.at.least(1);
    expect(text).to.match(/^rtl_event_lag_bucket\{type="issued",[^}]*le="\+Inf"\} [1-9]/m);
    expect(text, 'no subject in any label').to.not.include('"kim"');

    // An open event stream must not keep the demo from shutting down.
    const ticket = await fetch(`${url}/session/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    expect(ticket.status).to.equal(201);
    const events = new SseClient(`${url}/events?ticket=${((await ticket.json()) as { ticket: string }).ticket}`);
    try {
      await waitFor('the stream to open', () => events.comments.includes('connected'));
      process.kill(-proc.pid!, 'SIGINT');
      let deadline: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<never>((_, reject) => { deadline = setTimeout(() => reject(new Error(`demo did not exit within 10 s of SIGINT: ${output}`)), 10_000); }),
      ]).finally(() => clearTimeout(deadline));
      expect(result, output).to.deep.equal({ code: 0, signal: null });
      expect(output).to.match(/SIGINT: shutting down/);
    } finally {
      events.close();
    }
    // It stopped only what it started: the test's Redis is still up.
    expect(await server.client().ping()).to.equal('PONG');
  });
});
