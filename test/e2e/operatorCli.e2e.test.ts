import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueStates } from '../../src/ops/checkCommand.ts';
import { cli, jsonOf } from '../cli/run.ts';
import type { CliRun } from '../cli/run.ts';
import { startCluster, startProcess } from '../helpers/cluster.ts';
import type { Cluster, ClusterProcess } from '../helpers/cluster.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { freePort, startService } from '../helpers/server.ts';
import type { ServiceProcess } from '../helpers/server.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { TcpProxy } from '../helpers/tcpProxy.ts';
import { until } from '../helpers/wait.ts';

/*
 * The operator's command line (`sagas …`, `dlq …`) against a service really running as a process
 * of its own, with API keys configured: what each command prints with --json, its exit code, and
 * what the service then shows of the order. The venue, when it matters, is a `market` process of
 * its own, so that the test can read its ledger and cut the service off from it.
 */

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

interface Order {
  readonly order_id: string;
  readonly status: string;
  readonly failure_reason: string | null;
  readonly tx_hash: string | null;
  readonly version: number;
}

interface SagaSummary {
  readonly order_id: string;
  readonly status: string;
  readonly state: string;
  readonly pending_step: string | null;
  readonly stuck: boolean;
}

interface SagaDetail extends SagaSummary {
  readonly history: readonly { stream: string; event_type: string }[];
}

interface LedgerEntry {
  readonly idempotency_key: string;
}

/** A user, their key and the admin key of a service started for one test. */
function keys() {
  const user = `trader-${randomUUID().slice(0, 8)}`;
  const userSecret = `user-${randomUUID()}`;
  const adminSecret = `admin-${randomUUID()}`;
  return { user, userSecret, adminSecret, API_KEYS: `${user}:${userSecret},*:${adminSecret}` };
}

/** The public API at `url`, as the user whose key is `secret`. */
function client(url: string, secret: string) {
  const headers = { authorization: `Bearer ${secret}` };
  return {
    async place(user: string): Promise<string> {
      const res = await fetch(`${url}/orders`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({
          user_id: user,
          from_amount: '100',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { order_id: string }).order_id;
    },
    async order(orderId: string): Promise<Order> {
      const res = await fetch(`${url}/orders/${orderId}`, { headers });
      expect(res.status).toBe(200);
      return (await res.json()) as Order;
    },
  };
}

/** `market-order-saga <args> --url <url>` with `key` as MOS_API_KEY. */
function operator(url: string, key: string | undefined) {
  return (...args: string[]): Promise<CliRun> => cli([...args, '--url', url], { MOS_API_KEY: key });
}

/** What the command did, for a failing assertion's message. */
const shown = (run: CliRun) => `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

describe('the operator command line against the embedded service', () => {
  it('lists and shows a completed saga, refuses to cancel it, and knows no other order', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-cli-e2e-'));
    const { user, userSecret, adminSecret, API_KEYS } = keys();
    try {
      const service = await startService(NODE, { DATA_DIR: dataDir, DATABASE_URL: '', API_KEYS });
      try {
        const orders = client(service.url, userSecret);
        const orderId = await orders.place(user);
        await until(async () => (await orders.order(orderId)).status === 'completed', 'the order completed');
        const admin = operator(service.url, adminSecret);

        const listed = await admin('sagas', 'list', '--user', user, '--json');
        expect(listed.code, shown(listed)).toBe(0);
        expect(jsonOf(listed)).toEqual({
          sagas: [
            expect.objectContaining({
              order_id: orderId,
              user_id: user,
              status: 'completed',
              state: 'completed',
              pending_step: null,
              stuck: false,
            }),
          ],
          next_cursor: null,
        });

        const show = await admin('sagas', 'show', orderId, '--json');
        expect(show.code, shown(show)).toBe(0);
        const detail = jsonOf<SagaDetail>(show);
        expect(detail).toMatchObject({ order_id: orderId, status: 'completed', deadline: null });
        const types = detail.history.map((e) => e.event_type);
        expect(types[0]).toBe('OrderAccepted');
        expect(types).toContain('SwapExecuted');
        expect(types.at(-1)).toBe('OrderCompleted');
        expect(detail.history.some((e) => e.stream === 'position')).toBe(true);

        const cancel = await admin('sagas', 'cancel', orderId, '--reason', 'x');
        expect(cancel.code, shown(cancel)).toBe(5);
        expect(cancel.stderr).toMatch(/already ended/);
        expect(await orders.order(orderId)).toMatchObject({ status: 'completed', failure_reason: null });

        const unknown = await admin('sagas', 'show', randomUUID());
        expect(unknown.code, shown(unknown)).toBe(4);
        expect(unknown.stdout).toBe('');

        const asUser = await operator(service.url, userSecret)('sagas', 'list', '--json');
        expect(asUser.code, shown(asUser)).toBe(6);
        expect(asUser.stdout).toBe('');
        const anonymous = await operator(service.url, undefined)('dlq', 'list', '--json');
        expect(anonymous.code, shown(anonymous)).toBe(6);

        const dlq = await admin('dlq', 'list', '--json');
        expect(dlq.code, shown(dlq)).toBe(0);
        expect(jsonOf(dlq)).toEqual({ messages: [] });
      } finally {
        expect(await service.stop()).toBe(0);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

/*
 * A stuck saga is one whose swap outcome the service does not know. The saga worker runs in a
 * process of its own and reaches the venue through `workerLink`, cut for the rest of the test once
 * its sagas are stuck: it keeps resuming them from the broker (a suspended saga's message is
 * delivered again after a backoff) and keeps failing, so only the operator moves them, through the
 * api process, whose own way to the venue (`operatorLink`) the test cuts and restores. Without the
 * split, the worker's next delivery would race the operator's command once the venue is back.
 * Quotes come straight from the market.
 */
describe.runIf(DATABASE_URL && AMQP_URL)(
  'the operator command line on sagas stuck with the venue out of reach',
  () => {
    const { user, userSecret, adminSecret, API_KEYS } = keys();
    let cluster: Cluster;
    let workerLink: TcpProxy;
    let operatorLink: TcpProxy;
    let worker: ClusterProcess;
    let service: ServiceProcess;

    beforeAll(async () => {
      cluster = await startCluster({
        databaseUrl: DATABASE_URL ?? '',
        amqpUrl: AMQP_URL ?? '',
        processes: [],
        env: {
          API_KEYS,
          // Stuck at once; never resumed by a sweeper nor past their deadline during the test.
          STUCK_AFTER_MS: '1',
          SWEEP_STALE_MS: '600000',
          SAGA_DEADLINE_MS: '600000',
          CALL_TIMEOUT_MS: '1000',
        },
      });
      const market = { host: '127.0.0.1', port: Number(new URL(cluster.marketUrl ?? '').port) };
      workerLink = await startTcpProxy(market);
      operatorLink = await startTcpProxy(market);
      worker = startProcess('saga', ['serve'], {
        ...cluster.env,
        ROLES: 'saga',
        PORT: String(await freePort()),
        TRADE_WORKER_URL: `http://127.0.0.1:${workerLink.port}`,
      });
      cluster.services.push(worker);
      service = await startService(NODE, {
        ...cluster.env,
        ROLES: 'api,relay',
        LOG_LEVEL: 'warn',
        TRADE_WORKER_URL: `http://127.0.0.1:${operatorLink.port}`,
      });
      await until(async () => {
        if (worker.child.exitCode !== null) throw new Error(`the saga worker exited:\n${worker.output()}`);
        const states = await queueStates(AMQP_URL ?? '', cluster.prefix).catch(() => []);
        return states.some((q) => q.queue.endsWith('order-accepted') && q.consumers === 1);
      }, 'the saga worker to consume');
    });
    afterAll(async () => {
      const code = await service?.stop();
      await workerLink?.close();
      await operatorLink?.close();
      await cluster?.close();
      expect(code).toBe(0);
    });

    const ledger = async (): Promise<LedgerEntry[]> =>
      ((await (await fetch(`${cluster.marketUrl ?? ''}/simulation`)).json()) as { ledger: LedgerEntry[] })
        .ledger;
    const swapsOf = async (orderId: string) =>
      (await ledger()).filter((e) => e.idempotency_key.includes(orderId)).length;

    /** Resolves once the worker has given up on the order's swap for now (its log says so). */
    const suspension = (orderId: string) =>
      until(
        () =>
          worker
            .output()
            .split('\n')
            .some((line) => line.includes(orderId) && line.includes('saga suspended')),
        `the saga of ${orderId} suspended`,
      );

    it('cancels a saga whose swap never reached the venue, and completes one the venue executed', async () => {
      const orders = client(service.url, userSecret);
      const admin = operator(service.url, adminSecret);

      operatorLink.cut('reset');
      // The venue executes this one, but its answers are lost: the service cannot know.
      workerLink.cut('answers');
      const executed = await orders.place(user);
      await suspension(executed);
      expect(await swapsOf(executed)).toBe(1);

      // This one's swap never gets through.
      workerLink.cut('reset');
      const unsent = await orders.place(user);
      await suspension(unsent);
      expect(await swapsOf(unsent)).toBe(0);

      const stuck = await admin('sagas', 'list', '--stuck', '--json');
      expect(stuck.code, shown(stuck)).toBe(0);
      const stuckSagas = jsonOf<{ sagas: SagaSummary[] }>(stuck).sagas;
      for (const orderId of [executed, unsent]) {
        expect(stuckSagas.find((s) => s.order_id === orderId)).toMatchObject({
          stuck: true,
          pending_step: 'awaitingOutcome',
        });
      }
      const show = await admin('sagas', 'show', unsent, '--json');
      expect(show.code, shown(show)).toBe(0);
      expect(jsonOf<SagaDetail>(show).history.map((e) => e.event_type)).toContain('SwapExecuting');

      // The venue out of reach: nothing can be voided, so nothing changes.
      for (const orderId of [executed, unsent]) {
        const before = await orders.order(orderId);
        const refused = await admin('sagas', 'cancel', orderId, '--reason', 'ops');
        expect(refused.code, shown(refused)).toBe(5);
        expect(refused.stderr).toMatch(/nothing was changed/);
        expect(await orders.order(orderId)).toEqual(before);
        expect(before.status).not.toMatch(/completed|failed/);
      }

      operatorLink.restore();
      const cancelled = await admin('sagas', 'cancel', unsent, '--reason', 'ops', '--json');
      expect(cancelled.code, shown(cancelled)).toBe(0);
      expect(jsonOf(cancelled)).toMatchObject({ order_id: unsent, outcome: 'cancelled' });
      expect(await orders.order(unsent)).toMatchObject({ status: 'failed', failure_reason: 'cancelled' });
      expect(await swapsOf(unsent)).toBe(0);

      // Voiding finds the swap executed: the order completes instead (exit 1: not what was asked).
      const completed = await admin('sagas', 'cancel', executed, '--reason', 'ops', '--json');
      expect(completed.code, shown(completed)).toBe(1);
      expect(jsonOf(completed)).toMatchObject({ order_id: executed, outcome: 'completed' });
      expect(await orders.order(executed)).toMatchObject({ status: 'completed', failure_reason: null });
      expect(await swapsOf(executed)).toBe(1);

      const after = await admin('sagas', 'list', '--stuck', '--json');
      const stillStuck = jsonOf<{ sagas: SagaSummary[] }>(after).sagas.map((s) => s.order_id);
      expect(stillStuck).not.toContain(executed);
      expect(stillStuck).not.toContain(unsent);
    }, 120_000);

    it('retries a stuck saga once the venue is back: the swap executes once and the order completes', async () => {
      const orders = client(service.url, userSecret);
      const admin = operator(service.url, adminSecret);
      workerLink.cut('reset');
      operatorLink.cut('reset');
      const orderId = await orders.place(user);
      await suspension(orderId);

      const early = await admin('sagas', 'retry', orderId, '--json');
      expect(early.code, shown(early)).toBe(1);
      expect(jsonOf(early)).toMatchObject({ order_id: orderId, outcome: 'suspended' });
      expect(await swapsOf(orderId)).toBe(0);

      operatorLink.restore();
      const retried = await admin('sagas', 'retry', orderId, '--json');
      expect(retried.code, shown(retried)).toBe(0);
      expect(jsonOf(retried)).toEqual({ order_id: orderId, outcome: 'completed' });
      const order = await orders.order(orderId);
      expect(order).toMatchObject({ status: 'completed', failure_reason: null });
      expect(await swapsOf(orderId)).toBe(1);

      const again = await admin('sagas', 'retry', orderId);
      expect(again.code, shown(again)).toBe(5);
    }, 120_000);
  },
);

/*
 * A dead letter on RabbitMQ, made as one is made in production: the orchestrator's handler fails
 * on every delivery (here the database refuses the saga's first event: a trigger an operator
 * "forgot"), so the message is dead-lettered at the delivery limit. Once the cause is gone, the
 * operator replays it and the order goes through.
 */
describe.runIf(DATABASE_URL && AMQP_URL)('the operator command line on a dead letter', () => {
  const { user, userSecret, adminSecret, API_KEYS } = keys();
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      processes: [[]],
      // The sweeper looks for alerts every half second.
      env: { API_KEYS, SWEEP_INTERVAL_MS: '500' },
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** The dead-letter alert as /metrics shows it: active (0 or 1) and raised so far. */
  async function deadLetterAlert(): Promise<{ active: number; raised: number }> {
    const res = await fetch(`${cluster.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${adminSecret}` },
    });
    const text = await res.text();
    const value = (metric: string) =>
      Number(
        new RegExp(`^market_order_saga_${metric}\\{kind="dead_letter"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0,
      );
    return { active: value('alerts_active'), raised: value('alerts_raised_total') };
  }

  it('lists the dead-lettered OrderAccepted, alerts once, replays it once the cause is fixed: the order completes and the alert clears', async () => {
    const orders = client(cluster.apiUrl, userSecret);
    const admin = operator(cluster.apiUrl, adminSecret);
    await cluster.db.exec(`
      CREATE FUNCTION refuse_quotes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'PriceQuoted refused by a test trigger'; END $$;
      CREATE TRIGGER refuse_quotes BEFORE INSERT ON events
        FOR EACH ROW WHEN (NEW.event_type = 'PriceQuoted') EXECUTE FUNCTION refuse_quotes();`);
    const orderId = await orders.place(user);

    interface Listed {
      messages: { id: string; event_type: string; order_id: string; reason: string; error: string }[];
    }
    let listed: Listed = { messages: [] };
    await until(async () => {
      const run = await admin('dlq', 'list', '--json');
      expect(run.code, shown(run)).toBe(0);
      listed = jsonOf<Listed>(run);
      return listed.messages.length > 0;
    }, 'the dead letter listed');
    expect(listed.messages).toEqual([
      expect.objectContaining({ event_type: 'OrderAccepted', order_id: orderId, reason: 'delivery-limit' }),
    ]);
    expect(listed.messages[0]?.error).toContain('refused by a test trigger');
    expect((await orders.order(orderId)).status).toBe('pending');
    await until(async () => (await deadLetterAlert()).active === 1, 'the dead-letter alert raised');

    await cluster.db.exec('DROP TRIGGER refuse_quotes ON events; DROP FUNCTION refuse_quotes();');
    const replayed = await admin('dlq', 'replay', '--json');
    expect(replayed.code, shown(replayed)).toBe(0);
    expect(jsonOf(replayed)).toEqual({ replayed: 1 });
    await until(async () => (await orders.order(orderId)).status === 'completed', 'the order completed');
    const after = await admin('dlq', 'list', '--json');
    expect(after.code, shown(after)).toBe(0);
    expect(jsonOf(after)).toEqual({ messages: [] });
    await until(async () => (await deadLetterAlert()).active === 0, 'the dead-letter alert cleared');
    // Raised once for the whole time the message lay dead, not once per sweep.
    expect((await deadLetterAlert()).raised).toBe(1);
  }, 120_000);
});
