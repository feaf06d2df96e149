import { connect } from 'amqplib';
import type { Config } from '../config.ts';
import { NOTIFIER_CONSUMER } from '../app/notifications/notifier.ts';
import { SAGA_CONSUMER } from '../app/sagaConsumer.ts';
import { deadLetterQueueOf, topology } from '../infra/bus/rabbit/topology.ts';
import type { Queryable } from '../app/ports/database.ts';
import { checkGuarantees } from './guarantees.ts';
import type { GuaranteeResult, GuaranteeSources, QueueDepth } from './guarantees.ts';

/** Ready messages and consumers of every consumer queue and its dead-letter queue. */
export async function queueStates(
  amqpUrl: string,
  prefix: string,
): Promise<(QueueDepth & { readonly consumers: number })[]> {
  const connection = await connect(amqpUrl);
  // A queue not declared yet closes the channel with 404: checkQueue rejects, and the error the
  // connection also emits must not crash the process.
  connection.on('error', () => {});
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    const states: (QueueDepth & { consumers: number })[] = [];
    for (const queue of topology({ prefix }).queues) {
      for (const name of [queue.name, deadLetterQueueOf(queue.name)]) {
        const { messageCount, consumerCount } = await channel.checkQueue(name);
        states.push({ queue: name, messages: messageCount, consumers: consumerCount });
      }
    }
    return states;
  } finally {
    await connection.close().catch(() => {});
  }
}

/** The simulated market's ledger, when TRADE_WORKER_URL points at one (`npm run market`). */
async function venueLedger(tradeWorkerUrl: string | undefined): Promise<GuaranteeSources['ledger']> {
  if (!tradeWorkerUrl) return undefined;
  const response = await fetch(new URL('/simulation', tradeWorkerUrl)).catch(() => undefined);
  if (!response?.ok) return undefined;
  const body = (await response.json()) as { ledger?: { idempotency_key: string; tx_hash: string }[] };
  return body.ledger;
}

/**
 * `check`: checks every guarantee of ARCHITECTURE.md against the database (and the broker's queues
 * and the venue's ledger when AMQP_URL / TRADE_WORKER_URL are set). Run it after the system has
 * drained. Resolves with every guarantee's result (`formatReport` prints them).
 */
export async function runCheck(config: Config, db: Queryable): Promise<GuaranteeResult[]> {
  const ledger = await venueLedger(config.tradeWorkerUrl);
  return checkGuarantees({
    db,
    ...(config.amqpUrl ? { queues: await queueStates(config.amqpUrl, config.amqpPrefix) } : {}),
    ...(ledger ? { ledger } : {}),
    consumers: [
      { name: SAGA_CONSUMER, eventTypes: ['OrderAccepted'] },
      { name: NOTIFIER_CONSUMER, eventTypes: ['OrderCompleted', 'OrderFailed'] },
    ],
  });
}
