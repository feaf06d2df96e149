import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../cli/run.ts';
import { ordersEnded } from '../helpers/clients.ts';
import { clusterOrder, setTelegramChat, startCluster, startProcess, until } from '../helpers/cluster.ts';
import type { Cluster } from '../helpers/cluster.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { crashedAt } from '../helpers/failpoints.ts';
import { startTelegramEmulator } from '../helpers/notifyPeers.ts';
import type { TelegramEmulator } from '../helpers/notifyPeers.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { freePort } from '../helpers/server.ts';

/*
 * The intake's, the notifier's and the operator commands' failpoints, each in a process of its
 * own beside a cluster that runs the rest (api, relay, saga; no sweeper, so failed orders wait for
 * `reconcile`): the process dies at its point, and what it leaves is what that point stands for.
 * The relay's and the saga's are in failpointsSaga.e2e.test.ts.
 */
describe.runIf(DATABASE_URL && AMQP_URL)('processes killed at their failpoints', () => {
  let cluster: Cluster;
  let emulator: TelegramEmulator;
  const telegram = { apiRoot: '', token: `${Math.floor(Math.random() * 1e9)}:failpoints` };

  beforeAll(async () => {
    emulator = await startTelegramEmulator();
    cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      processes: [['api', 'relay', 'saga']],
      telegram: { ...telegram, apiRoot: emulator.apiRoot },
    });
  });
  afterAll(async () => {
    await cluster?.close();
    await emulator?.stop();
  });

  /** Places an order through the cluster's api; resolves with its id. */
  async function place(order: object, headers: Record<string, string> = {}, url = cluster.apiUrl) {
    const response = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(order),
    });
    expect(response.status).toBe(202);
    return response;
  }
  const orderIdOf = async (response: Response) => ((await response.json()) as { order_id: string }).order_id;

  it('api.after-commit: the order is stored, its client gets no answer, and a retry with its key gets it', async () => {
    const port = await freePort();
    const api = startProcess('api (api.after-commit)', ['serve', '--failpoints', 'api.after-commit'], {
      ...cluster.env,
      ROLES: 'api',
      PORT: String(port),
    });
    cluster.services.push(api);
    const url = `http://127.0.0.1:${port}`;
    await until(() => {
      if (api.child.exitCode !== null) throw new Error(`the api exited:\n${api.output()}`);
      return fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      );
    }, 'the api to serve');

    const user = randomUUID();
    const order = clusterOrder(0, user);
    const key = { 'idempotency-key': randomUUID() };
    const answer = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: JSON.stringify(order),
    }).then(
      (response) => `answered ${response.status}`,
      () => 'no answer',
    );
    expect(answer).toBe('no answer');
    await crashedAt(api, 'api.after-commit');

    const stored = await cluster.db.query<{ order_id: string }>(
      `SELECT aggregate_id::text AS order_id FROM events
       WHERE event_type = 'OrderAccepted' AND event_data->>'user_id' = $1`,
      [user],
    );
    expect(stored).toHaveLength(1);
    const retry = await place(order, key);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    const orderId = await orderIdOf(retry);
    expect(orderId).toBe(stored[0]?.order_id);
    await ordersEnded(cluster.db, [orderId]);
  }, 120_000);

  it('notifier.after-send: Telegram has the message, the notification is not recorded sent', async () => {
    const user = randomUUID();
    await setTelegramChat(cluster.apiUrl, user, '4242');
    const orderId = await orderIdOf(await place(clusterOrder(0, user)));
    await ordersEnded(cluster.db, [orderId]);

    const notifier = startProcess('notifier (notifier.after-send)', ['serve'], {
      ...cluster.env,
      ROLES: 'notifier',
      PORT: String(await freePort()),
      FAILPOINTS: 'notifier.after-send',
    });
    cluster.services.push(notifier);
    await crashedAt(notifier, 'notifier.after-send');

    expect(emulator.sent(telegram.token).map((m) => m.chat_id)).toEqual(['4242']);
    const rows = await cluster.db.query<{ channel: string; status: string }>(
      'SELECT channel, status FROM notifications WHERE order_id = $1 ORDER BY channel',
      [orderId],
    );
    expect(rows).toContainEqual({ channel: 'telegram', status: 'sending' });
  }, 120_000);

  it('reconcile.mid-run: some failed orders are settled with the venue, the rest are not', async () => {
    // Above the market's liquidity: each fails after its swap was sent, so reconcile asks about it.
    // Nine, one more than the reconciler asks about at once: the ninth is asked only after an
    // answer was recorded, and the first recorded answer kills the process.
    const user = randomUUID();
    const orderIds: string[] = [];
    for (let i = 0; i < 9; i++) orderIds.push(await orderIdOf(await place(clusterOrder(19, user))));
    await ordersEnded(cluster.db, orderIds);
    const settled = async () => {
      const [row] = await cluster.db.query<{ settled: number; due: number }>(
        `SELECT count(*) FILTER (WHERE venue_outcome IS NOT NULL)::int AS settled,
                count(*) FILTER (WHERE venue_outcome IS NULL)::int AS due
         FROM swap_reconciliations WHERE order_id = ANY($1::uuid[])`,
        [orderIds],
      );
      return row;
    };
    expect(await settled()).toEqual({ settled: 0, due: 9 });

    const env = { DATABASE_URL: cluster.databaseUrl, TRADE_WORKER_URL: cluster.marketUrl ?? '' };
    const crashed = await cli(['reconcile'], { ...env, FAILPOINTS: 'reconcile.mid-run' });
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    expect(crashed.stderr).toContain('failpoint reconcile.mid-run: crash (hit 1)');
    expect(crashed.stdout).toBe('');
    const midway = await settled();
    expect(midway?.settled).toBeGreaterThanOrEqual(1);
    expect(midway?.due).toBeGreaterThanOrEqual(1);

    // The dead run's claims hold its orders for 30 s; as if that time had passed:
    await cluster.db.query(
      `UPDATE swap_reconciliations SET checked_at = checked_at - interval '1 minute'
       WHERE order_id = ANY($1::uuid[])`,
      [orderIds],
    );
    const rerun = await cli(['reconcile'], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await settled()).toEqual({ settled: 9, due: 0 });
  }, 120_000);

  it('projection.mid-batch: the live read models are untouched, and the next rebuild starts over', async () => {
    const views = async () => {
      const [row] = await cluster.db.query<{ orders: string; positions: string; next: boolean }>(
        `SELECT (SELECT md5(string_agg(o::text, ',' ORDER BY o.order_id)) FROM orders_view o) AS orders,
                (SELECT md5(string_agg(p::text, ',' ORDER BY p.position_id)) FROM positions_view p) AS positions,
                to_regclass('orders_view_next') IS NOT NULL AS next`,
      );
      return row;
    };
    const before = await views();
    const env = { DATABASE_URL: cluster.databaseUrl };
    const crashed = await cli(['rebuild-projections'], { ...env, FAILPOINTS: 'projection.mid-batch' });
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    expect(crashed.stderr).toContain('failpoint projection.mid-batch: crash (hit 1)');
    expect(await views()).toEqual({ ...before, next: true });

    const rerun = await cli(['rebuild-projections'], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/rows differed: {2}0\n/);
    expect(await views()).toEqual({ ...before, next: false });
  }, 120_000);
});
