import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyRing, parseApiKeyList } from '../../src/app/apiKeys.ts';
import type { KeyRing } from '../../src/app/apiKeys.ts';
import { createOrderFeed } from '../../src/app/orderFeed.ts';
import type { OrderFeed } from '../../src/app/orderFeed.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createApiKeyStore } from '../../src/infra/apiKeys.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createOrderFeedRows } from '../../src/infra/orderFeed.ts';
import { testApp } from '../helpers/app.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { until } from '../helpers/wait.ts';
import { dashboardFeedContract, place, readStream } from './dashboard.contract.ts';

dashboardFeedContract('PGlite', async () => {
  const db = await migratedPglite();
  return { db, close: () => db.close() };
});

describe('the dashboard with API keys', () => {
  let db: Database;
  let feed: OrderFeed;
  let ring: KeyRing;
  let app: Hono;
  const alice = `alice-${randomUUID()}`;
  const bob = `bob-${randomUUID()}`;
  const aliceKey = `a-${randomUUID()}`;
  const bobKey = `b-${randomUUID()}`;
  const adminKey = `admin-${randomUUID()}`;
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  beforeAll(async () => {
    db = await migratedPglite();
    ring = createKeyRing({
      store: createApiKeyStore(db),
      configured: parseApiKeyList(`${alice}:${aliceKey},${bob}:${bobKey},*:${adminKey}`, () => undefined),
      logger: silentLogger,
    });
    await ring.start();
    const rows = createOrderFeedRows(db);
    feed = createOrderFeed({ rows, logger: silentLogger });
    app = testApp(db, { auth: ring, dashboard: { rows, feed } });
  });
  afterAll(async () => {
    await feed.stop();
    await ring.stop();
    await db.close();
  });

  it('tells a key who it is, and asks for one without', async () => {
    expect(await (await app.request('/whoami', { headers: bearer(aliceKey) })).json()).toEqual({
      authenticated: true,
      user_id: alice,
      admin: false,
      keys_required: true,
    });
    expect(await (await app.request('/whoami', { headers: bearer(adminKey) })).json()).toEqual({
      authenticated: true,
      user_id: null,
      admin: true,
      keys_required: true,
    });
    // Without a valid key: not a 401 (the page would log an error), but nothing granted either.
    const unknown = { authenticated: false, user_id: null, admin: false, keys_required: true };
    expect(await (await app.request('/whoami')).json()).toEqual(unknown);
    expect(await (await app.request('/whoami', { headers: bearer('nope') })).json()).toEqual(unknown);
    expect(await (await app.request('/whoami', { headers: { authorization: 'Basic x' } })).json()).toEqual(
      unknown,
    );
    // The pages themselves are open: they ask for the key.
    expect((await app.request('/ui')).status).toBe(200);
    expect((await app.request('/ui/assets/dashboard.js')).status).toBe(200);
  });

  it("streams a user's key only its own orders, whatever it asks for", async () => {
    const refused = await app.request(`/ui/stream/orders?user=${bob}`, { headers: bearer(aliceKey) });
    expect(refused.status).toBe(403);

    const aliceStream = readStream(await app.request('/ui/stream/orders', { headers: bearer(aliceKey) }));
    const adminStream = readStream(await app.request('/ui/stream/orders', { headers: bearer(adminKey) }));
    await until(() => aliceStream.messages.length > 0 && adminStream.messages.length > 0, 'both streams');
    const bobs = await place(app, bob, bearer(bobKey));
    const alices = await place(app, alice, bearer(aliceKey));
    await until(() => aliceStream.ids().has(alices), "Alice's order in her stream");
    await until(
      () => adminStream.ids().has(alices) && adminStream.ids().has(bobs),
      'both in the admin stream',
    );
    await aliceStream.stop();
    await adminStream.stop();
    expect([...aliceStream.ids()]).toEqual([alices]);
    expect(aliceStream.messages.at(-1)?.data.counts ?? aliceStream.messages[0]?.data.counts).toBeDefined();
  });

  it("keeps every user's list to admin keys", async () => {
    const res = await app.request('/admin/orders', { headers: bearer(aliceKey) });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/GET \/users\/\{id\}\/orders/);
    expect((await app.request('/admin/orders', { headers: bearer(adminKey) })).status).toBe(200);
  });
});
