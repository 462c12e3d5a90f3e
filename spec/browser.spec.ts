// End-to-end: the demo console in headless Chromium (Debian's `chromium`, driven by
// playwright-core), against createDemoApp on a free port and a private redis-server.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
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

  before(async function () {
    this.timeout(60_000);
    if (!existsSync(CHROMIUM)) {
      // Not a skip: CI (.ci/run) installs it, so its absence is a broken machine.
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (sudo apt-get install chromium); .ci/run does this on CI`);
    }
    redisServer = await RedisServer.start();
    const redis = redisServer.client();
    const prefix = testPrefix();
    store = new TokenStore({ redis, key: randomBytes(32), issuer: 'browser-test', prefix });
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

  async function openPage(width = 1280): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('request', (req) => requested.push(req.url()));
    page.on('response', (res) => {
      // A 401 for a dead token is the page's business (test 3 checks how it takes it).
      if (res.status() >= 400 && res.status() !== 401) failures.push(`${res.status()} ${res.request().method()} ${res.url()}`);
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

  async function signIn(page: Page, username: string, ttl: number): Promise<string> {
    await page.fill('#username', username);
    await page.fill('#ttl', String(ttl));
    await page.click('#sign-in');
    await page.locator('#token-box').waitFor({ state: 'visible' });
    const jti = (await page.textContent('#token-jti'))!;
    expect(jti).to.match(/\S/);
    await page.locator('#stream-state[data-state="open"]').waitFor();
    return jti;
  }

  afterEach(function () {
    if (this.currentTest?.state !== 'passed') return;
    expect(pageErrors, 'errors thrown in the page').to.deep.equal([]);
    expect(failures, 'answers >= 400 (other than 401) to the page, e.g. a missing favicon').to.deep.equal([]);
    // No bearer token in any URL, ever: the stream is opened with a one-time ticket.
    expect(requested.filter((url) => /eyJ/.test(url)), 'URLs carrying a token').to.deep.equal([]);
  });

  it('signs in, lists the token, revokes it, and sees the revoked event and the closed session', async () => {
    const page = await openPage();
    const jti = await signIn(page, 'alice', 60);
    await page.locator('#session-state[data-state="open"]').waitFor();
    expect(await page.textContent('#session-state')).to.equal('session open');

    const row = page.locator(`#tokens tr[data-jti="${jti}"]`);
    await row.waitFor();
    await page.locator(`#events tr[data-type="issued"][data-jti="${jti}"]`).waitFor();
    const left = await row.locator('td.countdown').textContent();
    expect(Number(/^(\d+) s$/.exec(left ?? '')?.[1])).to.be.within(50, 61); // exp is whole seconds, rounded up

    await row.locator('button.revoke').click();
    const revoked = page.locator(`#events tr[data-type="revoked"][data-jti="${jti}"]`);
    await revoked.waitFor({ timeout: 5000 });
    expect(await revoked.locator('td.reason').textContent()).to.equal('revoke');
    expect(await revoked.locator('td.sub').textContent()).to.equal('alice');
    await page.locator('#session-state[data-state="closed"]').waitFor({ timeout: 5000 });
    expect(await page.textContent('#session-state')).to.equal('session closed: revoked');
    await row.waitFor({ state: 'detached', timeout: 5000 });
    // Not "expires in 5x s" any more, and nothing left running with the dead token.
    expect(await page.textContent('#countdown')).to.equal("this tab's token was revoked");
    await waitUntilIdle(page);
    expect(await page.textContent('#countdown')).to.equal("this tab's token was revoked");
    expect(await page.isDisabled('#refresh')).to.equal(true);
    expect(await page.isDisabled('#revoke-all')).to.equal(true);
    await page.close();
  });

  it('shows only the signed-in user\'s events, never another user\'s', async () => {
    const page = await openPage();
    const carol = `carol-${randomBytes(3).toString('hex')}`;
    const jti = await signIn(page, carol, 60);
    await page.locator(`#events tr[data-type="issued"][data-jti="${jti}"]`).waitFor();
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
    const jti = await signIn(page, `a-rather-long-user-name-${randomBytes(4).toString('hex')}@example.com`, 60);
    await page.locator(`#events tr[data-type="issued"][data-jti="${jti}"]`).waitFor();
    await page.click('#refresh');
    await page.locator(`#tokens tr[data-jti="${jti}"]`).waitFor();
    const widths = await page.evaluate<{ scroll: number; client: number }>('({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })');
    expect(widths.scroll, JSON.stringify(widths)).to.be.at.most(420);
    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-420-${process.pid}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await page.close();
  });

  it('sees a 2-second token expire: the expired event and the session closed (expired)', async () => {
    const page = await openPage();
    const jti = await signIn(page, 'bob', 2);
    await page.locator('#session-state[data-state="open"]').waitFor();
    await page.locator(`#tokens tr[data-jti="${jti}"]`).waitFor();

    const expired = page.locator(`#events tr[data-type="expired"][data-jti="${jti}"]`);
    await expired.waitFor({ timeout: 8000 });
    expect(await expired.locator('td.sub').textContent()).to.equal('bob');
    await page.locator('#session-state[data-state="closed"]').waitFor({ timeout: 8000 });
    expect(await page.textContent('#session-state')).to.equal('session closed: expired');
    expect(await page.textContent('#countdown')).to.equal("this tab's token has expired");
    await waitUntilIdle(page);

    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-${process.pid}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await page.close();
  });
});
