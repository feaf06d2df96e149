import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startService } from '../helpers/server.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { TcpProxy } from '../helpers/tcpProxy.ts';
import { until } from '../helpers/wait.ts';
import type { ServiceProcess } from '../helpers/server.ts';

/** Debian's Chromium (`apt-get install chromium`); without it this file is skipped. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = join('test-results', 'ui');

const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

if (!existsSync(CHROMIUM)) {
  console.warn(
    `test/ui/order.browser.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`,
  );
}

describe.skipIf(!existsSync(CHROMIUM))('the order page in a browser', () => {
  let service: ServiceProcess;
  let browser: Browser;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'mos-ui-order-'));
    await mkdir(SCREENSHOTS, { recursive: true });
    // The embedded default, as a person starts it: PGlite, the in-process bus, the simulated market.
    service = await startService([process.execPath, '--import', 'tsx', 'src/cli.ts', 'start'], {
      DATA_DIR: dataDir,
      DATABASE_URL: '',
    });
    // As root (CI) Chromium refuses its sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function placeOrder(
    fromAmount: string,
    options: { url?: string; userId?: string; key?: string } = {},
  ): Promise<string> {
    const res = await fetch(`${options.url ?? service.url}/orders`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
      },
      body: JSON.stringify({
        user_id: options.userId ?? `ui-${crypto.randomUUID()}`,
        order_type: 'market',
        from_amount: fromAmount,
        from_currency: 'USDT',
        to_currency: 'BTC',
      }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { order_id: string }).order_id;
  }

  /** A page that records console errors and every request that leaves 127.0.0.1. */
  async function openPage(viewport: { width: number; height: number }) {
    const page = await browser.newPage({ viewport });
    const errors: string[] = [];
    const elsewhere: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1') elsewhere.push(request.url());
    });
    return { page, errors, elsewhere };
  }

  /** One attribute of every element `locator` finds, in document order. */
  const attributes = async (locator: Locator, name: string) =>
    Promise.all((await locator.all()).map((one) => one.getAttribute(name)));

  /** The timeline's rows of one stream, as event types in the order shown. */
  const typesOf = (page: Page, stream: 'order' | 'position') =>
    page.locator(`#events li[data-stream="${stream}"] .type`).allTextContents();

  describe('when the order completes', () => {
    it('shows the statechart at completed, the path it took, both streams and the notifications', async () => {
      const orderId = await placeOrder('1000');
      const { page, errors, elsewhere } = await openPage(VIEWPORTS.desktop);
      // Opened at once: the page follows the saga live to its end.
      await page.goto(`${service.url}/ui/orders/${orderId}`);

      const completed = page.locator('.state[data-state="completed"]');
      await expect.poll(() => completed.getAttribute('class'), { timeout: 20_000 }).toContain('current');
      expect(await page.locator('.state.current').count()).toBe(1);
      await expect
        .poll(() => typesOf(page, 'order'))
        .toEqual(['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'SwapExecuted', 'OrderCompleted']);
      expect(await typesOf(page, 'position')).toEqual(['PositionCreated', 'PositionUpdated']);
      expect(await page.locator('#events li .version').first().textContent()).toBe('v1');

      // The forward path is marked, the compensation path untouched.
      for (const visited of [
        'quotingPrice',
        'openingPosition',
        'executingSwap',
        'awaitingOutcome',
        'completing',
      ])
        expect(await page.locator(`.state[data-state="${visited}"]`).getAttribute('class')).toContain(
          'visited',
        );
      const taken = await attributes(page.locator('.transition.taken'), 'data-transition');
      expect(taken).toEqual(
        expect.arrayContaining([
          'orderSaga.awaitingOrder>orderSaga.quotingPrice',
          'orderSaga.executingSwap.sendingSwap>orderSaga.executingSwap.awaitingOutcome',
          'orderSaga.completing>orderSaga.completed',
        ]),
      );
      expect(await page.locator('.transition.compensation.taken').count()).toBe(0);
      expect(await page.locator('.state.compensation.visited').count()).toBe(0);
      // Every transition is labelled with its events.
      expect(await page.locator('.transition-label').allTextContents()).toEqual(
        expect.arrayContaining(['PriceQuoted', 'StepFailed / DeadlinePassed', 'OrderCompleted']),
      );

      expect(await page.locator('#status').textContent()).toBe('completed');
      expect(await page.locator('#pending-step').textContent()).toMatch(/^none/);
      expect(await page.locator('#deadline').textContent()).toMatch(/saga ended before it/);

      // The payload of an event, on click.
      const accepted = page.locator('#events li[data-type="OrderAccepted"]');
      expect(await accepted.locator('pre').isVisible()).toBe(false);
      await accepted.locator('summary').click();
      expect(await accepted.locator('pre').textContent()).toContain(`"order_id": "${orderId}"`);

      // No channel is set for this user: one notification per channel, recorded as skipped.
      await expect.poll(() => page.locator('#notifications li').count(), { timeout: 20_000 }).toBe(2);
      const notifications = page.locator('#notifications li');
      const channels = await attributes(notifications, 'data-channel');
      const statuses = await attributes(notifications, 'data-status');
      expect(channels.map((channel, i) => `${channel} ${statuses[i]}`).sort()).toEqual([
        'email skipped',
        'telegram skipped',
      ]);

      await page.screenshot({ path: join(SCREENSHOTS, 'order-completed-desktop.png'), fullPage: true });
      expect(errors).toEqual([]);
      expect(elsewhere).toEqual([]);
      await page.close();

      const phone = await openPage(VIEWPORTS.phone);
      await phone.page.goto(`${service.url}/ui/orders/${orderId}`);
      await phone.page.locator('.state.current[data-state="completed"]').waitFor();
      await phone.page.locator('#notifications li').first().waitFor();
      await phone.page.screenshot({ path: join(SCREENSHOTS, 'order-completed-phone.png'), fullPage: true });
      expect(phone.errors).toEqual([]);
      expect(phone.elsewhere).toEqual([]);
      await phone.page.close();
    }, 60_000);
  });

  describe('when the order is larger than the venue’s liquidity', () => {
    it('shows the compensation path taken and the reason', async () => {
      // Accepted at intake (USDT allows up to 1,000,000,000), refused by the simulated venue,
      // whose pairs hold 1,000,000 USD of liquidity: the saga compensates.
      const orderId = await placeOrder('5000000');
      const { page, errors, elsewhere } = await openPage(VIEWPORTS.phone);
      await page.goto(`${service.url}/ui/orders/${orderId}`);

      const failed = page.locator('.state[data-state="failed"]');
      await expect.poll(() => failed.getAttribute('class'), { timeout: 20_000 }).toContain('current');
      expect(await failed.getAttribute('class')).toContain('compensation');
      expect(await page.locator('.state[data-state="compensating"]').getAttribute('class')).toContain(
        'visited',
      );
      const compensation = await attributes(
        page.locator('.transition.compensation.taken'),
        'data-transition',
      );
      expect(compensation.sort()).toEqual([
        'orderSaga.compensating>orderSaga.failed',
        'orderSaga.executingSwap.awaitingOutcome>orderSaga.compensating',
      ]);
      expect(await page.locator('.state[data-state="completing"]').getAttribute('class')).not.toContain(
        'visited',
      );

      expect(await page.locator('#status').textContent()).toBe('failed');
      expect(await page.locator('#failure-reason').textContent()).toBe('insufficient_liquidity');
      expect(await page.locator('#failure').textContent()).toMatch(/exceeds the 1000000 USD liquidity/);
      await expect
        .poll(() => typesOf(page, 'order'))
        .toEqual(['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'OrderFailed']);
      expect(await typesOf(page, 'position')).toEqual(['PositionCreated', 'PositionClosed']);

      await page.screenshot({ path: join(SCREENSHOTS, 'order-failed-phone.png'), fullPage: true });
      expect(errors).toEqual([]);
      expect(elsewhere).toEqual([]);
      await page.close();

      const desktop = await openPage(VIEWPORTS.desktop);
      await desktop.page.goto(`${service.url}/ui/orders/${orderId}`);
      await desktop.page.locator('.state.current[data-state="failed"]').waitFor();
      await desktop.page.locator('#notifications li').first().waitFor();
      await desktop.page.screenshot({ path: join(SCREENSHOTS, 'order-failed-desktop.png'), fullPage: true });
      expect(desktop.errors).toEqual([]);
      expect(desktop.elsewhere).toEqual([]);
      await desktop.page.close();
    }, 60_000);
  });

  describe('when API keys are configured', () => {
    let keyed: ServiceProcess;
    let keyedDir: string;
    const alice = `alice-${crypto.randomUUID()}`;
    const bob = `bob-${crypto.randomUUID()}`;
    const KEYS = { alice: 'alice-secret-1', bob: 'bob-secret-2', admin: 'admin-secret-3' };

    beforeAll(async () => {
      keyedDir = await mkdtemp(join(tmpdir(), 'mos-ui-order-keys-'));
      keyed = await startService([process.execPath, '--import', 'tsx', 'src/cli.ts', 'start'], {
        DATA_DIR: keyedDir,
        DATABASE_URL: '',
        API_KEYS: `${alice}:${KEYS.alice},${bob}:${KEYS.bob},*:${KEYS.admin}`,
      });
    }, 120_000);
    afterAll(async () => {
      await keyed?.stop();
      await rm(keyedDir, { recursive: true, force: true });
    });

    /** Opens the order's page and types `key` into its key prompt. */
    async function openWithKey(orderId: string, key: string) {
      const opened = await openPage(VIEWPORTS.desktop);
      await opened.page.goto(`${keyed.url}/ui/orders/${orderId}`);
      await opened.page.locator('#key-input').fill(key);
      await opened.page.locator('#key-form button').click();
      return opened;
    }

    /** The browser reports each refused call (401, 403, 409) as a console error: only those are expected. */
    const unexpected = (errors: readonly string[], statuses: readonly number[]) =>
      errors.filter(
        (text) =>
          !statuses.some((status) => text.includes(`the server responded with a status of ${status}`)),
      );

    it("asks for a key, and one user's key does not show another user's order", async () => {
      const orderId = await placeOrder('100', { url: keyed.url, userId: alice, key: KEYS.alice });
      const { page, errors, elsewhere } = await openWithKey(orderId, KEYS.bob);
      await expect.poll(() => page.locator('#key-problem').textContent()).toMatch(/acts for another user/);
      expect(await page.locator('#order').isHidden()).toBe(true);
      expect(await page.locator('#events li').count()).toBe(0);
      expect(unexpected(errors, [401, 403])).toEqual([]);
      expect(elsewhere).toEqual([]);
      await page.close();

      // Alice's own key shows it, without the operator's actions.
      const own = await openWithKey(orderId, KEYS.alice);
      const completed = own.page.locator('.state[data-state="completed"]');
      await expect.poll(() => completed.getAttribute('class'), { timeout: 20_000 }).toContain('current');
      await expect.poll(() => own.page.locator('#admin').isHidden()).toBe(true);
      expect(unexpected(own.errors, [401, 403])).toEqual([]);
      await own.page.close();
    }, 60_000);

    it('gives an admin key retry and cancel, each confirmed with its consequence, and shows the answer', async () => {
      const orderId = await placeOrder('100', { url: keyed.url, userId: alice, key: KEYS.alice });
      const { page, errors, elsewhere } = await openWithKey(orderId, KEYS.admin);
      const completed = page.locator('.state[data-state="completed"]');
      await expect.poll(() => completed.getAttribute('class'), { timeout: 20_000 }).toContain('current');
      await page.locator('#cancel').waitFor();

      await page.locator('#cancel').click();
      const dialog = page.locator('#confirm');
      expect(await dialog.isVisible()).toBe(true);
      expect(await page.locator('#confirm-consequence').textContent()).toBe(
        'The order will fail with reason cancelled; a swap already sent is voided first; if the venue ' +
          'executed it, the order completes instead.',
      );
      // A cancel needs its reason.
      await page.locator('#confirm-go').click();
      expect(await page.locator('#confirm-problem').textContent()).toMatch(/Give a reason/);
      await page.locator('#cancel-reason').fill('customer request');
      await page.locator('#confirm-go').click();
      // The saga has already completed: the service refuses, and the page says why.
      await expect
        .poll(() => page.locator('#admin-result').textContent())
        .toMatch(/^cancel refused: The saga has ended: .*has already ended \(completed\)/);
      expect(await dialog.isVisible()).toBe(false);

      await page.locator('#retry').click();
      expect(await page.locator('#confirm-consequence').textContent()).toMatch(/runs its pending step/);
      await page.locator('#confirm-go').click();
      await expect
        .poll(() => page.locator('#admin-result').textContent())
        .toMatch(/^retry refused: The saga has ended/);
      expect(await completed.getAttribute('class')).toContain('current');

      expect(unexpected(errors, [401, 409])).toEqual([]);
      expect(elsewhere).toEqual([]);
      await page.close();
    }, 60_000);
  });

  describe('when the venue cannot be reached for a while', () => {
    let market: ChildProcess;
    let link: TcpProxy;
    let cut: ServiceProcess;
    let cutDir: string;

    beforeAll(async () => {
      // The simulated market in a process of its own, reached through a link the test can cut.
      const port = await freePort();
      market = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'market'], {
        env: { ...process.env, MARKET_PORT: String(port), LOG_LEVEL: 'warn' },
        stdio: 'ignore',
      });
      const marketUrl = `http://127.0.0.1:${port}`;
      await until(
        () =>
          fetch(`${marketUrl}/health`).then(
            (res) => res.ok,
            () => false,
          ),
        'the simulated market to answer',
        60_000,
      );
      link = await startTcpProxy({ host: '127.0.0.1', port });
      cutDir = await mkdtemp(join(tmpdir(), 'mos-ui-order-venue-'));
      cut = await startService([process.execPath, '--import', 'tsx', 'src/cli.ts', 'start'], {
        DATA_DIR: cutDir,
        DATABASE_URL: '',
        PRICE_SERVICE_URL: marketUrl,
        TRADE_WORKER_URL: `http://127.0.0.1:${link.port}`,
        // Far enough for the test to act before the deadline.
        SAGA_DEADLINE_MS: '120000',
        // A saga waiting on the venue is resumed 2 s after its last event, once it can be reached.
        SWEEP_INTERVAL_MS: '500',
        SWEEP_STALE_MS: '2000',
        CALL_TIMEOUT_MS: '1000',
      });
    }, 120_000);
    afterAll(async () => {
      await cut?.stop();
      await link?.close();
      if (market && market.exitCode === null) {
        const exited = new Promise((resolve) => market.once('exit', resolve));
        market.kill('SIGTERM');
        await exited;
      }
      await rm(cutDir, { recursive: true, force: true });
    });

    it('shows the saga waiting at its pending step, refuses a blind cancel, and moves live to completed once the venue is back', async () => {
      link.cut('reset');
      const orderId = await placeOrder('100', { url: cut.url });
      const { page, errors, elsewhere } = await openPage(VIEWPORTS.desktop);
      await page.goto(`${cut.url}/ui/orders/${orderId}`);

      const waiting = page.locator('.state[data-state="awaitingOutcome"]');
      await expect.poll(() => waiting.getAttribute('class'), { timeout: 20_000 }).toContain('current');
      expect(await page.locator('#pending-step').textContent()).toBe('awaitingOutcome');
      expect(await page.locator('#deadline').textContent()).toMatch(/\(in \d+ s\)$/);
      expect(await page.locator('#live').textContent()).toMatch(/^live/);
      expect(await typesOf(page, 'order')).toEqual(['OrderAccepted', 'PriceQuoted', 'SwapExecuting']);
      await page.screenshot({ path: join(SCREENSHOTS, 'order-waiting-desktop.png'), fullPage: true });

      // The venue cannot say whether the swap went through: cancelling now would be a guess.
      await page.locator('#cancel').click();
      await page.locator('#cancel-reason').fill('customer request');
      await page.locator('#confirm-go').click();
      // The service tries the venue (with its call timeout) before it answers.
      await expect
        .poll(() => page.locator('#admin-result').textContent(), { timeout: 30_000 })
        .toMatch(/^cancel refused: The swap outcome is unknown/);
      expect(await waiting.getAttribute('class')).toContain('current');

      // The venue is back: the sweeper resumes the saga, and the page follows on its own (no reload).
      link.restore();
      const completed = page.locator('.state[data-state="completed"]');
      await expect.poll(() => completed.getAttribute('class'), { timeout: 30_000 }).toContain('current');
      await expect
        .poll(() => typesOf(page, 'order'))
        .toEqual(['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'SwapExecuted', 'OrderCompleted']);
      expect(await page.locator('#status').textContent()).toBe('completed');

      expect(errors.filter((text) => !text.includes('the server responded with a status of 409'))).toEqual(
        [],
      );
      expect(elsewhere).toEqual([]);
      await page.close();
    }, 90_000);
  });
});
