import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import type { DomainEventType } from '../../src/domain/events.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createSwapAudit } from '../../src/infra/swapAudit.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';

/**
 * What every SwapAudit adapter must do; run on PGlite and PostgreSQL (stores.*.test.ts), each on a
 * database of its own: a claim takes every due row it can see.
 */
export function swapAuditContract(db: () => Database): void {
  describe('the swap audit', () => {
    /** Orders of this test still unsettled; settled after each test, so none is left due. */
    let unsettled: string[] = [];

    async function order(types: readonly DomainEventType[]): Promise<string> {
      const orderId = randomUUID();
      await createEventStore(db()).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: types.map((type) => aCatalogueEvent(orderId, type)),
        },
      ]);
      return orderId;
    }

    /** An order that failed after storing SwapExecuting: it sent (or may have sent) its swap. */
    async function failedAfterSwap(): Promise<string> {
      const orderId = await order(['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'OrderFailed']);
      unsettled.push(orderId);
      return orderId;
    }

    const ours = (rows: readonly { order_id: string }[], ids: readonly string[]) =>
      rows.filter((row) => ids.includes(row.order_id));

    afterEach(async () => {
      const audit = createSwapAudit(db());
      for (const orderId of unsettled) {
        await audit.record({
          order_id: orderId,
          idempotency_key: `swap-${orderId}`,
          outcome: 'voided',
          found_by: 'reconcile',
        });
      }
      unsettled = [];
    });

    it('lists a failed order that sent its swap, once per retry interval, with its key and attempts', async () => {
      const audit = createSwapAudit(db());
      const orderId = await failedAfterSwap();

      expect(ours(await audit.claimDue(100, 60_000), [orderId])).toEqual([
        { order_id: orderId, idempotency_key: `swap-${orderId}`, attempts: 1 },
      ]);
      expect(ours(await audit.claimDue(100, 60_000), [orderId]), 'asked about a moment ago').toEqual([]);
      expect(ours(await audit.claimDue(100, 0), [orderId])).toEqual([
        { order_id: orderId, idempotency_key: `swap-${orderId}`, attempts: 2 },
      ]);
    });

    it('does not list an order that failed before it sent a swap, nor one that completed', async () => {
      const audit = createSwapAudit(db());
      const noSwap = await order(['OrderAccepted', 'OrderFailed']);
      const completed = await order([
        'OrderAccepted',
        'PriceQuoted',
        'SwapExecuting',
        'SwapExecuted',
        'OrderCompleted',
      ]);

      expect(ours(await audit.claimDue(100, 0), [noSwap, completed])).toEqual([]);
    });

    it('no longer lists an order once the venue answered for it', async () => {
      const audit = createSwapAudit(db());
      const orderId = await failedAfterSwap();

      await audit.record({
        order_id: orderId,
        idempotency_key: `swap-${orderId}`,
        outcome: 'rejected',
        found_by: 'reconcile',
      });

      expect(ours(await audit.claimDue(100, 0), [orderId])).toEqual([]);
    });

    it('keeps an execution found for a failed order: a later, milder answer does not overwrite it', async () => {
      const audit = createSwapAudit(db());
      const orderId = await failedAfterSwap();
      const key = `swap-${orderId}`;

      await audit.record({
        order_id: orderId,
        idempotency_key: key,
        outcome: 'executed',
        tx_hash: '0xabc',
        found_by: 'saga',
      });
      await audit.record({
        order_id: orderId,
        idempotency_key: key,
        outcome: 'voided',
        found_by: 'reconcile',
      });

      const [row] = await db().query<{ venue_outcome: string; tx_hash: string; found_by: string }>(
        'SELECT venue_outcome, tx_hash, found_by FROM swap_reconciliations WHERE order_id = $1',
        [orderId],
      );
      expect(row).toEqual({ venue_outcome: 'executed', tx_hash: '0xabc', found_by: 'saga' });
    });

    it('gives each due order to one of two claimers at once', async () => {
      const orderIds = [await failedAfterSwap(), await failedAfterSwap(), await failedAfterSwap()];

      // Never asked about, so due; a minute's interval, so the second claimer cannot take them
      // again once the first has (with no interval they would be due again at once).
      const [a, b] = await Promise.all([
        createSwapAudit(db()).claimDue(100, 60_000),
        createSwapAudit(db()).claimDue(100, 60_000),
      ]);

      const claimed = [...ours(a, orderIds), ...ours(b, orderIds)].map((row) => row.order_id);
      expect(claimed.sort()).toEqual([...orderIds].sort());
    });
  });
}
