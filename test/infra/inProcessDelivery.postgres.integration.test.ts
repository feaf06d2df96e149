import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Consumer } from '../../src/app/messages.ts';
import { createInProcessDelivery } from '../../src/infra/bus/inProcessDelivery.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { DATABASE_URL, newId, scratchPostgres } from '../helpers/databases.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { TcpProxy } from '../helpers/tcpProxy.ts';
import { eventually } from '../helpers/wait.ts';

const OUTAGE_MS = 3_000;

// Needs a PostgreSQL server (DATABASE_URL), reached through a TCP proxy the test cuts; a database
// of its own, since the delivery reads every unpublished row.
describe.runIf(DATABASE_URL)('in-process delivery while PostgreSQL is unreachable', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let proxy: TcpProxy;
  let viaProxy: Database;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 2 });
    const url = new URL(scratch.url);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    viaProxy = postgresDatabase(url.toString(), { max: 4 });
  });
  afterAll(async () => {
    await proxy?.close();
    await viaProxy?.close();
    await scratch?.drop();
  });

  /** Appends a PriceQuoted through the direct connection, which the outage spares; its event id. */
  async function append(): Promise<string> {
    const orderId = newId();
    const event = aCatalogueEvent(orderId, 'PriceQuoted');
    await createEventStore(scratch.db).append([
      { aggregate_id: orderId, aggregate_type: 'order', expected_version: 0, events: [event] },
    ]);
    return event.event_id;
  }

  async function published(eventIds: readonly string[]): Promise<boolean> {
    const [row] = await scratch.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM outbox WHERE published AND event_id = ANY($1::uuid[])',
      [eventIds],
    );
    return row?.n === eventIds.length;
  }

  describe('when the database is cut for a few seconds', () => {
    it('logs a handful of lines, not one per poll or message, and delivers everything once it is back', async () => {
      const lines: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
      // A consumer that records its work in the database, as every real one does.
      let gate: Promise<void> | undefined;
      let inHand!: () => void;
      const handed = new Promise<void>((resolve) => (inHand = resolve));
      const consumer: Consumer = {
        name: 'writes-to-the-database',
        eventTypes: ['PriceQuoted'],
        async handle() {
          if (gate) {
            inHand();
            await gate;
          }
          await viaProxy.query('SELECT 1');
        },
      };
      const delivery = createInProcessDelivery({ db: viaProxy, logger, consumers: [consumer] });
      delivery.start();
      try {
        const first = await append();
        await eventually(() => published([first]), 'the first event to be delivered');

        // One message is in the consumer's hands when the connection goes.
        let release!: () => void;
        gate = new Promise<void>((resolve) => (release = resolve));
        const inFlight = await append();
        delivery.wake();
        await handed;
        const linesBefore = lines.length;
        proxy.cut('reset');
        release();
        gate = undefined;
        const meanwhile = await append();
        await sleep(OUTAGE_MS); // the outage itself is what is under test
        const logged = lines.slice(linesBefore);
        proxy.restore();

        await eventually(() => published([inFlight, meanwhile]), 'the events of the outage to be delivered');
        const messages = logged.map((line) => (JSON.parse(line) as { msg: string }).msg);
        // Capped exponential backoff on the reads, one line for the message in hand.
        expect(messages.length, messages.join('\n')).toBeLessThanOrEqual(10);
        expect(messages).toContain('the database is unreachable; messages wait for it and are retried');
        expect(lines.slice(linesBefore + logged.length).join('\n')).toContain('the database answers again');
      } finally {
        await delivery.stop();
      }
    });
  });
});
