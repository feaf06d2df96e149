import { describe } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { alertsContract } from './alerts.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL. A database of its own: the conditions look at every open
// saga and dead letter, and two sweepers race on real connections.
describe.runIf(DATABASE_URL)('alerts on PostgreSQL', () => {
  alertsContract(async () => {
    const scratch = await scratchPostgres({ max: 10 });
    return { db: scratch.db, close: () => scratch.drop() };
  });
});
