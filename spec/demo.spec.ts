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
import { createDemoApp, DEMO_CLIENT_ID } from '../demo/app.js';
import { EventFeed } from '../demo/events.js';
import { demoRedis, startPrivateRedis } from '../demo/redis.js';
import { TicketBook, TICKET_TTL_MS } from '../demo/tickets.js';
import { TokenLifecycle, TokenStore, type SessionEvent, type TokenEvent } from '../lib/index.js';
import { RedisServer, testPrefix } from './support/redis.js';
import { nextEvent, untilTime, waitFor } from './support/wait.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The demo store's refresh grace window in these tests (the demo itself keeps the default). */
const GRACE_MS = 300;

/**
 * The events that announce a new access token: `issued` for a token of no session; for a
 * session's, the `session_started` or `refreshed` that carries it (the library may journal
 * an `issued` of its own for it too).
 */
const ANNOUNCING = ['issued', 'session_started', 'refreshed'];

/** The first event that announces a token matching `match`, from any of those. */
function nextAnnouncement(lifecycle: TokenLifecycle, match: (e: TokenEvent) => boolean): Promise<TokenEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('timed out after 5000 ms waiting for the token\'s announcement')), 5000);
    const listener = (event: TokenEvent) => {
      if (match(event)) done(undefined, event);
    };
    const done = (err?: Error, event?: TokenEvent) => {
      clearTimeout(timer);
      for (const name of ANNOUNCING) lifecycle.off(name as 'issued', listener);
      if (err) reject(err);
      else resolve(event!);
    };
    for (const name of ANNOUNCING) lifecycle.on(name as 'issued', listener);
  });
}

/** What POST /login answers. */
interface Login {
  token: string;
  jti: string;
  sub: string;
  expiresAt: number;
  sid: string;
  refresh_token: string;
}

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

  /** The message announcing the token `jti` (see ANNOUNCING), once received. */
  announcing(jti: string): SseMessage | undefined {
    return this.messages.find((m) => ANNOUNCING.includes(m.event) && (JSON.parse(m.data) as TokenEvent).jti === jti);
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
  let key: Buffer;
  let prefix: string;
  let lifecycle: TokenLifecycle;
  let feed: EventFeed;
  let app: express.Express;
  let http: Server | undefined;
  let baseUrl: string;
  const lifecycleErrors: Error[] = [];
  const sse: SseClient[] = [];

  before(async () => {
    redisServer = await RedisServer.start();
    const redis = redisServer.client();
    prefix = testPrefix();
    key = randomBytes(32);
    store = new TokenStore({ redis, key, issuer: 'demo-test', prefix, sessions: { refreshGrace: GRACE_MS } });
    lifecycle = new TokenLifecycle({ redis, prefix });
    lifecycle.on('error', (err) => lifecycleErrors.push(err));
    await lifecycle.start();
    feed = new EventFeed(lifecycle);
    app = createDemoApp({ store, lifecycle, heartbeatMs: 100, feed });
    ({ server: http, url: baseUrl } = await listen(app));
  });

  afterEach(() => {
    for (const client of sse.splice(0)) client.close();
  });

  after(async () => {
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

  async function login(username: string, ttl?: number, label?: string, userAgent = 'demo-spec/1.0'): Promise<Login> {
    const res = await request(app).post('/login').set('User-Agent', userAgent)
      .send({ username, ...(ttl === undefined ? {} : { ttl }), ...(label === undefined ? {} : { label }) }).expect(201);
    return res.body;
  }

  /** POST /oauth/token as the page does: a public client, no secret. */
  function refresh(refreshToken: string, extra: Record<string, string> = {}, on: express.Express = app): request.Test {
    return request(on).post('/oauth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });
  }

  /** A token of no session, as a store's `issue` makes it. */
  function plainToken(sub: string, ttl = 60): Promise<{ token: string; jti: string; sub: string; expiresAt: number }> {
    return store.issue(sub, { scope: 'read write', ttl });
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
    it('starts a session: a live token with scope "read write" and its sid, and a refresh token, never cached', async () => {
      const before = Date.now();
      const res = await request(app).post('/login').send({ username: 'alice', ttl: 60 }).expect(201).expect('content-type', /json/)
        .expect('cache-control', 'no-store');
      expect(res.body).to.have.all.keys('token', 'jti', 'sub', 'expiresAt', 'sid', 'refresh_token');
      expect(res.body.sub).to.equal('alice');
      expect(res.body.expiresAt).to.be.within(before + 59_000, Date.now() + 60_000); // exp - iat is the ttl: it lives ttl - 1 to ttl seconds
      const verified = await store.verify(res.body.token);
      expect(verified.jti).to.equal(res.body.jti);
      expect(verified.claims.scope).to.equal('read write');
      expect(verified.claims.sid).to.equal(res.body.sid);
      expect(verified.claims.client_id).to.equal(DEMO_CLIENT_ID);
      expect(res.body.refresh_token).to.be.a('string').and.not.equal(res.body.token);
    });

    it('records the device: the user agent, the address, and an optional label', async () => {
      const user = `dora-${randomBytes(3).toString('hex')}`;
      const s = await login(user, 60, 'Dora\'s phone · 📱', 'PhoneBrowser/7.1');
      const [session, ...more] = await store.sessions(user);
      expect(more).to.have.length(0);
      expect(session).to.deep.include({ sid: s.sid, sub: user, generation: 0, clientId: DEMO_CLIENT_ID, scope: 'read write' });
      expect(session!.device).to.have.all.keys('userAgent', 'ip', 'label');
      expect(session!.device).to.include({ userAgent: 'PhoneBrowser/7.1', label: 'Dora\'s phone · 📱' });
      expect(session!.device!.ip).to.match(/127\.0\.0\.1$/);
      // Forwarded headers are not trusted: the address is the socket's.
      await request(app).post('/login').set('X-Forwarded-For', '203.0.113.9').send({ username: user, ttl: 60 }).expect(201);
      expect((await store.sessions(user)).map((x) => x.device?.ip)).to.not.include('203.0.113.9');
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
      ['a numeric label', { username: 'alice', label: 5 }],
      ['an empty label', { username: 'alice', label: '' }],
      ['a label too long', { username: 'alice', label: 'x'.repeat(65) }],
      ['a label with a control character', { username: 'alice', label: 'a\u0007b' }],
      ['a label with a line break', { username: 'alice', label: 'a\nb' }],
      ['a label with a leading space', { username: 'alice', label: ' phone' }],
      ['a label with a lone surrogate', { username: 'alice', label: 'a\ud800b' }],
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

    it('logout ends the presented token\'s session (reason logout), and no other', async () => {
      const user = `erin-${randomBytes(3).toString('hex')}`;
      const t = await login(user, 60);
      const other = await login(user, 60);
      const ended = nextEvent<SessionEvent>(lifecycle, 'session_ended', (e) => e.sid === t.sid);
      const res = await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      expect(res.body).to.deep.equal({ revoked: true });
      expect((await ended).reason).to.equal('logout');
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
      await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(401);
      const refused = await refresh(t.refresh_token).expect(400);
      expect(refused.body.error).to.equal('invalid_grant');
      await request(app).get('/me').auth(other.token, { type: 'bearer' }).expect(200);
      expect((await store.sessions(user)).map((x) => x.sid)).to.deep.equal([other.sid]);
    });

    it('logout with a token of no session revokes that token only', async () => {
      const user = `erin-${randomBytes(3).toString('hex')}`;
      const t = await plainToken(user);
      const other = await plainToken(user);
      const res = await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      expect(res.body).to.deep.equal({ revoked: true });
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
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
      expect(JSON.parse(events.messages[0]!.data)).to.deep.equal({ jti: first.jti, sub: user, expiresAt: first.expiresAt, sid: first.sid });
      // The event announcing its own token came before the stream opened: it is sent from the recent ones.
      const started = await waitFor('the first token\'s announcement', () => events.announcing(first.jti));
      expect(JSON.parse(started.data)).to.include({ sid: first.sid });

      const t = await login(user, 60);
      const issued = await waitFor('the new session\'s announcement', () => events.announcing(t.jti));
      await request(app).post('/logout').auth(t.token, { type: 'bearer' }).expect(200);
      const revoked = await waitFor('the revoked event', () => events.messages.find((m) => m.event === 'revoked' && JSON.parse(m.data).jti === t.jti));

      const issuedEvent = JSON.parse(issued.data) as TokenEvent;
      expect(issuedEvent).to.include({ type: issued.event, sub: user, jti: t.jti });
      expect(issuedEvent.claims).to.include({ sid: t.sid, scope: 'read write', client_id: DEMO_CLIENT_ID });
      expect(issued.id).to.equal(issuedEvent.id).and.match(/^\d+:\d+-\d+$/);
      const revokedEvent = JSON.parse(revoked.data) as TokenEvent;
      // /logout ended t's session: its token is revoked with reason `session`, then the session ends.
      expect(revokedEvent).to.include({ type: 'revoked', reason: 'session', sub: user, jti: t.jti });
      const ended = await waitFor('the session_ended event', () => events.events('session_ended').find((e) => e.sid === t.sid));
      expect(ended).to.include({ reason: 'logout', sub: user });
      expect(revoked.id).to.equal(revokedEvent.id);
      expect(JSON.stringify(events.messages)).not.to.include(t.token);
      expect(events.ended).to.equal(false); // another session of the user: this stream goes on
    });

    it('never shows another user\'s events', async () => {
      const alice = await login(`alice-${randomBytes(3).toString('hex')}`, 60);
      const events = await openEvents(alice.token);
      // The stream's listener was registered first, so it has seen (and dropped) bob's
      // events by the time these resolve.
      const bobIssued = nextAnnouncement(lifecycle, (e) => e.sub.startsWith('bob-'));
      const bob = await login(`bob-${randomBytes(3).toString('hex')}`, 60);
      await bobIssued;
      const bobRevoked = nextEvent<TokenEvent>(lifecycle, 'revoked', (e) => e.jti === bob.jti);
      await store.revoke(bob.token);
      await bobRevoked;
      // An event of alice's, written to the same socket after them, arrives after them.
      const later = await login(alice.sub, 60);
      await waitFor('alice\'s next event', () => events.announcing(later.jti));
      expect([...new Set(events.events().map((e) => e.sub))]).to.deep.equal([alice.sub]);
      expect(JSON.stringify(events.messages)).not.to.include(bob.jti);
    });

    it('sends a heartbeat comment while idle', async () => {
      const t = await login('hank', 60);
      const events = await openEvents(t.token);
      await waitFor('a heartbeat', () => events.comments.includes('heartbeat'), 3000);
    });

    it('opened with a token of no session: closed by the server with the revoked event then a final end event when that token is revoked', async () => {
      const baseline = feed.streams;
      const t = await plainToken('paul');
      const session = await openEvents(t.token);
      expect(JSON.parse(session.messages[0]!.data)).to.deep.equal({ jti: t.jti, sub: 'paul', expiresAt: t.expiresAt });
      // Another token of the same user dying does not end this stream.
      const other = await plainToken('paul');
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
      await waitFor('the stream to unsubscribe', () => feed.streams === baseline);
    });

    it('opened with a token of no session: closed with reason "expired" when that 1-second token expires', async () => {
      const t = await plainToken('quinn', 1);
      const session = await openEvents(t.token);
      await waitFor('the server to end the stream', () => session.ended, 6000);
      const last = session.messages.at(-1)!;
      expect(last.event).to.equal('end');
      expect(JSON.parse(last.data)).to.deep.equal({ reason: 'expired' });
      expect(session.events('expired').map((e) => e.jti)).to.deep.equal([t.jti]);
      expect(Date.now()).to.be.at.least(t.expiresAt);
      await request(app).get('/me').auth(t.token, { type: 'bearer' }).expect(401).expect('www-authenticate', /error="invalid_token"/);
    });

    it('stops listening when the client disconnects; the lifecycle has one listener per event type however many streams are open', async () => {
      const baseline = feed.streams;
      const listeners = lifecycle.listenerCount('session_ended');
      const t = await login('rita', 60);
      const streams = [];
      for (let i = 0; i < 12; i++) streams.push(await openEvents(t.token));
      expect(feed.streams).to.equal(baseline + 12);
      expect(lifecycle.listenerCount('session_ended')).to.equal(listeners);
      for (const events of streams) events.close();
      await waitFor('the streams to unsubscribe', () => feed.streams === baseline);
    });
  });

  describe('sessions: POST /oauth/token, GET /sessions, log out other devices, theft', () => {
    const hex = () => randomBytes(3).toString('hex');
    const bearer = { type: 'bearer' } as const;
    const jtiOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;

    it('the theft flow: login, refresh R1 → A2 + R2, then R1 replayed after the grace window ends the session', async () => {
      // 1. Sign in.
      const s = await login(`tess-${hex()}`, 60);
      // 2. Refresh with R1 as the page does: a public client, its client_id, no secret.
      const rotatedAt = Date.now();
      const r = await refresh(s.refresh_token, { client_id: DEMO_CLIENT_ID }).expect(200).expect('content-type', /json/)
        .expect('cache-control', 'no-store').expect('pragma', 'no-cache');
      expect(r.body).to.have.all.keys('access_token', 'token_type', 'expires_in', 'refresh_token', 'scope');
      expect(r.body).to.include({ token_type: 'Bearer', scope: 'read write' });
      expect(r.body.expires_in).to.be.a('number').and.be.greaterThan(0);
      const { access_token: a2, refresh_token: r2 } = r.body as { access_token: string; refresh_token: string };
      expect(a2).to.not.equal(s.token);
      expect(r2).to.not.equal(s.refresh_token);
      // 3. A2 works, in the same session.
      const me = await request(app).get('/me').auth(a2, bearer).expect(200);
      expect(me.body.claims.sid).to.equal(s.sid);
      expect(me.body.sub).to.equal(s.sub);
      // 4. Past the grace window, R1 comes back: reuse, so theft.
      const reuse = nextEvent<SessionEvent>(lifecycle, 'reuse_detected', (e) => e.sid === s.sid);
      await untilTime(rotatedAt + GRACE_MS + 50);
      const replay = await refresh(s.refresh_token, { client_id: DEMO_CLIENT_ID }).expect(400).expect('cache-control', 'no-store');
      expect(replay.body.error).to.equal('invalid_grant');
      expect(replay.headers['www-authenticate']).to.equal(undefined);
      // 5. The whole session is over, at once: A2 is refused, with the RFC 6750 challenge, and so is R2.
      const dead = await request(app).get('/me').auth(a2, bearer).expect(401).expect('content-type', /json/);
      expect(dead.headers['www-authenticate']).to.match(/^Bearer realm="redis-token-lifecycle-demo", error="invalid_token"/);
      expect(dead.body.error).to.equal('invalid_token');
      await request(app).get('/me').auth(s.token, bearer).expect(401).expect('www-authenticate', /error="invalid_token"/);
      const refused = await refresh(r2, { client_id: DEMO_CLIENT_ID }).expect(400);
      expect(refused.body.error).to.equal('invalid_grant');
      expect((await reuse).sub).to.equal(s.sub);
      expect(await store.sessions(s.sub)).to.deep.equal([]);
    });

    it('a retry within the grace window gets the same pair (a lost answer, two tabs)', async () => {
      const patient = new TokenStore({ redis: redisServer.client(), key, issuer: 'demo-test', prefix, sessions: { refreshGrace: 10_000 } });
      const patientApp = createDemoApp({ store: patient, lifecycle, heartbeatMs: 100 });
      const { body: s } = await request(patientApp).post('/login').send({ username: `ulla-${hex()}`, ttl: 60 }).expect(201);
      const first = await refresh(s.refresh_token, {}, patientApp).expect(200);
      const again = await refresh(s.refresh_token, {}, patientApp).expect(200);
      expect(again.body).to.deep.equal(first.body);
      await request(patientApp).get('/me').auth(first.body.access_token, bearer).expect(200);
      await refresh(first.body.refresh_token, {}, patientApp).expect(200);
    });

    it('/oauth/token: the client_id is optional, another client\'s is refused and nothing rotates; RFC 6749 errors', async () => {
      const s = await login(`vic-${hex()}`, 60);
      const other = await refresh(s.refresh_token, { client_id: 'someone-else' }).expect(400);
      expect(other.body.error).to.equal('invalid_grant');
      const r = await refresh(s.refresh_token).expect(200); // still the live refresh token
      expect(r.body.token_type).to.equal('Bearer');
      const narrower = await refresh(r.body.refresh_token, { scope: 'read' }).expect(200);
      expect(narrower.body.scope).to.equal('read');
      expect((await refresh(narrower.body.refresh_token, { scope: 'read admin' }).expect(400)).body.error).to.equal('invalid_scope');
      const password = await request(app).post('/oauth/token').type('form').send({ grant_type: 'password', username: 'vic', password: 'x' }).expect(400);
      expect(password.body.error).to.equal('unsupported_grant_type');
      const json = await request(app).post('/oauth/token').send({ grant_type: 'refresh_token', refresh_token: s.refresh_token }).expect(400);
      expect(json.body.error).to.equal('invalid_request');
      expect((await refresh('not-a-refresh-token').expect(400)).body.error).to.equal('invalid_grant');
    });

    it('GET /sessions lists the caller\'s sessions as devices, marking this one', async () => {
      const user = `walt-${hex()}`;
      const phone = await login(user, 60, 'phone', 'PhoneBrowser/1.0');
      const laptop = await login(user, 60, 'laptop', 'LaptopBrowser/2.0');
      await login(`walt-other-${hex()}`, 60);
      await refresh(phone.refresh_token).expect(200);
      const res = await request(app).get('/sessions').auth(laptop.token, bearer).expect(200).expect('cache-control', 'no-store');
      expect(res.body).to.have.all.keys('sub', 'sid', 'sessions');
      expect(res.body).to.include({ sub: user, sid: laptop.sid });
      const sessions = res.body.sessions as Array<Record<string, unknown> & { device: Record<string, string> }>;
      expect(sessions.map((x) => [x.sid, x.current, x.generation])).to.deep.equal([[phone.sid, false, 1], [laptop.sid, true, 0]]);
      expect(sessions[0]!.device).to.include({ userAgent: 'PhoneBrowser/1.0', label: 'phone' });
      expect(sessions[1]!.device).to.include({ userAgent: 'LaptopBrowser/2.0', label: 'laptop' });
      expect(sessions[0]).to.include({ sub: user, clientId: DEMO_CLIENT_ID, scope: 'read write' });
      for (const x of sessions) expect(x.expiresAt).to.be.a('number').and.greaterThan(Date.now());
      expect(JSON.stringify(res.body)).to.not.include(laptop.refresh_token).and.not.include(laptop.token);
      // A token of no session may list them too; none is "this device".
      const plain = await plainToken(user);
      const viaPlain = await request(app).get('/sessions').auth(plain.token, bearer).expect(200);
      expect(viaPlain.body.sid).to.equal(null);
      expect(viaPlain.body.sessions.map((x: { current: boolean }) => x.current)).to.deep.equal([false, false]);
      const bare = await request(app).get('/sessions').expect(401);
      expect(bare.headers['www-authenticate']).to.match(/^Bearer realm="[^"]+"$/);
    });

    it('POST /sessions/logout-others ends every other session of the caller, with its tokens, and keeps this one', async () => {
      const user = `xavi-${hex()}`;
      const here = await login(user, 60, 'here');
      const b = await login(user, 60);
      const c = await login(user, 60);
      const bystander = await login(`xavi-other-${hex()}`, 60);
      const bStream = await openEvents(b.token);
      const res = await request(app).post('/sessions/logout-others').auth(here.token, bearer).expect(200);
      expect(res.body).to.deep.equal({ revoked: 2 });
      for (const gone of [b, c]) {
        await request(app).get('/me').auth(gone.token, bearer).expect(401).expect('www-authenticate', /error="invalid_token"/);
        expect((await refresh(gone.refresh_token).expect(400)).body.error).to.equal('invalid_grant');
      }
      await request(app).get('/me').auth(here.token, bearer).expect(200);
      await request(app).get('/me').auth(bystander.token, bearer).expect(200);
      const list = await request(app).get('/sessions').auth(here.token, bearer).expect(200);
      expect(list.body.sessions.map((x: { sid: string }) => x.sid)).to.deep.equal([here.sid]);
      await waitFor('the other device\'s stream to end', () => bStream.ended);
      expect(bStream.events('session_ended').filter((e) => e.sid === b.sid).map((e) => e.reason)).to.deep.equal(['revoked']);
      expect(JSON.parse(bStream.messages.at(-1)!.data)).to.deep.equal({ reason: 'session_ended', detail: 'revoked' });
      await refresh(here.refresh_token).expect(200);
      // A token of no session has no "this device" to keep.
      const plain = await plainToken(user);
      const refused = await request(app).post('/sessions/logout-others').auth(plain.token, bearer).expect(400).expect('content-type', /json/);
      expect(refused.body.error).to.equal('invalid_request');
      await request(app).get('/me').auth(plain.token, bearer).expect(200);
    });

    it('a session\'s stream outlives the access token it was opened with, across refreshes', async () => {
      const t = await login(`yuri-${hex()}`, 1);
      const events = await openEvents(t.token);
      await waitFor('the first access token to expire', () => events.events('expired').find((e) => e.jti === t.jti), 6000);
      const r = await refresh(t.refresh_token).expect(200);
      const refreshed = await waitFor('the refreshed event', () => events.events('refreshed').find((e) => e.sid === t.sid) as SessionEvent | undefined);
      expect(refreshed.session.generation).to.equal(1);
      await request(app).get('/me').auth(r.body.access_token, bearer).expect(200);
      expect(events.ended).to.equal(false);
    });

    it('the stream carries reuse_detected and session_ended to every stream of the user, and ends the stolen session\'s', async () => {
      const user = `zoe-${hex()}`;
      const victim = await login(user, 60);
      const other = await login(user, 60);
      const victimStream = await openEvents(victim.token);
      const otherStream = await openEvents(other.token);
      const rotatedAt = Date.now();
      const a2 = (await refresh(victim.refresh_token).expect(200)).body.access_token as string;
      await untilTime(rotatedAt + GRACE_MS + 50);
      await refresh(victim.refresh_token).expect(400);
      await waitFor('the server to end the stolen session\'s stream', () => victimStream.ended);
      const kinds = victimStream.messages.map((m) => m.event);
      const at = (kind: string) => kinds.lastIndexOf(kind);
      expect(at('reuse_detected')).to.be.greaterThan(at('refreshed')).and.lessThan(at('session_ended'));
      expect(at('session_ended')).to.equal(kinds.length - 2);
      expect(JSON.parse(victimStream.messages.at(-1)!.data)).to.deep.equal({ reason: 'session_ended', detail: 'reuse' });
      const [reuse] = victimStream.events('reuse_detected') as SessionEvent[];
      expect(reuse).to.include({ sid: victim.sid, sub: user });
      expect(reuse!.session.device).to.include({ userAgent: 'demo-spec/1.0' });
      expect(victimStream.events('session_ended').at(-1)).to.include({ sid: victim.sid, reason: 'reuse' });
      // Its access tokens were revoked with it, each with reason `session`.
      const revoked = victimStream.events('revoked').filter((e) => e.reason === 'session').map((e) => e.jti);
      expect(revoked).to.have.members([victim.jti, jtiOf(a2)]);
      // The user's other device hears of it and lives on.
      await waitFor('the other stream to get session_ended', () => otherStream.events('session_ended').find((e) => e.sid === victim.sid));
      expect(otherStream.events('reuse_detected').map((e) => e.sid)).to.deep.equal([victim.sid]);
      expect(otherStream.ended).to.equal(false);
      await request(app).get('/me').auth(other.token, bearer).expect(200);
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
      for (const path of ['/oauth/introspect', '/oauth/revoke', '/oauth/token']) {
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

    it('answers 503 to /me, /login and /oauth/token, never 401 or 500', async () => {
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
      const refresh503 = await refresh(t.refresh_token, {}, downApp).expect(503).expect('retry-after', /\d+/);
      expect(refresh503.body.error).to.equal('service_unavailable');
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
    const { token, refresh_token: refreshToken } = (await login.json()) as Login;
    const me = await fetch(`${url}/me`, { headers: { Authorization: `Bearer ${token}` } });
    expect(me.status).to.equal(200);
    // The demo's own lifecycle logs the events: it is subscribed to the same Redis.
    await waitFor('the demo to log the session\'s start', () => /started\s+kim session /.test(output));
    const refreshed = await fetch(`${url}/oauth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: DEMO_CLIENT_ID }),
    });
    expect(refreshed.status).to.equal(200);
    await waitFor('the demo to log the refresh', () => /refreshed kim session /.test(output));

    // GET /metrics: the library's instruments, through the demo's OpenTelemetry SDK and Prometheus exporter.
    const scrape = await fetch(`${url}/metrics`);
    expect(scrape.status).to.equal(200);
    expect(scrape.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await scrape.text();
    const sample = (name: string, labels = '') => Number(new RegExp(`^${name}(?:\\{${labels}[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(sample('rtl_sessions_started_total'), text).to.be.at.least(1);
    expect(sample('rtl_sessions_refreshes_total', 'outcome="ok"'), text).to.be.at.least(1);
    expect(sample('rtl_tokens_verifications_total', 'outcome="ok"'), text).to.be.at.least(1);
    expect(sample('rtl_verify_duration_count', 'source="(?:cache|redis)"'), text).to.be.at.least(1);
    expect(sample('rtl_event_lag_count', 'type="session_started"'), text).to.be.at.least(1);
    expect(text).to.match(/^rtl_event_lag_bucket\{type="session_started",[^}]*le="\+Inf"\} [1-9]/m);
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
