import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { currencies } from '../../src/domain/money.ts';
import { createServiceMetrics } from '../../src/infra/metrics.ts';
import type { ServiceMetrics } from '../../src/infra/metrics.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSimulatedMarket } from '../../src/infra/venues/simulatedMarket.ts';
import { wireOrderFlow } from '../../src/wiring.ts';
import type { Authenticator } from '../../src/http/auth.ts';
import { testApp } from '../helpers/app.ts';
import { counted, migratedPglite } from '../helpers/databases.ts';
import { sample } from '../helpers/metrics.ts';
import { FAST_SETTINGS } from '../helpers/saga.ts';
import { until } from '../helpers/wait.ts';

describe('GET /metrics', () => {
  let db: Database;
  let app: Hono;
  let metrics: ServiceMetrics;
  let scrapeStatements: { statements: number };
  let flow: ReturnType<typeof wireOrderFlow>;

  beforeAll(async () => {
    db = await migratedPglite();
    // The scrape's database reads go through a counting wrapper of the real database.
    const scraped = counted(db);
    scrapeStatements = scraped.count;
    metrics = createServiceMetrics({ db: scraped.db, stuckAfterMs: 60_000, logger: silentLogger });
    const market = createSimulatedMarket({ seed: 7 });
    flow = wireOrderFlow({
      db,
      logger: silentLogger,
      prices: market.priceService,
      venue: market.venue,
      currencies: currencies(),
      settings: FAST_SETTINGS,
      metrics,
    });
    flow.delivery.start();
    app = testApp(db, { orders: flow.orders, metrics, metricsEndpoint: metrics });
  });
  afterAll(async () => {
    await flow?.delivery.stop();
    await db?.close();
  });

  const scrape = async () => {
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  const placeOrder = async (amount: string) =>
    await app.request('/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user_id: `user-${randomUUID()}`,
        from_amount: amount,
        from_currency: 'USDT',
        to_currency: 'BTC',
        order_type: 'market',
      }),
    });

  describe('when orders are placed and their sagas run', () => {
    it('counts them accepted, completed or failed, times their steps and the requests by route', async () => {
      const before = await scrape();
      const posted = await Promise.all(['100', '200', '300'].map(placeOrder));
      expect(posted.map((r) => r.status)).toEqual([202, 202, 202]);
      const ids = await Promise.all(
        posted.map(async (r) => ((await r.json()) as { order_id: string }).order_id),
      );
      const unknown = await app.request(`/orders/${randomUUID()}`);
      expect(unknown.status).toBe(404);
      await until(async () => {
        const rows = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM events
           WHERE aggregate_id = ANY($1::uuid[]) AND event_type IN ('OrderCompleted', 'OrderFailed')`,
          [ids],
        );
        return rows[0]?.n === 3;
      }, 'the three orders to end');

      const after = await scrape();
      const moved = (name: string, labels: Record<string, string> = {}) =>
        sample(after, name, labels) - sample(before, name, labels);
      expect(moved('market_order_saga_orders_accepted_total')).toBe(3);
      expect(
        moved('market_order_saga_orders_completed_total') + moved('market_order_saga_orders_failed_total'),
      ).toBe(3);
      expect(moved('market_order_saga_saga_step_duration_seconds_count', { step: 'quotingPrice' })).toBe(3);
      expect(moved('market_order_saga_consumer_deliveries_total', { consumer: 'saga-orchestrator' })).toBe(3);
      // The route's pattern, never the path with its id.
      expect(
        moved('market_order_saga_http_request_duration_seconds_count', {
          method: 'POST',
          route: '/orders',
          status: '202',
        }),
      ).toBe(3);
      expect(
        moved('market_order_saga_http_request_duration_seconds_count', {
          route: '/orders/:id',
          status: '404',
        }),
      ).toBe(1);
      expect(after).not.toContain(ids[0]);
      // Gauges read from the database: nothing open, nothing waiting in the outbox.
      expect(sample(after, 'market_order_saga_sagas_open')).toBe(0);
      // The delivery marks the last rows published just after the sagas end.
      await until(
        async () => sample(await scrape(), 'market_order_saga_outbox_backlog') === 0,
        'an empty outbox',
      );
      expect(sample(after, 'market_order_saga_alerts_active', { kind: 'saga_stuck' })).toBe(0);
      // And the process's own: memory, CPU, event loop.
      expect(sample(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    });

    it('reads the database once per scrape, however many orders there were', async () => {
      const before = scrapeStatements.statements;
      await scrape();
      expect(scrapeStatements.statements - before).toBe(1);
    });
  });

  describe('when API keys are configured', () => {
    const keys: Authenticator = {
      isOpen: () => false,
      authenticate: (token) =>
        token === 'admin-secret'
          ? { kind: 'admin', keyId: 'admin' }
          : token === 'user-secret'
            ? { kind: 'user', userId: 'user-1' }
            : undefined,
    };
    const guarded = () => testApp(db, { metrics, metricsEndpoint: metrics, auth: keys });
    const get = (token?: string) =>
      guarded().request('/metrics', token ? { headers: { authorization: `Bearer ${token}` } } : {});

    it('answers an admin key, and refuses no key (401) and a user key (403)', async () => {
      expect((await get('admin-secret')).status).toBe(200);
      expect((await get()).status).toBe(401);
      expect((await get('user-secret')).status).toBe(403);
    });

    it('leaves /ready open, like /health, for probes that carry no key', async () => {
      const res = await guarded().request('/ready');
      expect(res.status).toBe(200);
    });
  });
});
