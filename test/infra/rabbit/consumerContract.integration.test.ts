import { describe } from 'vitest';
import { onScratchDatabase, rabbitHarness } from '../../helpers/buses.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL } from '../../helpers/rabbit.ts';
import { consumerContract } from '../consumerContract.ts';

// Needs PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL (CI always sets them; see .ci/run).
describe.runIf(DATABASE_URL && AMQP_URL)('RabbitMQ and PostgreSQL', () => {
  consumerContract('RabbitMQ', () =>
    onScratchDatabase(DATABASE_URL ?? '', 'contract_rabbit_test', (db) => rabbitHarness(db, AMQP_URL ?? '')),
  );
});
