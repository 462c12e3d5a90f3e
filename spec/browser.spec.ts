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
import { TokenLifecycle, TokenStore } from '../lib/index.js';
import { RedisServer, testPrefix } from './support/redis.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('browser: the demo console in headless Chromium', function () {
  this.timeout(60_000);
  let redisServer: RedisServer | undefined;
  let lifecycle: TokenLifecycle | undefined;
  let http: Server | undefined;
  let browser: Browser | undefined;
  let baseUrl: string;
  const pageErrors: string[] = [];

  before(async function () {
    this.timeout(60_000);
    if (!existsSync(CHROMIUM)) {
      // Not a skip: CI (.ci/run) installs it, so its absence is a broken machine.
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (sudo apt-get install chromium); .ci/run does this on CI`);
    }
    redisServer = await RedisServer.start();
    const redis = redisServer.client();
    const prefix = testPrefix();
    const store = new TokenStore({ redis, key: randomBytes(32), issuer: 'browser-test', prefix });
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

  async function openPage(): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.setDefaultTimeout(10_000);
    await page.goto(baseUrl);
    await page.locator('#stream-state.open').waitFor();
    return page;
  }

  async function signIn(page: Page, username: string, ttl: number): Promise<string> {
    await page.fill('#username', username);
    await page.fill('#ttl', String(ttl));
    await page.click('#sign-in');
    await page.locator('#token-box').waitFor({ state: 'visible' });
    const jti = (await page.textContent('#token-jti'))!;
    expect(jti).to.match(/\S/);
    return jti;
  }

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

    const screenshot = join(tmpdir(), `redis-token-lifecycle-demo-${process.pid}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`      screenshot: ${screenshot}`);
    await page.close();
    expect(pageErrors, 'errors thrown in the page').to.deep.equal([]);
  });
});
