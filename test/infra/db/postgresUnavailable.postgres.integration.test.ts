import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseUnavailableError } from '../../../src/app/ports/database.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { postgresDatabase } from '../../../src/infra/db/postgres.ts';
import { testApp } from '../../helpers/app.ts';
import { countRows, DATABASE_URL, migratedPostgres } from '../../helpers/databases.ts';
import { startTcpProxy } from '../../helpers/tcpProxy.ts';
import type { TcpProxy } from '../../helpers/tcpProxy.ts';
import { until } from '../../helpers/wait.ts';

// Needs a PostgreSQL server: DATABASE_URL. The adapter reaches it through a TCP proxy the test
// cuts with resets, as the host of a stopped server answers.
describe.runIf(DATABASE_URL)('the PostgreSQL adapter when the server cannot be reached', () => {
  let proxy: TcpProxy;
  let db: Database;
  beforeAll(async () => {
    await (await migratedPostgres({ max: 1 })).close();
    const target = new URL(DATABASE_URL ?? '');
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(target);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    db = postgresDatabase(viaProxy.toString(), { max: 2 });
  });
  afterAll(async () => {
    proxy?.restore();
    await db?.close();
    await proxy?.close();
  });

  describe('when the network to the server is cut', () => {
    it('rejects statements and transactions with DatabaseUnavailableError, the driver error as its cause', async () => {
      await db.query('SELECT 1');
      proxy.cut('reset');
      try {
        const query = await db.query('SELECT 1').catch((error: unknown) => error);
        const transaction = await db
          .transaction((tx) => tx.query('SELECT 1'))
          .catch((error: unknown) => error);
        for (const error of [query, transaction]) {
          expect(error).toBeInstanceOf(DatabaseUnavailableError);
          expect((error as Error).cause).toMatchObject({ code: expect.any(String) as unknown });
        }
      } finally {
        proxy.restore();
      }
      const back = await until(
        () => db.query<{ one: number }>('SELECT 1 AS one').catch(() => undefined),
        'the adapter to reconnect',
      );
      expect(back).toEqual([{ one: 1 }]);
    });

    it('answers a statement sent at once on the error of the one the cut broke, and gives each later statement its own rows', async () => {
      // One connection, so the retry can only go to the connection whose socket just failed: the
      // pool hands it queries until the socket's close, which comes after its error.
      const viaProxy = new URL(DATABASE_URL ?? '');
      viaProxy.host = `127.0.0.1:${proxy.port}`;
      const single = postgresDatabase(viaProxy.toString(), { max: 1 });
      try {
        await single.query('SELECT 1');
        const broken = single.query('SELECT pg_sleep(5)');
        const retried = broken.then(
          () => 'the broken statement succeeded',
          // As the intake batcher does with the next batch, or a client loop with its retry.
          () =>
            single.query('SELECT 2').then(
              () => 'answered',
              (error: unknown) => error,
            ),
        );
        // Cut once the sleep is on the wire: a statement in flight when the network fails.
        await until(
          async () =>
            (
              await db.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'`,
              )
            )[0]?.n === 1,
          'the sleep to run',
          10_000,
          10,
        );
        proxy.cut('reset');
        let answer: unknown;
        try {
          // Bounded: before the fix the retry never settled, and the test would hang instead.
          answer = await Promise.race([
            retried,
            new Promise((resolve) => setTimeout(() => resolve('never answered'), 10_000).unref()),
          ]);
        } finally {
          proxy.restore();
        }
        expect(answer).toBeInstanceOf(DatabaseUnavailableError);

        // Back: the connection answers every statement with its own rows, none taken for another's.
        await until(() => single.query('SELECT 1').catch(() => undefined), 'the adapter to reconnect');
        const rows = await Promise.all(
          [3, 4, 5, 6].map((n) => single.query<{ n: number }>('SELECT $1::int AS n', [n])),
        );
        expect(rows).toEqual([[{ n: 3 }], [{ n: 4 }], [{ n: 5 }], [{ n: 6 }]]);
      } finally {
        proxy.restore();
        await single.close();
      }
    });

    it('reports the API unhealthy (503) until the server is back', async () => {
      const app = testApp(db);
      proxy.cut('reset');
      let health: Response;
      try {
        health = await app.request('/health');
      } finally {
        proxy.restore();
      }
      expect(health.status).toBe(503);
      expect(await health.json()).toEqual({ status: 'unavailable', database: 'postgres' });
      await until(async () => (await app.request('/health')).status === 200, 'the API to be healthy');
    });

    it('answers POST /orders with 503 and Retry-After: 1, and places the order once when retried', async () => {
      const app = testApp(db);
      const key = randomUUID();
      const post = () =>
        app.request('/orders', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({
            user_id: `user-${randomUUID()}`,
            from_amount: '100',
            from_currency: 'USDT',
            to_currency: 'BTC',
            order_type: 'market',
          }),
        });
      proxy.cut('reset');
      let refused: Response;
      try {
        refused = await post();
      } finally {
        proxy.restore();
      }
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await refused.json()).toMatchObject({
        type: 'urn:market-order-saga:problem:database-unavailable',
      });

      const placed = await until(async () => {
        const response = await post();
        return response.status === 202 && ((await response.json()) as { order_id: string });
      }, 'the retried order to be accepted');
      expect(await countRows(db, 'events', [placed.order_id])).toBe(1);
    });
  });
});
