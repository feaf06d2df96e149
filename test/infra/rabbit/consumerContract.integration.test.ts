import { describe } from 'vitest';
import { rabbitHarness } from '../../helpers/buses.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL, scratchPostgres } from '../../helpers/rabbit.ts';
import { consumerContract } from '../consumerContract.ts';

// Needs PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL (CI always sets them; see .ci/run).
describe.runIf(DATABASE_URL && AMQP_URL)('RabbitMQ and PostgreSQL', () => {
  consumerContract('RabbitMQ', async () => {
    const scratch = await scratchPostgres(DATABASE_URL ?? '', 'contract_rabbit_test');
    const bus = await rabbitHarness(scratch.db, AMQP_URL ?? '');
    return {
      ...bus,
      async close() {
        await bus.close();
        await scratch.drop();
      },
    };
  });
});
