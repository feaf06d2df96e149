import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createHealthProbe } from '../../src/infra/health.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';

/**
 * What the health probe must report; run on PGlite and PostgreSQL (stores.*.test.ts), each on a
 * database of its own where nothing delivers the outbox.
 */
export function healthProbeContract(db: () => Database, kind: Database['kind']): void {
  describe('the health probe', () => {
    it(`names the database (${kind}) and counts the outbox rows not yet delivered`, async () => {
      const probe = createHealthProbe(db());
      const before = await probe.outboxBacklog();
      const orderId = randomUUID();
      await createEventStore(db()).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: [aCatalogueEvent(orderId, 'OrderAccepted'), aCatalogueEvent(orderId, 'PriceQuoted')],
        },
      ]);

      expect(probe.database).toBe(kind);
      expect(await probe.outboxBacklog()).toBe(before + 2);
      await db().query('UPDATE outbox SET published = TRUE WHERE aggregate_id = $1', [orderId]);
      expect(await probe.outboxBacklog()).toBe(before);
    });
  });
}
