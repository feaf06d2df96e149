import { describe } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { dashboardFeedContract } from './dashboard.contract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). Here orders commit
// concurrently, out of the order of their updated_at: none may be missed by the feed. A database
// of its own, since the feed reads every user's changes.
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  dashboardFeedContract('PostgreSQL', async () => {
    const scratch = await scratchPostgres({ max: 8 });
    return { db: scratch.db, close: () => scratch.drop() };
  });
});
