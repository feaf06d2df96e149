import { describe } from 'vitest';
import { DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';
import { intakeBatcherContract } from './intakeBatcher.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run).
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  intakeBatcherContract('PostgreSQL', () => migratedPostgres({ max: 20 }));
});
