import { describe, expect, it } from 'vitest';
import { startCluster, until } from '../helpers/cluster.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { sample } from '../helpers/metrics.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';

interface ReadyBody {
  status: string;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

// Real processes against the real PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL. The service
// reaches both through TCP proxies the test cuts: the shared servers keep running.
describe.runIf(DATABASE_URL && AMQP_URL)('GET /ready of a running service', () => {
  it('turns 503 naming the broker, then the database, while each is cut, and 200 once each is back', async () => {
    const databaseTarget = new URL(DATABASE_URL ?? '');
    const brokerTarget = new URL(AMQP_URL ?? '');
    const database = await startTcpProxy({
      host: databaseTarget.hostname,
      port: Number(databaseTarget.port || 5432),
    });
    const broker = await startTcpProxy({
      host: brokerTarget.hostname,
      port: Number(brokerTarget.port || 5672),
    });
    const cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      databaseHost: `127.0.0.1:${database.port}`,
      amqpHost: `127.0.0.1:${broker.port}`,
      processes: [['api', 'relay', 'saga', 'notifier', 'sweeper']],
    });
    const ready = async () => {
      const res = await fetch(`${cluster.apiUrl}/ready`);
      return { status: res.status, body: (await res.json()) as ReadyBody };
    };
    try {
      expect(await ready()).toEqual({
        status: 200,
        body: {
          status: 'ready',
          checks: { database: { ok: true }, migrations: { ok: true }, broker: { ok: true } },
        },
      });

      broker.cut('reset');
      let down: ReadyBody | undefined;
      try {
        down = await until(async () => {
          const answer = await ready();
          return answer.status === 503 && answer.body.checks.broker?.detail?.includes('relay') && answer.body;
        }, 'not ready for the broker');
      } finally {
        broker.restore();
      }
      expect(down.status).toBe('not_ready');
      expect(down.checks.database).toEqual({ ok: true });
      expect(down.checks.broker?.detail).toMatch(/^not connected: (relay|saga consumer|notifier consumer)/);
      await until(async () => (await ready()).status === 200, 'ready once the broker is back');

      database.cut('reset');
      try {
        const answer = await until(async () => {
          const now = await ready();
          return now.status === 503 && now;
        }, 'not ready for the database');
        expect(answer.body.checks.database?.ok).toBe(false);
        expect(answer.body.checks.database?.detail).toMatch(/^unreachable/);
        // /metrics still answers, saying the database could not be read.
        const metrics = await (await fetch(`${cluster.apiUrl}/metrics`)).text();
        expect(sample(metrics, 'market_order_saga_database_up')).toBe(0);
      } finally {
        database.restore();
      }
      await until(async () => (await ready()).status === 200, 'ready once the database is back');
    } finally {
      broker.restore();
      database.restore();
      await cluster.close();
      await Promise.all([database.close(), broker.close()]);
    }
  }, 120_000);
});
