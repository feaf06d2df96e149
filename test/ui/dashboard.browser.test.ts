import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DESKTOP,
  hasChromium,
  launchChromium,
  NO_CHROMIUM,
  PHONE,
  screenshot,
  watchedPage,
} from '../helpers/browser.ts';
import type { WatchedPage } from '../helpers/browser.ts';
import { startService } from '../helpers/server.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { ServiceProcess } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

/**
 * The dashboard as a person uses it: the embedded default started as a process, Debian's
 * Chromium driving the page. Screenshots land in test-results/ui/.
 */

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

async function started(env: Record<string, string>): Promise<{ service: ServiceProcess; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mos-ui-'));
  const service = await startService(NODE, { DATA_DIR: dataDir, DATABASE_URL: '', ...env });
  return { service, dataDir };
}

/** Places an order through the page's form; resolves with its id once the page says it was accepted. */
async function placeThroughForm(page: Page, fields: Record<string, string>): Promise<string> {
  for (const [name, value] of Object.entries(fields)) await page.fill(`#${name}`, value);
  await page.click('#order-form button[type=submit]');
  const link = page.locator('#form-result a');
  await link.waitFor({ timeout: 10_000 });
  return (await link.getAttribute('href'))?.split('/').at(-1) ?? '';
}

const row = (page: Page, orderId: string, status?: string) =>
  page.locator(`#orders tr[data-order-id="${orderId}"]${status ? `[data-status="${status}"]` : ''}`);

function expectClean(watched: WatchedPage) {
  expect(watched.problems).toEqual([]);
  expect(watched.foreign).toEqual([]);
}

describe.skipIf(!hasChromium)(`the dashboard in a browser${NO_CHROMIUM}`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('when no API key is configured', () => {
    let service: ServiceProcess;
    let dataDir: string;
    beforeAll(async () => {
      ({ service, dataDir } = await started({}));
    });
    afterAll(async () => {
      await service?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('places an order from the form, shows it live until it completes, and opens its page from the table', async () => {
      const watched = await watchedPage(browser, service.url, DESKTOP);
      const { page } = watched;
      await page.goto(`${service.url}/ui`);
      await page.locator('#live[data-state="open"]').waitFor();
      expect(await page.locator('#who').textContent()).toBe('open API (no keys configured)');

      const user = `ui-${randomUUID().slice(0, 8)}`;
      const orderId = await placeThroughForm(page, { user_id: user, from_amount: '250' });
      // Live: the row arrives from the stream (the page is not reloaded), then completes.
      await row(page, orderId).waitFor({ timeout: 10_000 });
      await row(page, orderId, 'completed').waitFor({ timeout: 30_000 });
      const cells = await row(page, orderId).locator('td').allTextContents();
      expect(cells.slice(2, 5)).toEqual([user, 'completed', '250 USDT']);
      expect(cells[5]).toMatch(/^\d+(\.\d+)? BTC$/);
      expect(cells[6]).toMatch(/^\d/);
      await page.locator('#count-completed', { hasText: '1' }).waitFor();
      expect(await page.locator('#count-accepted').textContent()).toBe('1');
      expect(await page.locator('#count-open').textContent()).toBe('0');
      await screenshot(page, 'dashboard-desktop');

      // A person then opens it from the table: the order page shows the saga at `completed`, the
      // only current state, and the order's five events in its timeline.
      await row(page, orderId).locator('a').first().click();
      await page.waitForURL(`**/ui/orders/${orderId}`);
      await page.locator('.state.current[data-state="completed"]').waitFor({ timeout: 20_000 });
      expect(await page.locator('.state.current').count()).toBe(1);
      expect(await page.locator('#events li[data-stream="order"] .type').allTextContents()).toEqual([
        'OrderAccepted',
        'PriceQuoted',
        'SwapExecuting',
        'SwapExecuted',
        'OrderCompleted',
      ]);
      await screenshot(page, 'dashboard-then-order-desktop');
      expectClean(watched);
      await page.context().close();
    });

    it('catches up after a dropped connection, with what happened meanwhile', async () => {
      // The page talks to the service through a proxy that the test cuts, as a network would.
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(service.url).port) });
      const origin = `http://127.0.0.1:${proxy.port}`;
      const watched = await watchedPage(browser, origin, DESKTOP);
      const { page } = watched;
      try {
        await page.goto(`${origin}/ui`);
        // The first message (the counts) carries the stream's position, which a reconnect sends
        // back as Last-Event-ID. (Cut before it, the page would rely on reading its list again.)
        await page.locator('body[data-messages="1"]').waitFor();
        proxy.cut('reset');
        await page.locator('#live[data-state="reconnecting"]').waitFor({ timeout: 10_000 });
        // Placed and finished while the page is cut off: it must show up once the page is back.
        const placed = await fetch(`${service.url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            user_id: `offline-${randomUUID().slice(0, 8)}`,
            from_amount: '75',
            from_currency: 'USDT',
            to_currency: 'BTC',
            order_type: 'market',
          }),
        });
        const { order_id } = (await placed.json()) as { order_id: string };
        await until(async () => {
          const res = await fetch(`${service.url}/orders/${order_id}`);
          return ((await res.json()) as { status: string }).status === 'completed';
        }, 'the order placed while cut off to complete');
        expect(await row(page, order_id).count()).toBe(0);
        proxy.restore();
        await page.locator('#live[data-state="open"]').waitFor({ timeout: 15_000 });
        await row(page, order_id, 'completed').waitFor({ timeout: 10_000 });
        // Only the browser's own log of the refused connections; no script error.
        expect(watched.problems.filter((p) => !/net::ERR_CONNECTION_(RESET|REFUSED)/.test(p))).toEqual([]);
        expect(watched.foreign).toEqual([]);
      } finally {
        await page.context().close();
        await proxy.close();
      }
    });

    it('takes a burst of orders in at most one message and one redraw per tick', async () => {
      const watched = await watchedPage(browser, service.url, DESKTOP);
      const { page } = watched;
      await page.goto(`${service.url}/ui`);
      await page.locator('#live[data-state="open"]').waitFor();
      const counter = async (name: 'renders' | 'messages') =>
        Number(await page.locator('body').getAttribute(`data-${name}`));
      const before = { renders: await counter('renders'), messages: await counter('messages') };
      const accepted = Number(await page.locator('#count-accepted').textContent());
      const started = Date.now();
      const user = `burst-${randomUUID().slice(0, 8)}`;
      // 100 orders, 20 at a time, as fast as the service takes them.
      for (let i = 0; i < 5; i += 1) {
        await Promise.all(
          Array.from({ length: 20 }, () =>
            fetch(`${service.url}/orders`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                user_id: user,
                from_amount: '10',
                from_currency: 'USDT',
                to_currency: 'BTC',
                order_type: 'market',
              }),
            }),
          ),
        );
      }
      await page.locator('#count-accepted', { hasText: String(accepted + 100) }).waitFor({ timeout: 20_000 });
      const elapsedMs = Date.now() - started;
      const messages = (await counter('messages')) - before.messages;
      const renders = (await counter('renders')) - before.renders;
      expect(messages).toBeLessThanOrEqual(Math.ceil(elapsedMs / 250) + 2);
      // One redraw per message at most, plus the once-a-second refresh of the ages.
      expect(renders).toBeLessThanOrEqual(messages + Math.ceil(elapsedMs / 1000) + 1);
      expect(await page.locator('#orders tbody tr').count()).toBe(50);
      expectClean(watched);
      await page.context().close();
    });

    it("shows the API's validation messages beside their fields", async () => {
      const watched = await watchedPage(browser, service.url, DESKTOP);
      const { page } = watched;
      await page.goto(`${service.url}/ui`);
      await page.locator('#live[data-state="open"]').waitFor();
      const fields = { user_id: 'ui-invalid', from_amount: '0', from_currency: 'USDT', to_currency: 'USDT' };
      for (const [name, value] of Object.entries(fields)) await page.fill(`#${name}`, value);
      await page.click('#order-form button[type=submit]');
      await page.locator('#error-from_amount:not(:empty)').waitFor();

      // The same words the API answers, each beside its own field.
      const answer = await fetch(`${service.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...fields, order_type: 'market' }),
      });
      const { errors } = (await answer.json()) as { errors: { field: string; message: string }[] };
      expect(errors.map((e) => e.field).sort()).toEqual(['from_amount', 'to_currency']);
      for (const { field, message } of errors) {
        expect(await page.locator(`#error-${field}`).textContent(), field).toBe(message);
        expect(await page.locator(`#${field}`).getAttribute('aria-invalid'), field).toBe('true');
      }
      expect(await page.locator('#error-user_id').textContent()).toBe('');
      await screenshot(page, 'dashboard-validation');
      // The one console line is Chromium's own network log of the 422 under test (a fetch that is
      // answered 4xx is logged so whatever the page does); no script error, nothing else.
      expect(watched.problems).toEqual([
        'Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)',
      ]);
      expect(watched.foreign).toEqual([]);
      await page.context().close();
    });

    it('fits a phone', async () => {
      const watched = await watchedPage(browser, service.url, PHONE);
      const { page } = watched;
      await page.goto(`${service.url}/ui`);
      await page.locator('#orders tbody tr').first().waitFor();
      // Nothing wider than the screen but the table, which scrolls in its own box.
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - window.innerWidth',
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await screenshot(page, 'dashboard-phone');
      expectClean(watched);
      await page.context().close();
    });
  });

  describe('when API keys are configured', () => {
    let service: ServiceProcess;
    let dataDir: string;
    const alice = `alice-${randomUUID().slice(0, 8)}`;
    const bob = `bob-${randomUUID().slice(0, 8)}`;
    const aliceKey = `alice-${randomUUID()}`;
    const bobKey = `bob-${randomUUID()}`;
    const adminKey = `admin-${randomUUID()}`;

    beforeAll(async () => {
      ({ service, dataDir } = await started({
        API_KEYS: `${alice}:${aliceKey},${bob}:${bobKey},*:${adminKey}`,
      }));
    });
    afterAll(async () => {
      await service?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    async function signIn(key: string, viewport = DESKTOP): Promise<WatchedPage> {
      const watched = await watchedPage(browser, service.url, viewport);
      await watched.page.goto(`${service.url}/ui`);
      await watched.page.fill('#api-key', key);
      await watched.page.click('.key-prompt button[type=submit]');
      await watched.page.locator('#live[data-state="open"]').waitFor();
      return watched;
    }

    it("shows a user's key only that user's orders", async () => {
      // Bob's order, placed with his key, finishes first.
      const placed = await fetch(`${service.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bobKey}` },
        body: JSON.stringify({
          user_id: bob,
          from_amount: '100',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        }),
      });
      expect(placed.status).toBe(202);
      const { order_id: bobsOrder } = (await placed.json()) as { order_id: string };

      const watched = await signIn(aliceKey);
      const { page } = watched;
      expect(await page.locator('#who').textContent()).toBe(`user ${alice}`);
      expect(await page.locator('#user_id').inputValue()).toBe(alice);
      await until(async () => {
        const res = await fetch(`${service.url}/orders/${bobsOrder}`, {
          headers: { authorization: `Bearer ${bobKey}` },
        });
        return ((await res.json()) as { status: string }).status === 'completed';
      }, "Bob's order to complete");

      // Alice's order comes through the same feed after Bob's finished: his would have come first.
      const alicesOrder = await placeThroughForm(page, { from_amount: '50' });
      await row(page, alicesOrder, 'completed').waitFor({ timeout: 30_000 });
      expect(await row(page, bobsOrder).count()).toBe(0);
      expect(await page.locator('#orders tbody tr').count()).toBe(1);
      await screenshot(page, 'dashboard-user-key');
      expectClean(watched);
      await page.context().close();

      // An admin key sees both.
      const admin = await signIn(adminKey);
      await row(admin.page, alicesOrder).waitFor();
      await row(admin.page, bobsOrder).waitFor();
      expect(await admin.page.locator('#who').textContent()).toBe('admin');
      expectClean(admin);
      await admin.page.context().close();
    });

    it('asks again when the key is refused', async () => {
      const watched = await watchedPage(browser, service.url, DESKTOP);
      const { page } = watched;
      await page.goto(`${service.url}/ui`);
      await page.fill('#api-key', `wrong-${randomUUID()}`);
      await page.click('.key-prompt button[type=submit]');
      expect(await page.locator('#api-key-error:not(:empty)').textContent()).toBe(
        'The API does not accept this key',
      );
      expectClean(watched);
      await page.context().close();
    });
  });
});
