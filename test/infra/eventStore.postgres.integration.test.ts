import { describe } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { eventStoreContract } from './eventStore.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). A database of its own:
// reading every event validates each, and other test files write events outside the catalogue on
// purpose (the relay's).
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  eventStoreContract('PostgreSQL', async () => {
    const scratch = await scratchPostgres({ max: 60 });
    return { ...scratch.db, close: () => scratch.drop() };
  });
});
