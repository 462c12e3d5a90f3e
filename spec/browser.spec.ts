// End-to-end: the demo console in headless Chromium (Debian's `chromium`, driven by
// playwright-core), against createDemoApp on a free port and a private redis-server.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createDemoApp } from '../demo/app.js';
import { TokenLifecycle, TokenStore, type TokenEvent } from '../lib/index.js';
import { RedisServer, testPrefix } from './support/redis.js';
import { nextEvent, waitFor } from './support/wait.js';

const CHROMIUM = '/usr/bin/chromium';
/**
 * Run in the page before its own script (no DOM types here, hence a string): wraps the
 * timer functions and EventSource so that `window.__activity()` tells how many timers
 * are pending and streams open.
 */
const ACTIVITY_PROBE = `(() => {
  const live = new Set();
  const { setInterval: si, clearInterval: ci, setTimeout: st, clearTimeout: ct } = window;
  window.setInterval = (fn, ms, ...args) => { const id = si(fn, ms, ...args); live.add(id); return id; };
  window.clearInterval = (id) => { live.delete(id); ci(id); };
  window.setTimeout = (fn, ms, ...args) => { const id = st((...a) => { live.delete(id); fn(...a); }, ms, ...args); live.add(id); return id; };
  window.clearTimeout = (id) => { live.delete(id); ct(id); };
  const streams = [];
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(...args) { super(...args); streams.push(this); }
  };
  window.__activity = () => ({ timers: live.size, openStreams: streams.filter((s) => s.readyState !== Original.CLOSED).length });
})();`;

/** The store's refresh grace window here: "simulate theft" waits it out before its replay is refused. */
const GRACE_MS = 500;

/** The feed row announcing the token `jti`: `issued` for a token of no session, else the session event that carries it. */
const announced = (jti: string) => ['issued', 'session_started', 'refreshed'].map((type) => `#events tr[data-type="${type}"][data-jti="${jti}"]`).join(', ');

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('browser: the demo console in headless Chromium', function () {
  this.timeout(60_000);
  let redisServer: RedisServer | undefined;
  let lifecycle: TokenLifecycle | undefined;
  let http: Server | undefined;
  let browser: Browser | undefined;
  let store: TokenStore;
  let baseUrl: string;
  const pageErrors: string[] = [];
  /** Every URL the pages asked for, and every answer >= 400 that no test expected. */
  const requested: string[] = [];
  const failures: string[] = [];
  /** Answers >= 400 the current test expects, as `<status> <method> <path>`. */
  let expected: string[] = [];

  before(async function () {
    this.timeout(60_000);
    if (!existsSync(CHROMIUM)) {
      // Not a skip: CI (.ci/run) installs it, so its absence is a broken machine.
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (sudo apt-get install chromium); .ci/run does this on CI`);
    }
    redisServer = await RedisServer.start();
    const redis = redisServer.client();
    const prefix = testPrefix();
    store = new TokenStore({ redis, key: randomBytes(32), issuer: 'browser-test', prefix, sessions: { refreshGrace: GRACE_MS } });
    lifecycle = new TokenLifecycle({ redis, prefix });
    lifecycle.on('error', () => {});
    await lifecycle.start();
    const app = createDemoApp({ store, lifecycle, heartbeatMs: 1000 });
    http = await new Promise<Server>((resolve, reject) => {
      const server = app.listen(0, '127.0.0.1');
      server.once('error', reject);
      server.once('listening', () => resolve(server));
    });
    baseUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    if (http?.listening) {
      await new Promise<void>((resolve) => {
        http!.close(() => resolve());
        http!.closeAllConnections();
      });
    }
    await lifecycle?.stop();
    await redisServer?.stop();
  });

  /** A new tab: in a browser of its own (another device), or in `context` (another tab of the same browser). */
  async function openPage(width = 1280, context?: BrowserContext): Promise<Page> {
    const page = context ? await context.newPage() : await browser!.newPage({ viewport: { width, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('request', (req) => requested.push(req.url()));
    page.on('response', (res) => {
      // A 401 for a dead token is the page's business (test 3 checks how it takes it).
      const answer = `${res.status()} ${res.request().method()} ${new URL(res.url()).pathname}`;
      if (res.status() >= 400 && res.status() !== 401 && !expected.includes(answer)) failures.push(answer);
    });
    // Counts the page's live timers and streams, so that a test can see it has stopped.
    await page.addInitScript({ content: ACTIVITY_PROBE });
    page.setDefaultTimeout(10_000);
    await page.goto(baseUrl);
    return page;
  }

  /** Waits until the page has no timer pending and no stream open: it will not call the server again by itself. */
  async function waitUntilIdle(page: Page): Promise<void> {
    // Polled from here: waitForFunction with a string would need 'unsafe-eval', which the page's CSP forbids.
    let last: unknown;
    await waitFor('the page to stop its timers and streams', async () => {
      const activity = await page.evaluate<{ timers: number; openStreams: number }>('window.__activity()');
      last = activity;
      return activity.timers === 0 && activity.openStreams === 0;
    }, 5000, 50).catch((err: Error) => { throw new Error(`${err.message}; last seen ${JSON.stringify(last)}`); });
  }

  async function signIn(page: Page, username: string, ttl: number, label = ''): Promise<string> {
    await page.fill('#username', username);
    await page.fill('#ttl', String(ttl));
    await page.fill('#label', label);
    await page.click('#sign-in');
    await page.locator('#token-box').waitFor({ state: 'visible' });
    const jti = (await page.textContent('#token-jti'))!;
    expect(jti).to.match(/\S/);
    await page.locator('#stream-state[data-state="open"]').waitFor();
    return jti;
  }

  /** The session of the page's tab (shown on the page). */
  const sidOf = async (page: Page) => (await page.textContent('#token-sid'))!;

  /** Waits until the tab's access token is no longer `jti` (the page refreshed it), and returns the new one. */
  const nextJti = (page: Page, jti: string, timeoutMs = 5000) =>
    waitFor('a new access token on the page', async () => {
      const now = await page.textContent('#token-jti');
      return now !== jti && now;
    }, timeoutMs, 50);

  afterEach(function () {
    expected = [];
    if (this.currentTest?.state !== 'passed') return;
    expect(pageErrors, 'errors thrown in the page').to.deep.equal([]);
    expect(failures, 'answers >= 400 (other than 401) to the page, e.g. a missing favicon').to.deep.equal([]);
    // No bearer token in any URL, ever: the stream is opened with a one-time ticket.
    expect(requested.filter((url) => /eyJ/.test(url)), 'URLs carrying a token').to.deep.equal([]);
  });

  it('signs in (a session), lists the token and this device, revokes the token and carries on with a new one, then logs out', async () => {
    const page = await openPage();
    const jti = await signIn(page, 'alice', 60, 'laptop');
    await page.locator('#session-state[data-state="open"]').waitFor();
    expect(await page.textContent('#session-state')).to.equal('session open');
    const sid = await sidOf(page);
    const device = page.locator(`#devices tr[data-sid="${sid}"]`);
    await device.waitFor();
    expect(await device.getAttribute('class')).to.include('mine');
    expect(await device.locator('td.device').textContent()).to.match(/^laptop \(this device\)/);

    const row = page.locator(`#tokens tr[data-jti="${jti}"]`);
    await row.waitFor();
    await page.locator(announced(jti)).first().waitFor();
    const left = await row.locator('td.countdown').textContent();
    expect(Number(/^(\d+) s$/.exec(left ?? '')?.[1])).to.be.within(50, 61); // exp is whole seconds, rounded up

    await row.locator('button.revoke').click();
    const revoked = page.locator(`#events tr[data-type="revoked"][data-jti="${jti}"]`);
    await revoked.waitFor({ timeout: 5000 });
    expect(await revoked.locator('td.reason').textContent()).to.equal('revoke');
    expect(await revoked.locator('td.sub').textContent()).to.equal('alice');
    // Only the access token died, not the session: the page refreshes at /oauth/token and carries on.
    const next = await nextJti(page, jti);
    await page.locator(`#events tr[data-type="refreshed"][data-sid="${sid}"]`).first().waitFor();
    await row.waitFor({ state: 'detached', timeout: 5000 });
    await page.locator(`#tokens tr[data-jti="${next}"]`).waitFor();
    expect(await page.textContent('#session-state')).to.equal('session open');
    expect(await page.textContent('#countdown')).to.match(/^this tab's access token expires in \d+ s/);
    expect(requested.filter((url) => url.endsWith('/oauth/token'))).to.have.length.at.least(1);

    // Log out: the session ends (reason logout), and nothing is left running with its tokens.
    await page.click('#logout');
    await page.locator('#session-state[data-state="closed"][data-reason="logout"]').waitFor({ timeout: 5000 });
    expect(await page.textContent('#session-state')).to.equal('session closed: logged out');
    await page.locator(`#events tr[data-type="session_ended"][data-sid="${sid}"]`).waitFor();
    expect(await page.textContent('#countdown')).to.equal("this tab's session has ended: logged out");
    await waitUntilIdle(page);
    for (const id of ['#reload-tokens', '#revoke-all', '#logout', '#simulate-theft', '#logout-others', '#call-me']) {
      expect(await page.isDisabled(id), id).to.equal(true);
    }
    await page.close();
  });

  it('shows only the signed-in user\'s events, never another user\'s', async () => {
    const page = await openPage();
    const carol = `carol-${randomBytes(3).toString('hex')}`;
    const jti = await signIn(page, carol, 60);
    await page.locator(announced(jti)).first().waitFor();
    const daveRevoked = nextEvent<TokenEvent>(lifecycle!, 'revoked', (e) => e.sub.startsWith('dave-'));
    const dave = await store.issue(`dave-${randomBytes(3).toString('hex')}`, { ttl: 60 });
    await store.revoke(dave.token);
    // The page's stream listened before this test did, so it has had dave's events; a later
    // event of carol's on the same stream shows the page has read past them.
    await daveRevoked;
    const later = await store.issue(carol, { ttl: 60 });
    await page.locator(`#events tr[data-type="issued"][data-jti="${later.jti}"]`).waitFor();
    expect(await page.locator(`#events tr[data-jti="${dave.jti}"]`).count()).to.equal(0);
    expect(new Set(await page.locator('#events td.sub').allTextContents()).size).to.equal(1);
    await page.close();
  });

  it('a tab restored with a dead token says so and stops: no timers, no stream, no countdown', async () => {
    const dead = await store.issue('erin', { ttl: 120 });
    await store.revoke(dead.token);
    const page = await openPage();
    const saved = JSON.stringify({ token: dead.token, jti: dead.jti, sub: dead.sub, expiresAt: dead.expiresAt });
    await page.evaluate(`sessionStorage.setItem('rtl-demo-session', ${JSON.stringify(saved)})`);
    const refused = page.waitForResponse((res) => res.status() === 401);
    await page.reload();
    await refused;
    await page.locator('#session-state[data-state="closed"]').waitFor();
    expect(await page.textContent('#session-state')).to.equal('session closed: token not valid');
    expect(await page.textContent('#countdown')).to.equal("this tab's token is no longer valid (revoked or expired)");
    await waitUntilIdle(page);
    expect(await page.textContent('#countdown')).not.to.match(/expires in/);
    await page.close();
  });

  it('fits a 420 px wide screen without horizontal scrolling', async () => {
    const page = await openPage(420);
    const jti = await signIn(page, `a-rather-long-user-name-${randomBytes(4).toString('hex')}@example.com`, 60, 'a phone with a rather long name, too');
    await page.locator(announced(jti)).first().waitFor();
    await page.click('#reload-tokens');
    await page.locator(`#tokens tr[data-jti="${jti}"]`).waitFor();
    await page.locator(`#devices tr[data-sid="${await sidOf(page)}"]`).waitFor();
    const widths = await page.evaluate<{ scroll: number; client: number }>('({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })');
    expect(widths.scroll, JSON.stringify(widths)).to.be.at.most(420);
    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-420-${process.pid}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await page.close();
  });

  it('refreshes a 2-second access token at /oauth/token before it expires: the old one expires, the session stays open', async () => {
    const page = await openPage();
    const jti = await signIn(page, 'bob', 2);
    const sid = await sidOf(page);
    await page.locator(`#tokens tr[data-jti="${jti}"]`).waitFor();

    await page.locator(`#events tr[data-type="refreshed"][data-sid="${sid}"]`).first().waitFor({ timeout: 8000 });
    await nextJti(page, jti, 8000);
    // The first token expires on schedule; the session does not, and neither does the stream.
    const expired = page.locator(`#events tr[data-type="expired"][data-jti="${jti}"]`);
    await expired.waitFor({ timeout: 8000 });
    expect(await expired.locator('td.sub').textContent()).to.equal('bob');
    expect(await page.textContent('#session-state')).to.equal('session open');
    expect(await page.textContent('#stream-state')).to.equal('live');
    // A refresh late under load shows "refreshing…" for a moment: the session is alive either way.
    expect(await page.textContent('#countdown')).to.match(/^this tab's access token (expires in \d+ s|has expired: refreshing…)/);
    // Waited for as a response, not read from "Last response": the page's next background
    // refresh (every 1.5 s here) may overwrite that box a few milliseconds after the answer.
    const answered = page.waitForResponse((res) => res.request().method() === 'GET' && new URL(res.url()).pathname === '/me' && res.status() === 200, { timeout: 8000 });
    await page.click('#call-me');
    await answered;

    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-${process.pid}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await page.close();
  });

  it('simulate theft: the replayed refresh token ends the session live in every tab holding it, and the protected call fails', async () => {
    // The thief's replay is refused (400 invalid_grant); a tab whose session just died may be refused a refresh too.
    expected = ['400 POST /oauth/token'];
    const user = `tess-${randomBytes(3).toString('hex')}`;
    // Two tabs of one browser (BroadcastChannel and cookies shared, sessionStorage per tab).
    const laptopBrowser = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const laptop = await openPage(1280, laptopBrowser);
    await signIn(laptop, user, 60, 'laptop');
    const sid = await sidOf(laptop);
    // The same session in a second tab of that browser (a duplicated tab: sessionStorage is copied).
    const twin = await openPage(1280, laptopBrowser);
    const saved = await laptop.evaluate<string>("sessionStorage.getItem('rtl-demo-session')");
    await twin.evaluate(`sessionStorage.setItem('rtl-demo-session', ${JSON.stringify(saved)})`);
    await twin.reload();
    await twin.locator('#session-state[data-state="open"]').waitFor();
    expect(await sidOf(twin)).to.equal(sid);
    // Another device of the same user: a session of its own.
    const phone = await openPage();
    await signIn(phone, user, 60, 'phone');
    const phoneSid = await sidOf(phone);
    await laptop.locator(`#devices tr[data-sid="${phoneSid}"]`).waitFor();
    await laptop.locator(`#devices tr[data-sid="${sid}"].mine`).waitFor();
    await phone.locator(`#devices tr[data-sid="${sid}"]`).waitFor();

    await laptop.click('#simulate-theft');
    for (const tab of [laptop, twin]) {
      await tab.locator('#session-state[data-state="closed"][data-reason="reuse"]').waitFor({ timeout: 15_000 });
      expect(await tab.textContent('#session-state')).to.equal('session closed: refresh token reused');
      await tab.locator(`#events tr[data-type="reuse_detected"][data-sid="${sid}"]`).waitFor();
      expect(await tab.textContent('#countdown')).to.equal("this tab's session has ended: refresh token reused");
    }
    // The rotation before the replay reached the twin tab: it never replayed a stale token of its own.
    await laptop.locator('#theft[data-state="done"]').waitFor({ timeout: 15_000 });
    const note = (await laptop.textContent('#theft'))!;
    expect(note).to.match(/Replay refused: 400 invalid_grant/).and.match(/GET \/me with this tab's access token → 401/);
    // The protected call with the page's last access token fails, with the RFC 6750 challenge.
    const token = await laptop.inputValue('#token');
    const me = await fetch(`${baseUrl}/me`, { headers: { Authorization: `Bearer ${token}` } });
    expect(me.status).to.equal(401);
    expect(me.headers.get('www-authenticate')).to.match(/error="invalid_token"/);
    await waitUntilIdle(laptop);
    await waitUntilIdle(twin);

    // The user's other device saw it live, and lives on.
    const reuse = phone.locator(`#events tr[data-type="reuse_detected"][data-sid="${sid}"]`);
    await reuse.waitFor();
    await phone.locator(`#events tr[data-type="session_ended"][data-sid="${sid}"]`).waitFor();
    expect(await phone.locator(`#events tr[data-type="session_ended"][data-sid="${sid}"] td.reason`).textContent()).to.equal('reuse');
    await phone.locator(`#devices tr[data-sid="${sid}"]`).waitFor({ state: 'detached' });
    expect(await phone.textContent('#session-state')).to.equal('session open');
    await phone.click('#call-me');
    await waitFor('GET /me to answer 200 on the other device', async () => /^GET \/me → 200/.test((await phone.textContent('#response')) ?? ''));
    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-theft-${process.pid}.png`);
    await laptop.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await phone.close();
    await laptopBrowser.close();
  });
});
