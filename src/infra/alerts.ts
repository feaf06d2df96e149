import type { ChannelModel } from 'amqplib';
import type {
  ActiveAlert,
  Alert,
  AlertConditions,
  AlertKind,
  AlertStore,
  OperatorChannel,
} from '../app/alerts.ts';
import type { Queryable } from '../app/ports/database.ts';
import type { NotificationTransport } from '../app/notifications/transport.ts';
import { connectBroker } from './bus/rabbit/connection.ts';
import { deadLetterQueueOf } from './bus/rabbit/topology.ts';
import type { Topology } from './bus/rabbit/topology.ts';

interface AlertRow {
  kind: AlertKind;
  subject: string;
  detail: string;
  raised_at: Date | string;
}

const toAlert = (row: AlertRow): ActiveAlert => ({ ...row, raised_at: new Date(row.raised_at) });

/** AlertStore on the `alerts` table (migration 013), for PostgreSQL and PGlite alike. */
export function createAlertStore(db: Queryable): AlertStore {
  return {
    async raise(alert: Alert) {
      // The partial unique index lets one active row per (kind, subject): of several processes
      // raising the same alert, one insert takes and the others do nothing.
      const rows = await db.query(
        `INSERT INTO alerts (kind, subject, detail) VALUES ($1, $2, $3)
         ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO NOTHING
         RETURNING id`,
        [alert.kind, alert.subject, alert.detail],
      );
      return rows.length > 0;
    },
    async resolve(kind, subject) {
      // A second process's UPDATE waits for the first's row lock, then finds it resolved.
      const [row] = await db.query<AlertRow>(
        `UPDATE alerts SET resolved_at = now()
         WHERE kind = $1 AND subject = $2 AND resolved_at IS NULL
         RETURNING kind, subject, detail, raised_at`,
        [kind, subject],
      );
      return row ? toAlert(row) : undefined;
    },
    async active(kinds) {
      const rows = await db.query<AlertRow>(
        `SELECT kind, subject, detail, raised_at FROM alerts
         WHERE resolved_at IS NULL AND kind = ANY($1::text[])
         ORDER BY raised_at`,
        [[...kinds]],
      );
      return rows.map(toAlert);
    },
  };
}

/** The conditions of the evaluated alerts, each one small query. */
export function createAlertConditions(db: Queryable): AlertConditions {
  return {
    async stuckSagas(quietMs, sample) {
      // Only sagas accepted before the threshold can have been quiet that long: the events are
      // looked up for those alone (usually none), never for every open saga.
      const rows = await db.query<{ order_id: string; total: number }>(
        `WITH stuck AS (
           SELECT s.order_id, s.accepted_at FROM open_sagas s
           WHERE s.accepted_at < now() - $1 * interval '1 millisecond'
             AND (SELECT max(e.created_at) FROM events e WHERE e.aggregate_id = s.order_id)
                 < now() - $1 * interval '1 millisecond')
         SELECT order_id::text AS order_id, (SELECT count(*)::int FROM stuck) AS total
         FROM stuck ORDER BY accepted_at LIMIT $2`,
        [quietMs, sample],
      );
      return { count: rows[0]?.total ?? 0, oldest: rows.map((r) => r.order_id) };
    },
    reconciliationAnomalies: () =>
      db.query<{ order_id: string; tx_hash: string | null }>(
        `SELECT order_id::text AS order_id, tx_hash FROM swap_reconciliations
         WHERE venue_outcome = 'executed' ORDER BY failed_at`,
      ),
  };
}

export interface DeadLetterCounter {
  /** Dead letters waiting: rows of `dead_letters`, plus with RabbitMQ every `<queue>.dead`'s messages. */
  count(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The default dead-letter count: the in-process bus's `dead_letters` table and, with RabbitMQ, the
 * messages of each queue's `<queue>.dead` (checkQueue on one connection kept for it, reopened
 * after a failure). A dead-letter queue no consumer has declared yet holds nothing.
 */
export function createDeadLetterCounter(
  db: Queryable,
  broker?: { readonly amqpUrl: string; readonly topology: Topology; readonly timeoutMs?: number },
): DeadLetterCounter {
  // A broker behind a dropped network may never answer: the sweeper must not wait on it.
  const timeoutMs = broker?.timeoutMs ?? 5_000;
  let connection: Promise<ChannelModel> | undefined;

  const connected = () => {
    connection ??= connectBroker(broker?.amqpUrl ?? '', 'market-order-saga alerts').then((c) => {
      c.on('error', () => {});
      c.on('close', () => {
        connection = undefined;
      });
      return c;
    });
    connection.catch(() => {
      connection = undefined;
    });
    return connection;
  };

  async function queued(topology: Topology): Promise<number> {
    const model = await connected();
    let total = 0;
    for (const queue of topology.queues) {
      // A channel per check: checking a queue that does not exist closes the channel (404).
      const channel = await model.createChannel();
      channel.on('error', () => {});
      try {
        total += (await channel.checkQueue(deadLetterQueueOf(queue.name))).messageCount;
      } catch {
        // Not declared yet: no dead letters in it.
      } finally {
        await channel.close().catch(() => {});
      }
    }
    return total;
  }

  async function bounded(topology: Topology): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Whatever hangs goes with the connection; the next count opens a fresh one.
        const stale = connection;
        connection = undefined;
        void stale?.then((c) => c.close()).catch(() => {});
        reject(new Error(`RabbitMQ did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([queued(topology), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async count() {
      const [[row], inBroker] = await Promise.all([
        db.query<{ n: number }>('SELECT count(*)::int AS n FROM dead_letters'),
        broker ? bounded(broker.topology) : 0,
      ]);
      return (row?.n ?? 0) + inBroker;
    },
    async close() {
      const open = connection;
      connection = undefined;
      await open?.then((c) => c.close()).catch(() => {});
    },
  };
}

/**
 * The operator's channels (ALERT_TELEGRAM_CHAT_ID, ALERT_EMAIL) on the transports the service
 * notifies users with; a setting without its transport is left out.
 */
export function operatorChannels(options: {
  readonly telegram?: NotificationTransport | undefined;
  readonly telegramChatId?: string | undefined;
  readonly mail?: NotificationTransport | undefined;
  readonly email?: string | undefined;
}): OperatorChannel[] {
  const channels: OperatorChannel[] = [];
  const { telegram, telegramChatId, mail, email } = options;
  if (telegram && telegramChatId) {
    channels.push({
      name: 'telegram',
      send: (subject, text) =>
        telegram.send(telegramChatId, { subject, text: `[market-order-saga] ${subject}\n${text}` }),
    });
  }
  if (mail && email) {
    channels.push({
      name: 'email',
      send: (subject, text) => mail.send(email, { subject: `[market-order-saga] ${subject}`, text }),
    });
  }
  return channels;
}
