import { describe } from 'vitest';
import { DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';
import { readModelsContract } from './readModels.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run).
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  readModelsContract('PostgreSQL', () => migratedPostgres({ max: 4 }));
});
