import { describe } from 'vitest';
import { migratedPglite } from '../helpers/databases.ts';
import { adminContract } from './admin.contract.ts';

describe('PGlite', () => {
  adminContract('PGlite', async () => {
    const db = await migratedPglite();
    return { db, close: () => db.close() };
  });
});
