import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMarket } from '../helpers/cluster.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { runCheckCommand, startService } from '../helpers/server.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { TcpProxy } from '../helpers/tcpProxy.ts';
import { until } from '../helpers/wait.ts';
import { ordersEnded, submitRetrying } from '../helpers/clients.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];
const ORDERS = 200;
const tail = (output: string) => output.split('\n').slice(-40).join('\n');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Needs a PostgreSQL server: DATABASE_URL. The service reaches it through a TCP proxy the test
// cuts, as a network partition or a database restart would; a database of its own, and a market
// process whose ledger `check` reads.
describe.runIf(DATABASE_URL)('the service while its database becomes unreachable for a while', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let proxy: TcpProxy;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 2 });
    const target = new URL(scratch.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  });
  afterAll(async () => {
    await proxy?.close();
    await scratch?.drop();
  });

  it('answers 503 with Retry-After meanwhile, and every order its clients retry ends once', async () => {
    const market = await startMarket();
    try {
      await ordersThroughAnOutage(market.url);
    } finally {
      await market.stop();
    }
  }, 120_000);

  async function ordersThroughAnOutage(marketUrl: string): Promise<void> {
    const viaProxy = new URL(scratch.url);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const service = await startService(NODE, {
      DATABASE_URL: viaProxy.toString(),
      DATABASE_POOL_SIZE: '8',
      PRICE_SERVICE_URL: marketUrl,
      TRADE_WORKER_URL: marketUrl,
      SWEEP_STALE_MS: '2000',
      SWEEP_INTERVAL_MS: '500',
    });
    const user = `user-${randomUUID()}`;
    const submitted = submitRetrying(service.url, {
      count: ORDERS,
      clients: 8,
      // The connection is cut as the 51st order is sent: whatever the machine's speed, orders
      // remain to be placed during the outage.
      order: (i) => {
        if (i === 50) proxy.cut();
        return {
          user_id: user,
          from_amount: '250',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        };
      },
    });
    const { ids, statuses, retryAfter } = submitted;
    let stopped: number | null | 'still running';
    try {
      await until(() => (statuses[503] ?? 0) >= 5, 'the API to report the outage', 30_000, 10);
      proxy.restore();
      // Bounded, so that a client stuck retrying says what it kept getting (and what the service
      // logged) instead of running into the test's timeout.
      let finished = false;
      void submitted.done.then(() => (finished = true));
      await until(() => finished, 'every order to be placed after the outage', 60_000).catch(
        (error: unknown) => {
          throw new Error(
            `${(error as Error).message}; answers so far ${JSON.stringify(statuses)}, ` +
              `${ids.size} orders placed; the service's last lines:\n${tail(service.output())}`,
          );
        },
      );

      expect(ids.size).toBe(ORDERS);
      // 409: a key whose request was cut off after its claim, until its lease runs out.
      expect(
        Object.keys(statuses)
          .filter((status) => status !== '409')
          .sort(),
      ).toEqual(['202', '503']);
      expect([...retryAfter]).toEqual(['1']);
      await ordersEnded(scratch.db, ids, 30_000);
      // And drained: on the in-process bus a row is published once every consumer (the
      // notifier too) has handled it. Stopping earlier is safe, but check would see a backlog.
      await until(async () => {
        const [row] = await scratch.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM outbox WHERE NOT published',
        );
        return row?.n === 0;
      }, 'the outbox to drain');
    } finally {
      submitted.stop();
      // A service that does not drain within 20 s is killed, and named below.
      stopped = await Promise.race([service.stop(), sleep(20_000).then(() => 'still running' as const)]);
      if (stopped === 'still running') await service.kill();
    }
    if (stopped === 'still running') {
      throw new Error(`the service did not stop on SIGTERM; its last lines:\n${tail(service.output())}`);
    }
    expect(stopped).toBe(0);

    const check = runCheckCommand({ DATABASE_URL: scratch.url, TRADE_WORKER_URL: marketUrl });
    expect(check.stdout).toContain(`${ORDERS} orders`);
    expect(check.stdout).toContain('against'); // guarantee 2 read the venue's ledger
    expect(check.stdout).toContain('zero violations');
    expect(check.status).toBe(0);
  }
});
