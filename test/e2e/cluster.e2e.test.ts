import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_URL } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { ordersEnded, submitRetrying } from '../helpers/clients.ts';
import {
  clusterOrder,
  drained,
  runClusterOrders,
  setTelegramChat,
  startCluster,
  until,
} from '../helpers/cluster.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { Cluster } from '../helpers/cluster.ts';
import { startTelegramEmulator } from '../helpers/notifyPeers.ts';
import type { TelegramEmulator } from '../helpers/notifyPeers.ts';

/** `npm run check` on the stopped cluster's database and queues: every guarantee holds. */
async function expectNoViolations(cluster: Cluster): Promise<string> {
  const { code, report } = await cluster.check();
  expect(report).toContain('zero violations');
  expect(code).toBe(0);
  return report;
}

// Real processes against the real PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL.
describe.runIf(DATABASE_URL && AMQP_URL)('the service as separate processes through RabbitMQ', () => {
  const servers = { databaseUrl: DATABASE_URL ?? '', amqpUrl: AMQP_URL ?? '' };
  // The Bot API emulator of telegram-test-api; each test's bot has a token of its own.
  let emulator: TelegramEmulator;
  beforeAll(async () => {
    emulator = await startTelegramEmulator();
  });
  afterAll(async () => {
    await emulator.stop();
  });
  const bot = () => ({ apiRoot: emulator.apiRoot, token: `${Math.floor(Math.random() * 1e9)}:cluster` });

  it('carries the original order through RabbitMQ with every role in one process, and drains', async () => {
    const telegram = bot();
    const cluster = await startCluster({
      ...servers,
      telegram,
      processes: [['api', 'relay', 'saga', 'notifier']],
    });
    try {
      await setTelegramChat(cluster.apiUrl, 'user-123', '4242');
      const res = await fetch(`${cluster.apiUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          user_id: 'user-123',
          from_amount: 1000,
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        }),
      });
      expect(res.status).toBe(202);
      const { order_id } = (await res.json()) as { order_id: string };
      const events = await until(async () => {
        const body = (await (await fetch(`${cluster.apiUrl}/orders/${order_id}/events`)).json()) as {
          events: { event_type: string; version: number }[];
        };
        return body.events.some((e) => e.event_type === 'OrderCompleted') && body.events;
      }, 'the order to complete');
      expect(events.map((e) => [e.event_type, e.version])).toEqual([
        ['OrderAccepted', 1],
        ['PriceQuoted', 2],
        ['SwapExecuting', 3],
        ['SwapExecuted', 4],
        ['OrderCompleted', 5],
      ]);
      // Once drained and stopped, the queues are empty and every guarantee holds.
      await drained(cluster);
      const sent = emulator.sent(telegram.token);
      expect(sent.map((m) => m.chat_id)).toEqual(['4242']);
      expect(sent[0]?.text).toMatch(new RegExp(`^Order ${order_id.slice(0, 8)} completed: 1000 USDT → `));
      for (const service of cluster.services) expect(await service.stop()).toBe(0);
      await expectNoViolations(cluster);
    } finally {
      await cluster.close();
    }
  });

  it('completes every order across api+relay, saga and saga+notifier processes, with a saga process killed mid-run', async () => {
    const telegram = bot();
    const cluster = await startCluster({
      ...servers,
      telegram,
      processes: [['api', 'relay'], ['saga'], ['saga', 'notifier']],
    });
    try {
      const run = runClusterOrders(cluster, { orders: 300, clients: 16 });
      run.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
      // Kill -9 the saga-only process once sagas are under way; its unacked messages go back to
      // the queue and the other saga process resumes them from their events.
      await until(async () => {
        const [row] = await cluster.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM events WHERE event_type = 'OrderCompleted'`,
        );
        return (row?.n ?? 0) >= 30;
      }, '30 completed orders');
      const victim = cluster.services[1];
      expect(victim?.name).toBe('saga');
      await victim?.kill();
      await cluster.startService(['saga']);
      const result = await run;
      expect(result.completed + result.failed).toBe(300);
      // Every 20th order is above the simulated liquidity; the market may also move beyond the
      // slippage bound between a quote and its swap (prices walk with every trade), nothing else.
      const { insufficient_liquidity, slippage_exceeded = 0, ...other } = result.failures;
      expect(insufficient_liquidity).toBe(15);
      expect(other).toEqual({});
      expect(result.completed).toBe(300 - 15 - slippage_exceeded);
      // One Telegram message per order, naming it.
      const sent = emulator.sent(telegram.token);
      expect(sent).toHaveLength(300);
      expect(new Set(sent.map((m) => m.text.slice(0, 14)))).toEqual(
        new Set(result.orderIds.map((id) => `Order ${id.slice(0, 8)}`)),
      );
      for (const service of cluster.services) await service.stop();
      await expectNoViolations(cluster);
    } finally {
      await cluster.close();
    }
  }, 120_000);

  it('finishes the orders through the sweeper while no saga process runs; a saga process started later finds them done', async () => {
    const cluster = await startCluster({
      ...servers,
      processes: [['api', 'relay', 'sweeper']],
      env: { SWEEP_STALE_MS: '300', SWEEP_INTERVAL_MS: '100' },
    });
    try {
      const result = await runClusterOrders(cluster, { orders: 40, clients: 4 });
      expect(result.completed + result.failed).toBe(40);
      expect(result.failures.insufficient_liquidity).toBe(2);
      const [swept] = await cluster.db.query<{ open: number }>(
        'SELECT count(*)::int AS open FROM open_sagas',
      );
      expect(swept?.open).toBe(0);

      // The OrderAccepted messages waited in the queue all along: the orchestrator now takes them,
      // finds every saga finished, and records them as processed.
      await cluster.startService(['saga', 'notifier']);
      await until(async () => {
        const [row] = await cluster.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM processed_events
           WHERE processed_by = 'saga-orchestrator' AND aggregate_id = ANY($1::uuid[])`,
          [result.orderIds],
        );
        return row?.n === 40;
      }, 'the orchestrator to take the 40 waiting messages');
      await drained(cluster);
      for (const service of cluster.services) expect(await service.stop()).toBe(0);
      await expectNoViolations(cluster);
    } finally {
      await cluster.close();
    }
  }, 120_000);

  it('carries every order through a database outage: relay, orchestrator and notifier wait for it, nothing is dead-lettered', async () => {
    const telegram = bot();
    const target = new URL(servers.databaseUrl);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const cluster = await startCluster({
      ...servers,
      telegram,
      databaseHost: `127.0.0.1:${proxy.port}`,
      processes: [['api', 'relay', 'sweeper'], ['saga'], ['saga', 'notifier']],
    });
    const user = randomUUID();
    await setTelegramChat(cluster.apiUrl, user, '777');
    const submitted = submitRetrying(cluster.apiUrl, {
      count: 200,
      clients: 8,
      // The connections are cut as the 51st order is sent, so orders remain for the outage.
      order: (i) => {
        if (i === 50) proxy.cut();
        return clusterOrder(i, user);
      },
    });
    try {
      await until(() => (submitted.statuses[503] ?? 0) >= 5, 'the API to report the outage', 30_000, 10);
      // Longer than the consumers' five deliveries with backoff: the messages must wait, not die.
      await sleep(3_000);
      proxy.restore();
      await submitted.done;
      expect(submitted.ids.size).toBe(200);
      // 409: a key whose request was cut off after its claim, until its lease runs out.
      expect(
        Object.keys(submitted.statuses)
          .filter((status) => status !== '409')
          .sort(),
      ).toEqual(['202', '503']);

      await ordersEnded(cluster.db, submitted.ids);
      await drained(cluster);
      expect(emulator.sent(telegram.token)).toHaveLength(200);
      const [open] = await cluster.db.query<{ n: number }>('SELECT count(*)::int AS n FROM open_sagas');
      expect(open?.n).toBe(0);
      for (const service of cluster.services) expect(await service.stop()).toBe(0);
      const report = await expectNoViolations(cluster);
      expect(report).toContain(`${cluster.prefix}saga.order-accepted.dead=0`);
      expect(report).toContain(`${cluster.prefix}notifications.dead=0`);
    } finally {
      submitted.stop();
      await cluster.close();
      await proxy.close();
    }
  }, 120_000);
});
