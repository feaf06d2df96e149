import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import type { GlobalPosition, StoredEvent } from '../../src/app/ports/eventStore.ts';
import { DATABASE_URL, newId, scratchPostgres } from '../helpers/databases.ts';
import { anEvent } from '../helpers/events.ts';

// Needs a PostgreSQL server: DATABASE_URL. PGlite has one backend, so transactions cannot overlap there.
// A database of its own: the global read waits for every transaction open in the database, and
// validates every event it reads (other test files write events outside the catalogue on purpose).
describe.runIf(DATABASE_URL)('global read order on PostgreSQL', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>> | undefined;
  let db: Database;
  beforeAll(async () => {
    scratch = await scratchPostgres();
    db = scratch.db;
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  async function readFrom(from: GlobalPosition, ids: Set<string>): Promise<StoredEvent[]> {
    const seen: StoredEvent[] = [];
    for await (const batch of createEventStore(db).readAll({ from })) seen.push(...batch);
    return seen.filter((e) => ids.has(e.aggregate_id));
  }

  describe('when a transaction that started first commits last', () => {
    it('a reader never skips it: later events wait until it commits', async () => {
      const store = createEventStore(db);
      const markerId = newId();
      const marker = await store.append([
        { aggregate_id: markerId, aggregate_type: 'order', expected_version: 0, events: [anEvent(markerId)] },
      ]);
      if (marker.status !== 'appended' || !marker.events[0]) throw new Error('marker not appended');
      const from = marker.events[0].position;
      const slowId = newId();
      const fastId = newId();
      const ours = new Set([slowId, fastId]);

      let commitSlow!: () => void;
      const slowMayCommit = new Promise<void>((resolve) => (commitSlow = resolve));
      let slowWrote!: () => void;
      const slowHasWritten = new Promise<void>((resolve) => (slowWrote = resolve));
      const slowEvent = anEvent(slowId);
      const slow = db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
           VALUES ($1, $2, 'order', 'OrderAccepted', 1, $3::text::jsonb, $4::text::jsonb)`,
          [
            slowEvent.event_id,
            slowId,
            JSON.stringify(slowEvent.event_data),
            JSON.stringify(slowEvent.metadata),
          ],
        );
        slowWrote();
        await slowMayCommit;
      });
      await slowHasWritten;
      await store.append([
        { aggregate_id: fastId, aggregate_type: 'order', expected_version: 0, events: [anEvent(fastId)] },
      ]);

      const whileOpen = await readFrom(from, ours);
      commitSlow();
      await slow;
      const afterCommit = await readFrom(from, ours);

      expect(whileOpen).toEqual([]);
      expect(afterCommit.map((e) => e.aggregate_id)).toEqual([slowId, fastId]);
    });
  });
});
