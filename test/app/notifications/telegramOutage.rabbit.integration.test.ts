import { describe } from 'vitest';
import { onScratchDatabase, rabbitHarness } from '../../helpers/buses.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL } from '../../helpers/rabbit.ts';
import { telegramOutageSuite } from './telegramOutage.ts';

// Needs PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL (CI always sets them; see .ci/run). A
// database of its own: the notifiers' retry loops claim every due notification they can see.
describe.runIf(DATABASE_URL && AMQP_URL)('RabbitMQ and PostgreSQL', () => {
  telegramOutageSuite('RabbitMQ', () =>
    onScratchDatabase(DATABASE_URL ?? '', 'telegram_outage_test', (db) => rabbitHarness(db, AMQP_URL ?? '')),
  );
});
