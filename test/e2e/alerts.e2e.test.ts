import { describe, expect, it } from 'vitest';
import { DATABASE_URL } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { randomUUID } from 'node:crypto';
import { clusterOrder, runClusterOrders, startCluster, until } from '../helpers/cluster.ts';
import { sample } from '../helpers/metrics.ts';

// Real processes against the real PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL.
describe.runIf(DATABASE_URL && AMQP_URL)('the stuck-saga alert across processes', () => {
  it('fires when the only saga process is killed with -9 mid-run, and clears once a new one has finished every order', async () => {
    const cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      processes: [['api', 'relay', 'sweeper'], ['saga'], ['notifier']],
      env: {
        // Stuck after 3 s without an event; the sweeper looks often, but resumes stalled sagas only
        // after a minute, so that it is the new saga process that finishes them.
        ALERT_STUCK_AFTER_MS: '3000',
        STUCK_AFTER_MS: '3000',
        SWEEP_INTERVAL_MS: '200',
      },
    });
    const metrics = async () => (await fetch(`${cluster.apiUrl}/metrics`)).text();
    const sweeper = cluster.services[0];
    try {
      const run = runClusterOrders(cluster, { orders: 80, clients: 4 });
      run.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
      await until(async () => {
        const [row] = await cluster.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM events WHERE event_type = 'OrderCompleted'`,
        );
        return (row?.n ?? 0) >= 10;
      }, '10 completed orders');
      const victim = cluster.services[1];
      expect(victim?.name).toBe('saga');
      await victim?.kill();
      // However fast the run went, these orders meet no saga process.
      const user = randomUUID();
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${cluster.apiUrl}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(clusterOrder(i, user)),
        });
        expect(res.status).toBe(202);
      }

      // Seen in /metrics (any process: the gauge reads the alerts table) and in the sweeper's log.
      const raised = await until(async () => {
        const text = await metrics();
        return sample(text, 'market_order_saga_alerts_active', { kind: 'saga_stuck' }) === 1 && text;
      }, 'the stuck-saga alert');
      expect(sample(raised, 'market_order_saga_sagas_stuck')).toBeGreaterThan(0);
      expect(sample(raised, 'market_order_saga_alerts_raised_total', { kind: 'saga_stuck' })).toBeGreaterThan(
        0,
      );
      const alertLine = sweeper
        ?.output()
        .split('\n')
        .find((line) => line.includes('"alert":"saga_stuck"'));
      expect(alertLine).toMatch(
        /"level":50.*"msg":"ALERT saga_stuck: \d+ saga\(s\) made no progress for 3000 ms/,
      );

      await cluster.startService(['saga']);
      const result = await run;
      // The run's 80 and the 5 placed after the kill.
      expect(result.completed + result.failed).toBe(85);
      await until(
        async () => sample(await metrics(), 'market_order_saga_alerts_active', { kind: 'saga_stuck' }) === 0,
        'the stuck-saga alert to clear',
      );
      const [rows] = await cluster.db.query<{ open: number; active: number; resolved: number }>(
        `SELECT (SELECT count(*) FROM open_sagas)::int AS open,
                (SELECT count(*) FROM alerts WHERE kind = 'saga_stuck' AND resolved_at IS NULL)::int AS active,
                (SELECT count(*) FROM alerts WHERE kind = 'saga_stuck' AND resolved_at IS NOT NULL)::int AS resolved`,
      );
      expect(rows).toMatchObject({ open: 0, active: 0 });
      expect(rows?.resolved).toBeGreaterThan(0);
    } finally {
      await cluster.close();
    }
  }, 180_000);
});
