import { describe } from 'vitest';
import { inProcessHarness, onScratchDatabase } from '../helpers/buses.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { consumerContract } from './consumerContract.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run). A scratch database,
// because the in-process bus claims every unpublished outbox row it can see.
describe.runIf(DATABASE_URL)('PostgreSQL', () => {
  consumerContract('the in-process bus on PostgreSQL', () =>
    onScratchDatabase(DATABASE_URL ?? '', 'contract_test', inProcessHarness),
  );
});
