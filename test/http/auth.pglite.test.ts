import { describe } from 'vitest';
import { migratedPglite } from '../helpers/databases.ts';
import { authContract } from './auth.contract.ts';

// PGlite runs in this process: the keys command and the API share the instance, as `npm run keys`
// shares the data directory's lock with the service (one after the other).
describe('PGlite', () => {
  authContract('PGlite', async () => {
    const db = await migratedPglite();
    return { db, commandDb: db, close: () => db.close() };
  });
});
