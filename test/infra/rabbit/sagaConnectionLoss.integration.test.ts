import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sagaConsumer } from '../../../src/app/sagaConsumer.ts';
import { createOutboxRelay } from '../../../src/infra/bus/rabbit/outboxRelay.ts';
import type { OutboxRelay } from '../../../src/infra/bus/rabbit/outboxRelay.ts';
import { createRabbitConsumer } from '../../../src/infra/bus/rabbit/rabbitConsumer.ts';
import type { RabbitConsumer } from '../../../src/infra/bus/rabbit/rabbitConsumer.ts';
import {
  deadLetterQueueOf,
  deleteTopology,
  QUEUES,
  topology,
} from '../../../src/infra/bus/rabbit/topology.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { silentLogger } from '../../../src/infra/logger.ts';
import { eventually } from '../../helpers/buses.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL, scratchPostgres } from '../../helpers/rabbit.ts';
import { assertSagaGuarantees, sagaWorld } from '../../helpers/saga.ts';
import type { SagaWorld } from '../../helpers/saga.ts';
import { createInbox } from '../../../src/infra/inbox.ts';

const run = promisify(execFile);
const ORDERS = 300;

function hasRabbitmqctl(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v rabbitmqctl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A broker user of this test alone. `rabbitmqctl close_all_connections` would also cut the
 * connections of test files running in parallel, and picking ours out of `list_connections` by
 * connection_name means parsing its output and racing reconnects between the listing and the
 * closing; with a user of our own, `close_all_user_connections` cuts exactly the relay's and both
 * consumers' connections in one command, at the same instant, as a broker restart would.
 */
async function brokerUser(amqpUrl: string) {
  const name = `test_conn_loss_${randomUUID().slice(0, 8)}`;
  const password = randomUUID();
  const url = new URL(amqpUrl);
  const vhost = decodeURIComponent(url.pathname.slice(1)) || '/';
  await run('rabbitmqctl', ['-q', 'add_user', name, password]);
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, name, '.*', '.*', '.*']);
  url.username = name;
  url.password = password;
  return {
    url: url.toString(),
    closeConnections: () =>
      run('rabbitmqctl', ['-q', 'close_all_user_connections', name, 'test: connection loss under load']),
    remove: () => run('rabbitmqctl', ['-q', 'delete_user', name]),
  };
}

async function terminalCount(db: Database): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM events WHERE event_type IN ('OrderCompleted', 'OrderFailed')`,
  );
  return row?.n ?? 0;
}

async function unpublished(db: Database): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE NOT published');
  return row?.n ?? -1;
}

async function count(db: Database, sql: string): Promise<number> {
  const [row] = await db.query<{ n: number }>(sql);
  return row?.n ?? -1;
}

describe.runIf(DATABASE_URL && AMQP_URL && hasRabbitmqctl())(
  'the saga through RabbitMQ when the broker drops every connection under load',
  () => {
    const prefix = `test.connloss.${randomUUID().slice(0, 8)}.`;
    const topo = topology({ prefix });
    const sagaQueue = `${prefix}${QUEUES.sagaOrderAccepted.name}`;
    let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
    let user: Awaited<ReturnType<typeof brokerUser>>;
    let world: SagaWorld;
    let relay: OutboxRelay;
    let consumers: RabbitConsumer[] = [];

    beforeAll(async () => {
      scratch = await scratchPostgres(DATABASE_URL ?? '', 'connloss_test');
      user = await brokerUser(AMQP_URL ?? '');
      world = sagaWorld(scratch.db);
    });

    afterAll(async () => {
      await relay?.stop();
      await Promise.all(consumers.map((c) => c.stop()));
      await user?.remove().catch(() => {});
      if (AMQP_URL) {
        const connection = await connect(AMQP_URL);
        await deleteTopology(await connection.createChannel(), topo);
        await connection.close();
      }
      await scratch?.drop();
    });

    it('recovers relay and both orchestrators, and every order finishes with the guarantees held', async () => {
      const { db } = scratch;
      const reconnect = { reconnectMinDelayMs: 50, reconnectMaxDelayMs: 500 };
      relay = createOutboxRelay({
        db,
        amqpUrl: user.url,
        logger: silentLogger,
        topology: topo,
        pollIntervalMs: 20,
        ...reconnect,
      });
      consumers = [1, 2].map((n) =>
        createRabbitConsumer({
          amqpUrl: user.url,
          logger: silentLogger,
          consumer: sagaConsumer(createInbox(db), world.newRunner()),
          queue: sagaQueue,
          topology: topo,
          retryMinDelayMs: 5,
          retryMaxDelayMs: 50,
          connectionName: `test connection loss saga ${n}`,
          ...reconnect,
        }),
      );
      await Promise.all([relay.start(), ...consumers.map((c) => c.start())]);

      const orderIds: string[] = [];
      let placing = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (placing++ < ORDERS) orderIds.push(await world.place());
        }),
      );

      for (const [round, progress] of [
        [2, ORDERS / 5],
        [3, ORDERS / 2],
      ] as const) {
        await eventually(
          async () => (await terminalCount(db)) >= progress,
          `${progress} orders finished`,
          30_000,
        );
        await user.closeConnections();
        await eventually(
          () =>
            relay.counters.connections >= round && consumers.every((c) => c.counters.connections >= round),
          `relay and consumers reconnected (round ${round})`,
          30_000,
        );
      }
      await eventually(
        async () => (await terminalCount(db)) >= ORDERS,
        `all ${ORDERS} orders finished`,
        60_000,
      );
      // 4. every outbox row published (this scratch database holds only this test's rows).
      await eventually(async () => (await unpublished(db)) === 0, 'the outbox drained');
      await Promise.all(consumers.map((c) => c.stop()));
      await relay.stop();

      // 1, 2, 5 (and 7) per order: one terminal event, at most one swap, versions 1..n.
      for (const orderId of orderIds)
        assertSagaGuarantees(orderId, await world.events(orderId), world.market);
      expect(await terminalCount(db)).toBe(ORDERS);
      // 8. every OrderAccepted handled and recorded; nothing left in the saga queue or its dead letters.
      expect(
        await count(
          db,
          `SELECT count(DISTINCT event_id)::int AS n FROM processed_events WHERE processed_by = 'saga-orchestrator'`,
        ),
      ).toBe(ORDERS);
      const connection = await connect(AMQP_URL ?? '');
      const channel = await connection.createChannel();
      expect((await channel.checkQueue(sagaQueue)).messageCount).toBe(0);
      expect((await channel.checkQueue(deadLetterQueueOf(sagaQueue))).messageCount).toBe(0);
      await connection.close();
      expect(consumers.reduce((n, c) => n + c.counters.deadLettered, 0)).toBe(0);
    });
  },
);
