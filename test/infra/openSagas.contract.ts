import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createOpenSagas } from '../../src/infra/openSagas.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';
import { until } from '../helpers/wait.ts';

/**
 * What every OpenSagas adapter must do; run on PGlite and PostgreSQL (stores.*.test.ts), each on a
 * database of its own: a claim takes every due saga it can see.
 */
export function openSagasContract(db: () => Database): void {
  describe('the open sagas', () => {
    /** Orders this test accepted and has not ended; ended after each test, so none is left open. */
    let open: string[] = [];

    async function accept(): Promise<string> {
      const orderId = randomUUID();
      await createEventStore(db()).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: [aCatalogueEvent(orderId, 'OrderAccepted')],
        },
      ]);
      open.push(orderId);
      return orderId;
    }

    async function append(orderId: string, type: 'PriceQuoted' | 'OrderFailed'): Promise<void> {
      const store = createEventStore(db());
      await store.append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: (await store.load(orderId)).length,
          events: [aCatalogueEvent(orderId, type)],
        },
      ]);
      if (type === 'OrderFailed') open = open.filter((id) => id !== orderId);
    }

    /** Waits until the orders' last events are older than `ms` by the database's clock. */
    async function idleFor(orderIds: readonly string[], ms: number): Promise<void> {
      await until(async () => {
        const [row] = await db().query<{ idle: boolean }>(
          `SELECT max(created_at) < now() - $2 * interval '1 millisecond' AS idle
           FROM events WHERE aggregate_id = ANY($1::uuid[])`,
          [orderIds, ms],
        );
        return row?.idle;
      }, `orders idle for ${ms} ms`);
    }

    afterEach(async () => {
      for (const orderId of [...open]) await append(orderId, 'OrderFailed');
    });

    describe('when sagas have had no event for the stale time', () => {
      it('claims them as stalled, counting the resume', async () => {
        const orders = [await accept(), await accept()];

        const claimed = await createOpenSagas(db()).claimDue(0, 100);

        expect(claimed.sort((a, b) => a.order_id.localeCompare(b.order_id))).toEqual(
          orders.sort().map((order_id) => ({ order_id, stalled: true, resumes: 1 })),
        );
      });
    });

    describe('when a saga was claimed less than the stale time ago', () => {
      it('does not claim it again', async () => {
        const orderId = await accept();
        const openSagas = createOpenSagas(db());
        expect((await openSagas.claimDue(0, 100)).map((s) => s.order_id)).toEqual([orderId]);

        expect(await openSagas.claimDue(60_000, 100)).toEqual([]);
      });
    });

    describe('when nobody looked at a saga for the stale time but its last event is recent', () => {
      it('claims it as not stalled, without counting a resume', async () => {
        const orderId = await accept();
        await idleFor([orderId], 1_000);
        await append(orderId, 'PriceQuoted');

        const claimed = await createOpenSagas(db()).claimDue(1_000, 100);

        expect(claimed).toEqual([{ order_id: orderId, stalled: false, resumes: 0 }]);
      });
    });

    describe('when more sagas are due than the limit', () => {
      it('claims the ones looked at longest ago first', async () => {
        const [first, second, third] = [await accept(), await accept(), await accept()];
        const openSagas = createOpenSagas(db());

        const once = await openSagas.claimDue(0, 2);
        const again = await openSagas.claimDue(0, 2);

        expect(once.map((s) => s.order_id)).toEqual([first, second]);
        expect(again[0]?.order_id).toBe(third);
      });
    });

    describe('when a saga has ended', () => {
      it('is not claimed', async () => {
        const ended = await accept();
        await append(ended, 'OrderFailed');
        const running = await accept();
        // Due means looked at before now(): wait until the database's clock has moved past the
        // saga's first look (PGlite's clock can stand still for a tick).
        await until(async () => {
          const [row] = await db().query<{ moved: boolean }>(
            'SELECT now() > checked_at AS moved FROM open_sagas WHERE order_id = $1',
            [running],
          );
          return row?.moved === true;
        }, 'the clock to move past the saga first look');

        const claimed = await createOpenSagas(db()).claimDue(0, 100);

        expect(claimed.map((s) => s.order_id)).toEqual([running]);
      });
    });

    describe('when two sweepers claim at the same time', () => {
      it('gives each due saga to one of them', async () => {
        const orders = await Promise.all(Array.from({ length: 12 }, () => accept()));
        await idleFor(orders, 1_000);

        const [a, b] = await Promise.all([
          createOpenSagas(db()).claimDue(1_000, 100),
          createOpenSagas(db()).claimDue(1_000, 100),
        ]);

        const ids = [...(a ?? []), ...(b ?? [])].map((s) => s.order_id);
        expect(ids.sort()).toEqual([...orders].sort());
      });
    });
  });
}
