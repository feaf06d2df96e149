import { afterAll, beforeAll, describe } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { healthProbeContract } from './health.contract.ts';
import { inboxContract } from './inbox.contract.ts';
import { notificationStoreContract } from './notify/notificationStore.contract.ts';
import { userChannelStoreContract } from './notify/userChannels.contract.ts';
import { openSagasContract } from './openSagas.contract.ts';
import { swapAuditContract } from './swapAudit.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). A scratch database,
// because the open sagas' and notifications' claims take every due row they can see.
describe.runIf(DATABASE_URL)('the stores on PostgreSQL', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: Database;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 8 });
    db = scratch.db;
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  inboxContract(() => db);
  openSagasContract(() => db);
  swapAuditContract(() => db);
  notificationStoreContract(() => db);
  userChannelStoreContract(() => db);
  healthProbeContract(() => db, 'postgres');
});
