import { afterAll, beforeAll, describe } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { healthProbeContract } from './health.contract.ts';
import { inboxContract } from './inbox.contract.ts';
import { notificationStoreContract } from './notify/notificationStore.contract.ts';
import { userChannelStoreContract } from './notify/userChannels.contract.ts';
import { openSagasContract } from './openSagas.contract.ts';
import { swapAuditContract } from './swapAudit.contract.ts';

// The SQL adapters of the use cases' ports, on one PGlite (initdb is slow: one per file).
describe('the stores on PGlite', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  inboxContract(() => db);
  openSagasContract(() => db);
  swapAuditContract(() => db);
  notificationStoreContract(() => db);
  userChannelStoreContract(() => db);
  healthProbeContract(() => db, 'pglite');
});
