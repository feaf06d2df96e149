import { describe } from 'vitest';
import { migratedPglite } from '../helpers/databases.ts';
import { alertsContract } from './alerts.contract.ts';

describe('alerts on PGlite', () => {
  alertsContract(async () => {
    const db = await migratedPglite();
    return { db, close: () => db.close() };
  });
});
