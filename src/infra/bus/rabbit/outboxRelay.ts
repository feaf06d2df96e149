import { setTimeout as sleep } from 'node:timers/promises';
import { connectBroker } from './connection.ts';
import { failpoint } from '../../../app/failpoints.ts';
import type { ChannelModel, ConfirmChannel, Message } from 'amqplib';
import type { Database, Queryable } from '../../../app/ports/database.ts';
import type { Logger } from '../../logger.ts';
import { CLAIM_SQL, MARK_SQL, messageBody, publishOptions } from './outboxMessage.ts';
import type { OutboxRow } from './outboxMessage.ts';
import { OUTBOX_CHANNEL } from '../outboxNotifier.ts';
import { createBackoff } from '../outage.ts';
import { backoffDelay, errorText } from '../deliveryPolicy.ts';
import { declareTopology, TOPOLOGY } from './topology.ts';
import { publishSpan } from '../messageTracing.ts';
import type { Topology, TopologyOptions } from './topology.ts';

export interface OutboxRelayOptions {
  readonly db: Database;
  readonly amqpUrl: string;
  readonly logger: Logger;
  /** Declared at every (re)connect; events go to its exchange (default {@link TOPOLOGY}). */
  readonly topology?: Topology;
  readonly topologyOptions?: TopologyOptions;
  /** `connection_name` client property (default "outbox relay"). */
  readonly connectionName?: string;
  /**
   * Which event types go out with the mandatory flag, so that the broker returns them when no
   * queue takes them (default: the types the topology binds a queue to; see publishOptions).
   */
  readonly mandatory?: (eventType: string) => boolean;
  /** Rows claimed, published and confirmed together (default 500). */
  readonly batchSize?: number;
  /** Fallback poll when no NOTIFY woke the relay (default 100 ms). */
  readonly pollIntervalMs?: number;
  /** Longest wait for a batch's confirms before giving the connection up (default 5 s). */
  readonly confirmTimeoutMs?: number;
  /** Backoff for a row the broker returned or nacked: doubles from min to max (100 ms, 30 s). */
  readonly retryMinDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /**
   * Backoff between connection attempts: doubles from min to max (100 ms, 5 s). A connection lost
   * soon after it was opened counts as a failed attempt, so a broker that drops every connection
   * is not reconnected to at once and again.
   */
  readonly reconnectMinDelayMs?: number;
  readonly reconnectMaxDelayMs?: number;
  /**
   * Pause after a batch failed on the database's side (unreachable, a failed statement): doubles
   * from min to max (100 ms, 2 s) while it keeps failing; a NOTIFY ends it early, since the
   * database must be back to send one. The broker connection is left alone.
   */
  readonly databaseRetryMinDelayMs?: number;
  readonly databaseRetryMaxDelayMs?: number;
  /**
   * Failpoint for tests: runs after a batch is confirmed and before its rows are marked. Throwing
   * rolls the marks back, as a crash at that moment would.
   */
  readonly afterConfirm?: (eventIds: readonly string[]) => Promise<void> | void;
}

/** What the relay has done since it started (for tests, benches and metrics). */
export interface OutboxRelayCounters {
  /** Rows published, confirmed and marked. */
  published: number;
  /** Messages the broker returned as unroutable (mandatory flag). */
  returned: number;
  /** Messages the broker nacked. */
  nacked: number;
  /** Batches that claimed at least one row. */
  batches: number;
  /** Batches rolled back: confirm timeout, lost connection, database error. */
  failedBatches: number;
  /** Successful connections, the first one included. */
  connections: number;
}

interface Refusal {
  readonly attempt: number;
  readonly retryAt: number;
}

/**
 * A batch that failed on the broker's side (publish refused, confirms lost or late): the channel's
 * state is unknown, so the connection is replaced. Any other failure of a batch leaves it alone.
 */
class BrokerBatchError extends Error {}

/**
 * Role `relay`: moves outbox rows to RabbitMQ. Each batch is one transaction: claim unpublished
 * rows with FOR UPDATE SKIP LOCKED (so any number of relays share the outbox without publishing a
 * row twice), publish them all on a confirm channel, wait once for the batch's confirms (bounded:
 * a dropped connection can leave confirms pending forever), mark the confirmed rows, commit.
 *
 * At least once: a crash between the confirms and the commit publishes the batch again. A row the
 * broker returns or nacks stays unpublished and is skipped by this relay until its backoff ends,
 * so it never holds up the rows behind it.
 *
 * Failures are told apart by where they happen. A failure outside the publishing (the database:
 * claim, mark, commit) pauses the relay with a capped exponential backoff and keeps the broker
 * connection: every confirm is in, so the channel is clean, and a new connection would not bring
 * the database back. A broker error drops the connection and reconnects with backoff.
 */
export function createOutboxRelay(options: OutboxRelayOptions) {
  const { db, logger } = options;
  const topo = options.topology ?? TOPOLOGY;
  const routedTypes = new Set(topo.queues.flatMap((q) => q.routingKeys));
  const mandatory = options.mandatory ?? ((type: string) => routedTypes.has(type));
  const batchSize = options.batchSize ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
  const retryMin = options.retryMinDelayMs ?? 100;
  const retryMax = options.retryMaxDelayMs ?? 30_000;
  const reconnectMax = options.reconnectMaxDelayMs ?? 5_000;
  const broker = createBackoff(options.reconnectMinDelayMs ?? 100, reconnectMax);
  const database = createBackoff(
    options.databaseRetryMinDelayMs ?? 100,
    options.databaseRetryMaxDelayMs ?? 2_000,
  );

  const counters: OutboxRelayCounters = {
    published: 0,
    returned: 0,
    nacked: 0,
    batches: 0,
    failedBatches: 0,
    connections: 0,
  };
  /** Rows the broker refused, by outbox id: excluded from claims until `retryAt`. */
  const backoffs = new Map<string, Refusal>();
  /** Replies of messages returned in the batch in flight, by event id. */
  const returns = new Map<string, string>();

  let connection: ChannelModel | null = null;
  let channel: ConfirmChannel | null = null;
  let connecting: Promise<void> | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = true;
  let poller: ReturnType<typeof setInterval> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let abort = new AbortController();

  function onReturn(message: Message): void {
    const id = message.properties.messageId as string | undefined;
    const fields = message.fields as { replyCode?: number; replyText?: string };
    if (id) returns.set(id, `${fields.replyCode ?? '?'} ${fields.replyText ?? 'returned'}`);
  }

  async function openConnection(): Promise<void> {
    const conn = await connectBroker(options.amqpUrl, options.connectionName ?? 'outbox relay');
    const openedAt = Date.now();
    try {
      // Without an 'error' listener a connection error would crash the process.
      conn.on('error', (err: Error) => logger.warn({ err }, 'relay: broker connection error'));
      conn.on('close', () => {
        if (connection !== conn) return;
        connection = null;
        channel = null;
        if (stopped) return;
        // A connection that lasted was healthy: its loss starts a new run of failures.
        if (Date.now() - openedAt >= reconnectMax) broker.succeed();
        const delay = broker.fail();
        logger.warn({ delay }, 'relay: broker connection closed; reconnecting');
        void reconnect();
      });
      const ch = await conn.createConfirmChannel();
      ch.on('error', (err: Error) => logger.warn({ err }, 'relay: channel error'));
      // A channel closed by the broker (e.g. a failed declaration) leaves the connection open:
      // close it too, so there is one recovery path.
      ch.on('close', () => void conn.close().catch(() => {}));
      ch.on('return', onReturn);
      await declareTopology(ch, topo, options.topologyOptions);
      connection = conn;
      channel = ch;
      counters.connections += 1;
    } catch (error) {
      await conn.close().catch(() => {});
      throw error;
    }
  }

  /** Connects with backoff until connected or stopped; then looks at the outbox. */
  function reconnect(): Promise<void> {
    connecting ??= (async () => {
      while (!stopped && !channel) {
        await sleep(broker.remainingMs, undefined, { signal: abort.signal }).catch(() => {});
        if (stopped) return;
        try {
          await openConnection();
        } catch (err) {
          const delay = broker.fail();
          logger.warn(
            { err, attempt: broker.failures, delay },
            'relay: cannot connect to the broker; retrying',
          );
        }
      }
    })().finally(() => {
      connecting = null;
      wake();
    });
    return connecting;
  }

  function refuse(row: OutboxRow, reason: string): void {
    const attempt = (backoffs.get(row.id)?.attempt ?? 0) + 1;
    const delay = backoffDelay(attempt, retryMin, retryMax);
    backoffs.set(row.id, { attempt, retryAt: Date.now() + delay });
    const orderId = (row.metadata as { correlation_id?: unknown } | null)?.correlation_id;
    logger.warn(
      { order_id: orderId, event_id: row.event_id, event_type: row.event_type, reason, attempt, delay },
      'relay: broker refused an event; will retry',
    );
  }

  function excluded(): string[] {
    const now = Date.now();
    const ids: string[] = [];
    for (const [id, backoff] of backoffs) {
      if (backoff.retryAt > now) ids.push(id);
      // Long past its retry time and not claimed since: another relay published it.
      else if (now - backoff.retryAt > 2 * retryMax) backoffs.delete(id);
    }
    return ids;
  }

  /** Publishes the batch and waits for every confirm; resolves to the rows the broker took. */
  async function publishAll(ch: ConfirmChannel, rows: readonly OutboxRow[]): Promise<OutboxRow[]> {
    returns.clear();
    const outcomes = rows.map((row) => {
      const publishing = publishSpan(row, topo.exchange);
      return new Promise<boolean>((resolve, reject) => {
        const options = publishOptions(row, mandatory(row.event_type));
        // The publish span's context rides the message headers: the consumer continues from it.
        Object.assign(options.headers ?? {}, publishing.headers);
        // publish() returning false only means the socket buffer is full; a batch is bounded,
        // so it is left to drain rather than awaited.
        ch.publish(topo.exchange, row.event_type, messageBody(row), options, (err) => {
          publishing.end(err == null ? undefined : (err as Error).message);
          if (err == null) resolve(true);
          // A nack refuses this row only; any other error (the channel closed) fails the batch.
          else if ((err as Error).message === 'message nacked') resolve(false);
          else reject(err as Error);
        });
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no publisher confirms within ${confirmTimeoutMs} ms`)),
        confirmTimeoutMs,
      );
    });
    let acked: boolean[];
    try {
      acked = await Promise.race([Promise.all(outcomes), timeout]);
    } finally {
      clearTimeout(timer);
    }
    // basic.return precedes the confirm of the same message, so `returns` is complete here.
    const taken: OutboxRow[] = [];
    rows.forEach((row, i) => {
      const returned = returns.get(row.event_id);
      if (returned !== undefined) {
        counters.returned += 1;
        refuse(row, `returned: ${returned}`);
      } else if (!acked[i]) {
        counters.nacked += 1;
        refuse(row, 'nacked');
      } else taken.push(row);
    });
    return taken;
  }

  /** One batch in one transaction; resolves to the number of rows claimed. */
  async function relayBatch(ch: ConfirmChannel): Promise<number> {
    return db.transaction(async (tx: Queryable) => {
      const rows = await tx.query<OutboxRow>(CLAIM_SQL, [excluded(), batchSize]);
      if (rows.length === 0) return 0;
      counters.batches += 1;
      const taken = await publishAll(ch, rows).catch((error: unknown) => {
        throw new BrokerBatchError(errorText(error), { cause: error });
      });
      broker.succeed();
      failpoint('relay.after-confirm');
      await options.afterConfirm?.(taken.map((r) => r.event_id));
      if (taken.length > 0) await tx.query(MARK_SQL, [taken.map((r) => r.id)]);
      for (const row of taken) backoffs.delete(row.id);
      counters.published += taken.length;
      return rows.length;
    });
  }

  async function pump(): Promise<void> {
    do {
      again = false;
      const ch = channel;
      if (stopped || !ch) return;
      try {
        if ((await relayBatch(ch)) === batchSize) again = true;
        if (database.succeed()) logger.info('relay: the database answers again; relaying');
      } catch (err) {
        counters.failedBatches += 1;
        again = false;
        if (err instanceof BrokerBatchError) {
          logger.error(
            { err: err.cause },
            'relay: publishing a batch failed; its rows stay unpublished, reconnecting to the broker',
          );
          // The channel's state is unknown after a timeout or a failed publish: start afresh.
          if (channel === ch) await connection?.close().catch(() => {});
          return;
        }
        const delay = database.fail();
        logger.error(
          { err, attempt: database.failures, delay },
          'relay: batch failed (database); its rows stay unpublished, retrying after a pause',
        );
        database.whenOver(wake);
        return;
      }
    } while (again);
  }

  /** Looks at the outbox now: on NOTIFY, on each poll, after a reconnect; not during a pause. */
  function wake(): void {
    if (stopped || database.remainingMs > 0) return;
    if (running) {
      again = true;
      return;
    }
    running = pump().finally(() => {
      running = null;
      if (again) wake();
    });
  }

  return {
    counters,
    /** Connects (with backoff), declares the topology, listens for appends and starts polling. */
    async start(): Promise<void> {
      if (!stopped) return;
      stopped = false;
      abort = new AbortController();
      broker.succeed();
      database.succeed();
      unlisten = await db.listen(OUTBOX_CHANNEL, () => {
        database.retryNow();
        wake();
      });
      poller = setInterval(wake, pollIntervalMs);
      await reconnect();
    },
    /** Stops claiming, lets the batch in flight finish, closes channel and connection. */
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      abort.abort();
      clearInterval(poller);
      database.cancel();
      await unlisten?.().catch(() => {});
      await connecting;
      await running;
      const conn = connection;
      connection = null;
      channel = null;
      await conn?.close().catch(() => {});
    },
    /** True while connected to the broker with a usable channel. */
    get connected(): boolean {
      return channel !== null;
    },
  };
}

/** A running outbox relay (see {@link createOutboxRelay}). */
export type OutboxRelay = ReturnType<typeof createOutboxRelay>;
