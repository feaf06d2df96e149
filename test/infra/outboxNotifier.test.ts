import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOX_CHANNEL, outboxNotifier } from '../../src/infra/bus/outboxNotifier.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { DATABASE_URL, migratedPglite, migratedPostgres, newId } from '../helpers/databases.ts';
import { anEvent } from '../helpers/events.ts';

describe.each([
  ['PGlite', migratedPglite, true],
  ['PostgreSQL', () => migratedPostgres({ max: 4 }), Boolean(DATABASE_URL)],
] as const)('the outbox notifier on %s', (_, open, enabled) => {
  let db: Database;
  beforeAll(async () => {
    if (enabled) db = await open();
  });
  afterAll(async () => {
    await db?.close();
  });

  it.runIf(enabled)('wakes a listener after appends, with at most one notification per append', async () => {
    let notifications = 0;
    let woken!: () => void;
    const firstWake = new Promise<void>((resolve) => (woken = resolve));
    const unlisten = await db.listen(OUTBOX_CHANNEL, () => {
      notifications += 1;
      woken();
    });
    const store = createEventStore(db, { onAppended: outboxNotifier(db) });

    await Promise.all(
      Array.from({ length: 20 }, () => {
        const id = newId();
        return store.append([
          { aggregate_id: id, aggregate_type: 'order', expected_version: 0, events: [anEvent(id)] },
        ]);
      }),
    );
    await firstWake;
    await unlisten();

    expect(notifications).toBeGreaterThanOrEqual(1);
    expect(notifications).toBeLessThanOrEqual(20);
  });
});
