import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { serveHttp } from '../../src/infra/server.ts';
import type { RunningServer } from '../../src/infra/server.ts';
import { testApp } from '../helpers/app.ts';
import { migratedPglite } from '../helpers/databases.ts';

/** Debian's Chromium (`apt-get install chromium`); without it this file is skipped. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe.skipIf(!existsSync(CHROMIUM))('the API reference in a browser', () => {
  let db: Database;
  let server: RunningServer;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    db = await migratedPglite();
    server = await serveHttp(testApp(db).fetch, { host: '127.0.0.1', port: 0 });
    origin = `http://127.0.0.1:${server.port}`;
    // As root (CI) Chromium refuses its sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await db?.close();
  });

  it('shows every operation from local files only, and places the example order from it', async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(`${origin}/docs`);
    await page.locator('#operations-orders-placeOrder').waitFor();
    const documented = (await (await fetch(`${origin}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.values(documented.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    expect(await page.locator('.opblock').count()).toBe(operations);

    // "Try it out" with the document's example: the original design's order.
    await page.locator('#operations-orders-placeOrder .opblock-summary').click();
    await page.getByRole('button', { name: 'Try it out' }).click();
    await page.getByRole('button', { name: 'Execute' }).click();
    const status = page.locator(
      '#operations-orders-placeOrder .live-responses-table tbody .response-col_status',
    );
    await expect.poll(() => status.first().textContent(), { timeout: 10_000 }).toMatch(/^\s*202/);
    const body = await page
      .locator('#operations-orders-placeOrder .live-responses-table tbody .response-col_description pre')
      .first()
      .textContent();
    expect(body).toMatch(/"status": "pending"/);

    expect(requested.filter((url) => new URL(url).origin !== origin && !url.startsWith('data:'))).toEqual([]);
    expect(problems).toEqual([]);
    if (process.env.DOCS_SCREENSHOT)
      await page.screenshot({ path: process.env.DOCS_SCREENSHOT, fullPage: false });
    await page.close();
  });
});
