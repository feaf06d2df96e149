import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailpointName } from '../../src/app/failpoints.ts';
import { topology } from '../../src/infra/bus/rabbit/topology.ts';
import type { LedgerEntry } from '../../src/infra/venues/simulatedVenue.ts';
import { queueStates } from '../../src/ops/checkCommand.ts';
import { clusterOrder, drained, startCluster, startProcess, until } from '../helpers/cluster.ts';
import type { Cluster } from '../helpers/cluster.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { crashedAt } from '../helpers/failpoints.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import { freePort } from '../helpers/server.ts';

/*
 * One order walked through the outbox relay's and the saga's failpoints, one process per crash,
 * as a supervisor restarting them would: each process dies at its point, the state it leaves is
 * what that point stands for, and the next one carries on from there. At the end, processes
 * without failpoints finish the order, and `check` finds every guarantee kept. The tests run in
 * order and share the order.
 */
describe.runIf(DATABASE_URL && AMQP_URL)('the relay and the saga killed at their failpoints', () => {
  let cluster: Cluster;
  let orderId = '';

  beforeAll(async () => {
    cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      processes: [['api']],
      // No deadline passes while the processes come and go: the order completes, never compensates.
      env: { SAGA_DEADLINE_MS: '600000' },
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** A process of `roles` with FAILPOINTS=`spec`; resolves once it has died at `point`. */
  async function crash(roles: string, spec: string, point: FailpointName, hit = 1) {
    const service = startProcess(`${roles} (${spec})`, ['serve'], {
      ...cluster.env,
      ROLES: roles,
      PORT: String(await freePort()),
      FAILPOINTS: spec,
    });
    cluster.services.push(service);
    await crashedAt(service, point, hit);
  }

  const history = async () =>
    (
      await cluster.db.query<{ stream: string; event_type: string }>(
        `SELECT aggregate_type AS stream, event_type FROM events
         WHERE aggregate_id = ANY($1::uuid[]) ORDER BY id`,
        [[orderId, positionIdFor(orderId)]],
      )
    ).map((e) => `${e.stream}:${e.event_type}`);
  /** The swaps the venue executed for the order (its ledger holds executions only). */
  const swapsAtVenue = async () => {
    const { ledger } = (await (await fetch(`${cluster.marketUrl ?? ''}/simulation`)).json()) as {
      ledger: LedgerEntry[];
    };
    return ledger.filter((entry) => entry.idempotency_key === `swap-${orderId}`).length;
  };

  it('relay.after-confirm: the message is on the queue, its outbox row still unpublished', async () => {
    const response = await fetch(`${cluster.apiUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(clusterOrder(0, randomUUID())),
    });
    expect(response.status).toBe(202);
    orderId = ((await response.json()) as { order_id: string }).order_id;

    await crash('relay', 'relay.after-confirm', 'relay.after-confirm');
    const [outbox] = await cluster.db.query<{ unpublished: number }>(
      `SELECT count(*) FILTER (WHERE NOT published)::int AS unpublished FROM outbox WHERE aggregate_id = $1`,
      [orderId],
    );
    expect(outbox?.unpublished).toBe(1);
    const sagaQueue = topology({ prefix: cluster.prefix }).queues.find((q) =>
      q.routingKeys.includes('OrderAccepted'),
    );
    const states = await queueStates(AMQP_URL ?? '', cluster.prefix);
    expect(states.find((q) => q.queue === sagaQueue?.name)?.messages).toBe(1);
  }, 120_000);

  it('saga.after-price-call: the price came back, nothing was stored', async () => {
    await crash('saga', 'saga.after-price-call', 'saga.after-price-call');
    expect(await history()).toEqual(['order:OrderAccepted']);
  }, 120_000);

  it('saga.after-append: the first batch is stored, the swap not sent', async () => {
    await crash('saga', 'saga.after-append', 'saga.after-append');
    expect(await history()).toEqual([
      'order:OrderAccepted',
      'order:PriceQuoted',
      'position:PositionCreated',
      'order:SwapExecuting',
    ]);
    expect(await swapsAtVenue()).toBe(0);
  }, 120_000);

  it('saga.after-venue-call: the venue executed the swap, no SwapExecuted is stored', async () => {
    // A resumed saga asks the venue first (hit 1: no such swap), then sends it (hit 2).
    await crash('saga', 'saga.after-venue-call@2', 'saga.after-venue-call', 2);
    expect(await swapsAtVenue()).toBe(1);
    expect(await history()).not.toContain('order:SwapExecuted');
  }, 120_000);

  it('then processes without failpoints complete the order with its one swap, and every guarantee holds', async () => {
    await cluster.startService(['relay', 'saga', 'notifier']);
    await until(async () => (await history()).includes('order:OrderCompleted'), 'the order to complete');
    await drained(cluster);
    expect(await history()).toEqual([
      'order:OrderAccepted',
      'order:PriceQuoted',
      'position:PositionCreated',
      'order:SwapExecuting',
      'order:SwapExecuted',
      'position:PositionUpdated',
      'order:OrderCompleted',
    ]);
    expect(await swapsAtVenue()).toBe(1);
    for (const service of cluster.services) await service.stop();
    const { code, report } = await cluster.check();
    expect(report).toContain('zero violations');
    expect(code).toBe(0);
  }, 120_000);
});
