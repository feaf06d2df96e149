import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { createRabbitConsumer } from '../../src/infra/bus/rabbit/rabbitConsumer.ts';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createReadinessProbe } from '../../src/infra/readiness.ts';
import { createServiceMetrics } from '../../src/infra/metrics.ts';
import { sample } from '../helpers/metrics.ts';
import { testApp } from '../helpers/app.ts';
import { DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { TcpProxy } from '../helpers/tcpProxy.ts';
import { until } from '../helpers/wait.ts';

interface ReadyBody {
  status: 'ready' | 'not_ready';
  checks: Record<string, { ok: boolean; detail?: string }>;
}

/** A TCP proxy to the host and port of `url`, and `url` through it. */
async function proxied(url: string, defaultPort: number): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) || defaultPort });
  target.host = `127.0.0.1:${proxy.port}`;
  return { proxy, url: target.toString() };
}

// Needs PostgreSQL (DATABASE_URL) and, for the broker's part, RabbitMQ (AMQP_URL). The service's
// connections go through TCP proxies the test cuts: the shared servers keep running.
describe.runIf(DATABASE_URL)('GET /ready', () => {
  let database: { proxy: TcpProxy; url: string };
  let db: Database;
  beforeAll(async () => {
    await (await migratedPostgres({ max: 1 })).close();
    database = await proxied(DATABASE_URL ?? '', 5432);
    db = postgresDatabase(database.url, { max: 2 });
  });
  afterAll(async () => {
    database?.proxy.restore();
    await db?.close();
    await database?.proxy.close();
  });

  const ready = async (app: ReturnType<typeof testApp>) => {
    const res = await app.request('/ready');
    return { status: res.status, body: (await res.json()) as ReadyBody };
  };

  describe('when PostgreSQL becomes unreachable and comes back', () => {
    it('answers 503 naming the database, then 200 again; /metrics still answers, with database_up 0', async () => {
      const metrics = createServiceMetrics({
        db,
        stuckAfterMs: 60_000,
        logger: silentLogger,
        processMetrics: false,
        databaseTimeoutMs: 1_000,
      });
      const app = testApp(db, {
        readiness: createReadinessProbe({ db, timeoutMs: 1_000 }),
        metricsEndpoint: metrics,
      });
      const databaseUp = async () =>
        sample(await (await app.request('/metrics')).text(), 'market_order_saga_database_up');
      expect(await databaseUp()).toBe(1);
      expect(await ready(app)).toEqual({
        status: 200,
        body: { status: 'ready', checks: { database: { ok: true }, migrations: { ok: true } } },
      });
      database.proxy.cut('reset');
      try {
        const down = await ready(app);
        expect(down.status).toBe(503);
        expect(down.body.status).toBe('not_ready');
        expect(down.body.checks.database?.ok).toBe(false);
        expect(down.body.checks.database?.detail).toMatch(/^unreachable/);
        expect(down.body.checks.migrations?.ok).toBe(false);
        expect(await databaseUp()).toBe(0);
      } finally {
        database.proxy.restore();
      }
      await until(async () => (await ready(app)).status === 200, 'ready again');
      expect(await databaseUp()).toBe(1);
    });

    it('answers 503 within its timeout when the network drops silently', async () => {
      const app = testApp(db, { readiness: createReadinessProbe({ db, timeoutMs: 500 }) });
      expect((await ready(app)).status).toBe(200);
      // `close`: connections end and new ones are refused; the answer must not hang.
      database.proxy.cut('close');
      try {
        const started = Date.now();
        expect((await ready(app)).status).toBe(503);
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        database.proxy.restore();
      }
      await until(async () => (await ready(app)).status === 200, 'ready again');
    });
  });

  describe.runIf(AMQP_URL)('when RabbitMQ becomes unreachable and comes back', () => {
    const topo = topology({ prefix: `test.ready.${randomUUID().slice(0, 8)}.` });
    let broker: { proxy: TcpProxy; url: string };
    beforeAll(async () => {
      broker = await proxied(AMQP_URL ?? '', 5672);
    });
    afterAll(async () => {
      broker?.proxy.restore();
      await broker?.proxy.close();
      const connection = await connect(AMQP_URL ?? '');
      await deleteTopology(await connection.createChannel(), topo).catch(() => {});
      await connection.close();
    });

    it('answers 503 naming the consumer whose connection is down, then 200 once it reconnected', async () => {
      const queue = topo.queues[0]?.name ?? '';
      const consumer = createRabbitConsumer({
        amqpUrl: broker.url,
        logger: silentLogger,
        consumer: { name: 'ready-test', eventTypes: ['OrderAccepted'], handle: () => Promise.resolve() },
        queue,
        topology: topo,
        reconnectMinDelayMs: 20,
        reconnectMaxDelayMs: 200,
      });
      await consumer.start();
      try {
        const probe = createReadinessProbe({
          db,
          broker: () => [
            {
              name: 'saga consumer',
              get connected() {
                return consumer.connected;
              },
            },
          ],
        });
        const app = testApp(db, { readiness: probe });
        expect((await ready(app)).body.checks.broker).toEqual({ ok: true });

        broker.proxy.cut('reset');
        let down: ReadyBody | undefined;
        try {
          down = await until(async () => {
            const answer = await ready(app);
            return answer.status === 503 && answer.body;
          }, 'not ready');
        } finally {
          broker.proxy.restore();
        }
        expect(down.checks).toEqual({
          database: { ok: true },
          migrations: { ok: true },
          broker: { ok: false, detail: 'not connected: saga consumer' },
        });
        await until(async () => (await ready(app)).status === 200, 'ready again');
      } finally {
        await consumer.stop();
      }
    });
  });
});
