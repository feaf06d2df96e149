import type { Database } from '../app/ports/database.ts';
import type { DeadLetter, DeadLetters } from '../app/ports/deadLetters.ts';
import type { Logger } from '../app/ports/logger.ts';

/** A dead letter of the RabbitMQ bus as the table keeps it, for a replay to publish it again. */
export interface StoredDeadLetter {
  readonly id: string;
  readonly queue: string;
  /** The `message` column: what the keeper stored (content and properties). */
  readonly message: unknown;
}

/**
 * Publishes a RabbitMQ dead letter back to its queue and resolves once the broker confirmed it
 * (src/infra/bus/rabbit/deadLetterKeeper.ts); rejects when it cannot.
 */
export type Republish = (letter: StoredDeadLetter) => Promise<void>;

export interface DeadLetterOptions {
  /**
   * Moves the dead-letter queues' messages into the table before a list, replay or drop (the
   * RabbitMQ keeper's `absorb`), so the operator acts on what is dead now.
   */
  readonly absorb?: () => Promise<unknown>;
  /** How a `rabbitmq` row is sent back; without it such rows are not replayed (in-process bus). */
  readonly republish?: Republish;
  /** Told when a list could not absorb the broker's dead letters (it shows the table as it is). */
  readonly logger?: Logger;
}

type Row = Omit<DeadLetter, 'dead_at'> & { readonly dead_at: Date | string };

const COLUMNS = `id::text AS id, coalesce(queue, consumer) AS queue, event_type, event_id::text AS event_id,
  CASE WHEN event_type LIKE 'Order%' OR event_type IN ('PriceQuoted', 'SwapExecuting', 'SwapExecuted')
       THEN aggregate_id::text END AS order_id,
  reason, error, dead_lettered_at AS dead_at, deaths`;

const iso = (time: Date | string): string => (time instanceof Date ? time : new Date(time)).toISOString();

/** Selects the rows of `ids` (all when undefined): a WHERE clause and its parameter. */
const which = (ids: readonly string[] | undefined) =>
  ids === undefined ? { where: 'TRUE', params: [] } : { where: 'id = ANY($1::bigint[])', params: [ids] };

/**
 * DeadLetters on the `dead_letters` table (migrations 005 and 013), for both buses. A replay of an
 * in-process dead letter marks its outbox row unpublished and deletes it in one transaction (as
 * `npm run redrive` does); one of RabbitMQ is published to its queue and confirmed first, then
 * deleted: a crash in between delivers it twice (consumers deduplicate), never loses it.
 */
export function createDeadLetters(db: Database, options: DeadLetterOptions = {}): DeadLetters {
  const absorb = async () => {
    await options.absorb?.();
  };

  return {
    async list({ limit }) {
      // A list still answers while the broker is away: with what the table holds.
      await absorb().catch((error: unknown) =>
        options.logger?.warn(
          { err: error },
          'dead letters on the broker could not be moved; listing the table',
        ),
      );
      const rows = await db.query<Row>(
        `SELECT ${COLUMNS} FROM dead_letters ORDER BY dead_lettered_at DESC, id DESC LIMIT $1`,
        [limit],
      );
      return rows.map((row) => ({ ...row, dead_at: iso(row.dead_at), deaths: Number(row.deaths) }));
    },

    async count() {
      const rows = await db.query<{ queue: string; n: number }>(
        'SELECT coalesce(queue, consumer) AS queue, count(*)::int AS n FROM dead_letters GROUP BY 1',
      );
      return Object.fromEntries(rows.map((row) => [row.queue, Number(row.n)]));
    },

    async replay(ids) {
      await absorb();
      const selected = which(ids);
      const inProcess = await db.transaction(async (tx) => {
        const rows = await tx.query<{ event_id: string }>(
          `DELETE FROM dead_letters WHERE bus = 'in-process' AND ${selected.where} RETURNING event_id::text AS event_id`,
          selected.params,
        );
        await tx.query(
          'UPDATE outbox SET published = FALSE, published_at = NULL WHERE event_id = ANY($1::uuid[])',
          [rows.map((r) => r.event_id)],
        );
        return rows.length;
      });
      let republished = 0;
      const { republish } = options;
      if (republish) {
        const rows = await db.query<StoredDeadLetter>(
          `SELECT id::text AS id, coalesce(queue, consumer) AS queue, message FROM dead_letters
           WHERE bus = 'rabbitmq' AND ${selected.where} ORDER BY id`,
          selected.params,
        );
        for (const row of rows) {
          await republish(row);
          // Deleted only once the broker has it: a crash before this replays it twice, never zero times.
          const deleted = await db.query('DELETE FROM dead_letters WHERE id = $1 RETURNING id', [row.id]);
          republished += deleted.length;
        }
      }
      return inProcess + republished;
    },

    async drop(ids) {
      await absorb();
      const selected = which(ids === 'all' ? undefined : ids);
      const rows = await db.query(
        `DELETE FROM dead_letters WHERE ${selected.where} RETURNING id`,
        selected.params,
      );
      return rows.length;
    },
  };
}
