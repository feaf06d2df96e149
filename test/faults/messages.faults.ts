import { connect } from 'amqplib';
import type { ConsumeMessage } from 'amqplib';
import { it } from 'vitest';
import { topology } from '../../src/infra/bus/rabbit/topology.ts';
import { collect } from '../helpers/rabbit.ts';
import { expectClean, runScenario } from './harness.ts';

const AMQP_URL = process.env.AMQP_URL ?? '';

/** Fisher–Yates, in place. */
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/**
 * A second publisher on the cluster's exchange: it taps the real OrderAccepted, OrderCompleted and
 * OrderFailed messages and publishes copies of them (same body, id and headers), shuffled and some
 * several times, during the run and after it. The orchestrator and the notifier must each do their
 * work once per event, however many copies arrive and in whatever order.
 */
it('messages: duplicated and reordered copies of real messages, from a second publisher, during and after the run', async () => {
  await runScenario({ group: 'messages', scenario: 'duplicated and reordered messages' }, async (s) => {
    const { exchange } = topology({ prefix: s.cluster.prefix });
    const connection = await connect(AMQP_URL);
    try {
      const tap = await collect(connection, exchange, ['OrderAccepted', 'OrderCompleted', 'OrderFailed']);
      const publisher = await connection.createConfirmChannel();
      /** The first copy of every message seen, by message id (the tap also sees the copies). */
      const seen = new Map<string, ConsumeMessage>();
      const originals = () => {
        for (const m of tap.messages)
          seen.set(String(m.properties.messageId), seen.get(String(m.properties.messageId)) ?? m);
        return [...seen.values()];
      };
      let copies = 0;
      const republish = async (messages: ConsumeMessage[]) => {
        for (const m of shuffle(messages)) {
          const times = 1 + Math.floor(Math.random() * 3);
          for (let n = 0; n < times; n++) {
            // The original's id, type and headers: to a consumer, the same event again.
            const properties = m.properties as {
              messageId?: string;
              type?: string;
              contentType?: string;
              appId?: string;
              headers?: Record<string, unknown>;
            };
            publisher.publish(exchange, m.fields.routingKey, m.content, {
              persistent: true,
              ...properties,
            });
            copies += 1;
          }
        }
        await publisher.waitForConfirms();
      };

      // During the run: every 200 ms, copies of what passed since the last time, and of a few older.
      let running = true;
      const during = (async () => {
        let copied = 0;
        while (running) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const all = originals();
          const older = shuffle(all.slice(0, copied)).slice(0, 3);
          await republish([...all.slice(copied), ...older]);
          copied = all.length;
        }
      })();
      await s.placeOrders({ orders: 200, clients: 8 }).done;
      await s.drain();
      running = false;
      await during;
      // After the run: every message again, shuffled, once to three times each.
      await republish(originals());
      await tap.close();
      s.markFaultEnd();
      await s.drain();
      expectClean(
        await s.finish({
          faults: `${copies} copies of ${seen.size} real messages (OrderAccepted, OrderCompleted, OrderFailed), shuffled, 1–3 each, during and after the run`,
          faultsInjected: copies,
        }),
      );
    } finally {
      await connection.close().catch(() => {});
    }
  });
});
