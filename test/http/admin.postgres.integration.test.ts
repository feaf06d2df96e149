import { describe } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { adminContract } from './admin.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it). A scratch database: the dead-letter
// tests act on every row of dead_letters, and the races run against real concurrent statements.
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  adminContract('PostgreSQL', async () => {
    const scratch = await scratchPostgres({ max: 8 });
    return { db: scratch.db, close: () => scratch.drop() };
  });
});
