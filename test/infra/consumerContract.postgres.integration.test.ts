import { describe } from 'vitest';
import { inProcessHarness } from '../helpers/buses.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { scratchPostgres } from '../helpers/rabbit.ts';
import { consumerContract } from './consumerContract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). A scratch database,
// because the in-process bus claims every unpublished outbox row it can see.
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  consumerContract('the in-process bus on PostgreSQL', async () => {
    const scratch = await scratchPostgres(DATABASE_URL ?? '', 'contract_test');
    const bus = inProcessHarness(scratch.db);
    return {
      ...bus,
      async close() {
        await bus.close();
        await scratch.drop();
      },
    };
  });
});
