/**
 * One notifier in a process of its own, for the multi-process test: reads its settings from the
 * environment, says `ready`, waits for `go` on stdin, then handles the message DELIVERIES times at
 * once (like a bus, again after each RetryLaterError) and prints its metrics as one JSON line.
 *
 * Run: node --import tsx test/helpers/notifierProcess.ts (env: DATABASE_URL, TELEGRAM_API_ROOT,
 * TELEGRAM_BOT_TOKEN, SMTP_URL, MESSAGE, DELIVERIES).
 */
import { once } from 'node:events';
import type { EventMessage } from '../../src/app/messages.ts';
import { createNotifier } from '../../src/app/notifications/notifier.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createMailer } from '../../src/infra/notify/mail.ts';
import { createTelegramClient } from '../../src/infra/notify/telegram.ts';
import { deliverUntilHandled } from './redeliver.ts';
import { notifierPorts } from '../../src/wiring.ts';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const db = postgresDatabase(env('DATABASE_URL'), { max: 4 });
const mail = createMailer({ smtpUrl: env('SMTP_URL'), from: 'noreply@example.test' });
const notifier = createNotifier({
  ...notifierPorts(db),
  logger: silentLogger,
  telegram: createTelegramClient({ token: env('TELEGRAM_BOT_TOKEN'), apiRoot: env('TELEGRAM_API_ROOT') }),
  mail,
});
const message = JSON.parse(env('MESSAGE')) as EventMessage;
const deliveries = Number(env('DELIVERIES'));

await db.query('SELECT 1');
process.stdout.write('ready\n');
await once(process.stdin, 'data');
process.stdin.destroy();
const putOff = await Promise.all(
  Array.from({ length: deliveries }, () => deliverUntilHandled(notifier, message)),
);
process.stdout.write(`${JSON.stringify({ putOff, ...notifier.metrics() })}\n`);
mail.close();
await db.close();
