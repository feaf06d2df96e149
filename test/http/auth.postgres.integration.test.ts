import { describe } from 'vitest';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { authContract } from './auth.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). A scratch database:
// the key ring reads every key, and a key left in the shared database would close the API of
// every other test's service. The keys command runs on a pool of its own, as another process
// would, so revocations reach the API only through NOTIFY.
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  authContract('PostgreSQL', async () => {
    const scratch = await scratchPostgres({ max: 4 });
    const commandDb = postgresDatabase(scratch.url, { max: 1 });
    return {
      db: scratch.db,
      commandDb,
      async close() {
        await commandDb.close();
        await scratch.drop();
      },
    };
  });
});
