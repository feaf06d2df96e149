import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { DATABASE_URL, migratedPglite, migratedPostgres } from '../helpers/databases.ts';
import { describeCoverage, runScenario, scenarioArbitrary } from './moneySafety.property.ts';
import type { Mismatch, Scenario } from './moneySafety.property.ts';

/** Fixed, so a failure names a reproducible case; fast-check shrinks it to the smallest. */
const SEED = 20261129;

const property = (name: string, open: () => Promise<Database>, numRuns: number) =>
  describe(`on ${name}, with random venue delays, lost answers, worker clock offsets, deadlines and crash points`, () => {
    let db: Database;
    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    it('every order ends once, and its events agree with the venue ledger', async () => {
      const ran: Scenario[] = [];
      const failures: Mismatch[][] = [];
      await fc.assert(
        fc.asyncProperty(scenarioArbitrary, async (scenario) => {
          ran.push(scenario);
          const mismatches = await runScenario(db, scenario);
          if (mismatches.length > 0) failures.push(mismatches);
          return mismatches.length === 0;
        }),
        { seed: SEED, numRuns, endOnFailure: true },
      );
      expect(failures).toEqual([]);
      console.info(`money-safety property on ${name}: ${describeCoverage(ran)}, 0 mismatches`);
    }, 240_000);
  });

property('PGlite', migratedPglite, 60);

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run).
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  property('PostgreSQL', () => migratedPostgres(), 25);
});
