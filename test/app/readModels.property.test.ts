import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { DATABASE_URL, migratedPglite, migratedPostgres } from '../helpers/databases.ts';
import { describeReadModelCoverage, readModelScenario, runReadModelScenario } from './readModels.property.ts';
import type { ReadModelScenario } from './readModels.property.ts';

/** Fixed, so a failure names a reproducible case; fast-check shrinks it to the smallest. */
const SEED = 20261130;

const property = (name: string, open: () => Promise<Database>, numRuns: number) =>
  describe(`on ${name}, with random orders, venue and price failures, duplicate and reordered deliveries`, () => {
    let db: Database;
    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    it('keeps the read models equal to a fresh replay of the events', async () => {
      const ran: ReadModelScenario[] = [];
      const failures: string[][] = [];
      await fc.assert(
        fc.asyncProperty(readModelScenario, async (scenario) => {
          ran.push(scenario);
          const problems = await runReadModelScenario(db, scenario);
          if (problems.length > 0) failures.push(problems);
          return problems.length === 0;
        }),
        { seed: SEED, numRuns, endOnFailure: true },
      );
      expect(failures).toEqual([]);
      console.info(`read-model property on ${name}: ${describeReadModelCoverage(ran)}, 0 differences`);
    }, 240_000);
  });

property('PGlite', migratedPglite, 40);

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run).
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  property('PostgreSQL', () => migratedPostgres({ max: 8 }), 25);
});
