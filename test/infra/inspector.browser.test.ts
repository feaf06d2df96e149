import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startService } from '../helpers/server.ts';
import type { ServiceProcess } from '../helpers/server.ts';

/*
 * README "Watching sagas in the Stately inspector", as a user does it: `SAGA_INSPECT=stately` on
 * the embedded default, the bridge page opened in Chromium, an order placed. The inspector itself
 * loads from stately.ai, which tests do not reach: a stand-in answers for it and records what the
 * bridge page hands it, as the real one receives it (window messages, after it says it is
 * connected).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Stands in for https://stately.ai/inspect: announces itself and keeps every message it is sent. */
const STAND_IN = `<!doctype html><script>
  window.received = [];
  addEventListener('message', (e) => window.received.push(e.data));
  parent.postMessage({ type: '@statelyai.connected' }, '*');
</script>`;

describe.skipIf(!existsSync(CHROMIUM))('a SAGA_INSPECT=stately run in a browser', () => {
  let service: ServiceProcess;
  let browser: Browser;
  let dataDir: string;
  let inspectPort: number;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'inspect-'));
    inspectPort = await freePort();
    service = await startService([process.execPath, '--import', 'tsx', 'src/cli.ts', 'start'], {
      DATABASE_URL: '',
      DATA_DIR: dataDir,
      SAGA_INSPECT: 'stately',
      INSPECT_PORT: String(inspectPort),
      API_KEYS: '',
    });
    // As root (CI) Chromium refuses its sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("shows the saga's actor, its events and its final state in the inspector page", async () => {
    const bridge = `http://127.0.0.1:${inspectPort}`;
    expect(service.output()).toContain(bridge);

    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(new URL(request.url()).origin));
    await page.route('https://stately.ai/**', (route) =>
      route.fulfill({ contentType: 'text/html', body: STAND_IN }),
    );
    await page.goto(bridge);
    const inspector = page.frameLocator('#inspector');
    await inspector.locator('script').first().waitFor({ state: 'attached' });
    // The bridge page is connected to the service once its WebSocket is open.
    // (`ws` is the page script's own top-level binding, so an expression rather than a function.)
    await page.waitForFunction('ws.readyState === WebSocket.OPEN');

    const placed = await fetch(`${service.url}/orders`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID() },
      body: JSON.stringify({
        user_id: `user-${randomUUID()}`,
        order_type: 'market',
        from_amount: '1000',
        from_currency: 'USDT',
        to_currency: 'BTC',
      }),
    });
    expect(placed.status).toBe(202);
    const { order_id: orderId } = (await placed.json()) as { order_id: string };

    const frame = page.frames().find((f) => f.url().startsWith('https://stately.ai/'));
    if (!frame) throw new Error('the bridge page embeds no stately.ai frame');
    // Everything the inspector got about this order, once its saga has completed.
    const seen = await frame.waitForFunction(
      (id) => {
        const text = JSON.stringify((globalThis as unknown as { received: unknown[] }).received);
        return text.includes(id) && text.includes('OrderCompleted') ? text : false;
      },
      orderId,
      { timeout: 15_000 },
    );
    const received = (await seen.jsonValue()) as string;
    expect(received).toContain('@xstate.actor');
    expect(received).toContain('orderSaga');
    for (const event of ['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'SwapExecuted', 'OrderCompleted'])
      expect(received).toContain(event);
    expect(received).toContain('"completed"');

    // Only the bridge and the (stood-in) inspector were asked for anything.
    expect([...new Set(requested)].sort()).toEqual([bridge, 'https://stately.ai'].sort());
    await page.close();
  });
});
