import type { Queryable } from '../../src/app/ports/database.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import { checkGuarantees } from '../../src/ops/guarantees.ts';
import type { GuaranteeResult, QueueDepth } from '../../src/ops/guarantees.ts';
import { NOTIFIER_CONSUMER } from '../../src/app/notifications/notifier.ts';
import { SAGA_CONSUMER } from '../../src/app/sagaConsumer.ts';
import { shortOrderId } from '../../src/app/notifications/texts.ts';
import type { ScenarioRow } from './report.ts';

/** What the world outside the database saw of a run: the only evidence a bug cannot rewrite. */
export interface RunEvidence {
  readonly db: Queryable;
  /**
   * Per Idempotency-Key the clients sent: every distinct order id the API answered with (a client
   * retries a request that got no answer with the same key; more than one id is a duplicate).
   */
  readonly answers: ReadonlyMap<string, readonly string[]>;
  /** The users the run placed orders for (orders of other users in the database are ignored). */
  readonly users: readonly string[];
  /** The venue's ledger: every swap it executed. */
  readonly ledger: readonly { readonly idempotency_key: string; readonly tx_hash: string }[];
  /** What the Telegram emulator received, when the run's users have Telegram chats. */
  readonly telegram?: readonly { readonly chat_id: string; readonly text: string }[];
  /** The broker's queues (consumer and dead-letter), for guarantee 8. */
  readonly queues?: readonly QueueDepth[];
}

/** What a run's verdict counts: the report row's fields of the same names (see ScenarioRow). */
export type VerdictCounts = Pick<
  ScenarioRow,
  | 'lost'
  | 'duplicated'
  | 'stuck'
  | 'ghostSwaps'
  | 'violations'
  | 'duplicateNotifications'
  | 'completed'
  | 'failed'
  | 'failures'
>;

export interface Verdict extends VerdictCounts {
  readonly guarantees: readonly GuaranteeResult[];
  /** Examples of whatever was wrong, for the assertion message. */
  readonly examples: readonly unknown[];
}

/**
 * Checks a drained run against the outside world as well as against its own events: the clients'
 * answers (lost and duplicated orders), the venue's ledger (ghost and double swaps), the Telegram
 * emulator (duplicate notifications), then every guarantee through the verifier.
 */
export async function verifyRun(evidence: RunEvidence): Promise<Verdict> {
  const { db } = evidence;
  const orders = await db.query<{
    order_id: string;
    terminal: string | null;
    reason: string | null;
    tx_hash: string | null;
  }>(
    `SELECT a.aggregate_id::text AS order_id, t.event_type AS terminal, t.event_data->>'reason' AS reason,
            s.event_data->>'tx_hash' AS tx_hash
     FROM events a
     LEFT JOIN events t ON t.aggregate_id = a.aggregate_id AND t.event_type IN ('OrderCompleted', 'OrderFailed')
     LEFT JOIN events s ON s.aggregate_id = a.aggregate_id AND s.event_type = 'SwapExecuted'
     WHERE a.event_type = 'OrderAccepted' AND a.event_data->>'user_id' = ANY($1)`,
    [evidence.users],
  );
  const examples: unknown[] = [];
  const stored = new Map(orders.map((o) => [o.order_id, o]));

  const answered = new Set<string>();
  let lost = 0;
  let duplicated = 0;
  for (const [key, ids] of evidence.answers) {
    if (ids.length > 1) {
      duplicated += ids.length - 1;
      examples.push({ problem: 'one key answered with several orders', key, ids });
    }
    for (const id of ids) {
      answered.add(id);
      if (!stored.has(id)) {
        lost += 1;
        examples.push({ problem: 'accepted, not stored', order_id: id });
      }
    }
  }
  // A stored order no client was ever answered with: the API placed a second order for a retry.
  for (const id of stored.keys())
    if (!answered.has(id)) {
      duplicated += 1;
      examples.push({ problem: 'stored, never answered to a client', order_id: id });
    }
  // Rows repeat when an order has two terminal events or two SwapExecuted (the verifier counts them).
  const perOrder = new Map<string, number>();
  for (const o of orders) perOrder.set(o.order_id, (perOrder.get(o.order_id) ?? 0) + 1);
  for (const [id, rows] of perOrder)
    if (rows > 1) {
      duplicated += 1;
      examples.push({ problem: 'two terminal events or two swaps', order_id: id });
    }

  const stuck = [...stored.values()].filter((o) => o.terminal === null);
  examples.push(...stuck.slice(0, 5).map((o) => ({ problem: 'stuck', order_id: o.order_id })));

  const byKey = new Map([...stored.values()].map((o) => [idempotencyKeyFor(o.order_id), o]));
  let ghostSwaps = 0;
  const executions = new Map<string, number>();
  for (const entry of evidence.ledger) {
    const order = byKey.get(entry.idempotency_key);
    if (!order) continue; // another run's order, on a shared venue
    executions.set(entry.idempotency_key, (executions.get(entry.idempotency_key) ?? 0) + 1);
    if (order.terminal !== 'OrderCompleted' || order.tx_hash !== entry.tx_hash) {
      ghostSwaps += 1;
      examples.push({ problem: 'ghost swap', order_id: order.order_id, terminal: order.terminal, entry });
    }
  }
  for (const [key, n] of executions)
    if (n > 1) {
      duplicated += n - 1;
      examples.push({ problem: 'executed twice at the venue', idempotency_key: key });
    }
  // A completed order whose swap the venue never executed is as wrong as a ghost.
  const executedKeys = new Set(evidence.ledger.map((e) => e.idempotency_key));
  for (const o of stored.values())
    if (o.terminal === 'OrderCompleted' && !executedKeys.has(idempotencyKeyFor(o.order_id))) {
      ghostSwaps += 1;
      examples.push({ problem: 'completed without an execution at the venue', order_id: o.order_id });
    }

  let duplicateNotifications = 0;
  if (evidence.telegram) {
    const seen = new Map<string, number>();
    for (const m of evidence.telegram) {
      const k = `${m.chat_id} ${m.text}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    // A message names its order by its short id as a word ("Order 1a2b3c4d completed: …"); a set
    // lookup per word keeps this linear for the 10,000-order run.
    const shortIds = new Set([...stored.keys()].map(shortOrderId));
    for (const [k, n] of seen)
      if (n > 1 && k.split(/\s+/).some((word) => shortIds.has(word))) duplicateNotifications += n - 1;
  }

  const guarantees = await checkGuarantees({
    db,
    ledger: evidence.ledger,
    ...(evidence.queues ? { queues: evidence.queues } : {}),
    consumers: [
      { name: SAGA_CONSUMER, eventTypes: ['OrderAccepted'] },
      { name: NOTIFIER_CONSUMER, eventTypes: ['OrderCompleted', 'OrderFailed'] },
    ],
  });
  for (const g of guarantees)
    if (g.violationCount) examples.push({ guarantee: g.guarantee, violations: g.violations });

  const failures: Record<string, number> = {};
  for (const o of stored.values()) if (o.reason) failures[o.reason] = (failures[o.reason] ?? 0) + 1;
  return {
    lost,
    duplicated,
    stuck: stuck.length,
    ghostSwaps,
    violations: guarantees.reduce((sum, g) => sum + g.violationCount, 0),
    duplicateNotifications,
    guarantees,
    completed: [...stored.values()].filter((o) => o.terminal === 'OrderCompleted').length,
    failed: [...stored.values()].filter((o) => o.terminal === 'OrderFailed').length,
    failures,
    examples: examples.slice(0, 20),
  };
}

/** The verdict's counts, as a report row carries them. */
export function rowCounts(verdict: Verdict): VerdictCounts {
  const { guarantees: _guarantees, examples: _examples, ...counts } = verdict;
  return counts;
}
