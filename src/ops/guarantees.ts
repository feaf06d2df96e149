import { idempotencyKeyFor } from '../domain/ids.ts';
import type { Queryable } from '../app/ports/database.ts';
import { compareReadModels } from '../infra/projectionReplay.ts';
import { table } from '../cli/output.ts';

/** One guarantee of ARCHITECTURE.md, checked against what is stored. */
export interface GuaranteeResult {
  readonly guarantee: number;
  readonly title: string;
  /** `n/a`: nothing stored can show it (said why in `detail`). */
  readonly status: 'ok' | 'violated' | 'n/a';
  /** What was looked at, e.g. "5000 orders". */
  readonly checked: string;
  /** Up to ten offending rows, for the report. */
  readonly violations: readonly unknown[];
  readonly violationCount: number;
  readonly detail?: string;
}

/** What the broker says about a queue (from amqplib's checkQueue). */
export interface QueueDepth {
  readonly queue: string;
  readonly messages: number;
}

export interface GuaranteeSources {
  readonly db: Queryable;
  /** Ready messages per consumer queue and dead-letter queue; absent on the in-process bus. */
  readonly queues?: readonly QueueDepth[];
  /**
   * The venue's ledger (the simulated market's `GET /simulation`): one entry per executed swap,
   * keyed by idempotency key. Without it, guarantee 2 is checked from the events alone.
   */
  readonly ledger?: readonly { readonly idempotency_key: string; readonly tx_hash: string }[];
  /** Names recorded in processed_events by the consumers that ran (e.g. saga-orchestrator). */
  readonly consumers?: readonly { readonly name: string; readonly eventTypes: readonly string[] }[];
}

const SAMPLE = 10;

function result(
  guarantee: number,
  title: string,
  checked: string,
  violations: readonly unknown[],
  detail?: string,
): GuaranteeResult {
  return {
    guarantee,
    title,
    status: violations.length === 0 ? 'ok' : 'violated',
    checked,
    violations: violations.slice(0, SAMPLE),
    violationCount: violations.length,
    ...(detail ? { detail } : {}),
  };
}

async function count(db: Queryable, sql: string): Promise<number> {
  const [row] = await db.query<{ n: string | number }>(sql);
  return Number(row?.n ?? 0);
}

/** 1. Every accepted order has exactly one terminal event, and it is the order's last event. */
async function oneTerminalEvent(db: Queryable): Promise<GuaranteeResult> {
  const orders = await count(db, `SELECT count(*) AS n FROM events WHERE event_type = 'OrderAccepted'`);
  const violations = await db.query(`
    WITH terminal AS (
      SELECT aggregate_id, count(*) AS terminals, max(version) AS terminal_version
      FROM events WHERE event_type IN ('OrderCompleted', 'OrderFailed') GROUP BY aggregate_id),
    last AS (SELECT aggregate_id, max(version) AS last_version FROM events GROUP BY aggregate_id)
    SELECT a.aggregate_id::text AS order_id, coalesce(t.terminals, 0)::int AS terminals,
           t.terminal_version, l.last_version
    FROM events a
    JOIN last l ON l.aggregate_id = a.aggregate_id
    LEFT JOIN terminal t ON t.aggregate_id = a.aggregate_id
    WHERE a.event_type = 'OrderAccepted'
      AND (t.terminals IS DISTINCT FROM 1 OR t.terminal_version <> l.last_version)`);
  return result(
    1,
    'every accepted order reaches exactly one terminal event, nothing follows it',
    `${orders} orders`,
    violations,
  );
}

/**
 * 2. No swap executed twice for one order, and none for an order that ended failed. From the
 * events: at most one SwapExecuted per order; from reconciliation (the venue's own answer for every
 * failed order that sent a swap): no execution found. With the venue's ledger, both ways: every
 * execution at the venue has its SwapExecuted with the same tx hash and belongs to no failed order,
 * and every SwapExecuted has its execution.
 */
async function noDoubleSwap(db: Queryable, sources: GuaranteeSources): Promise<GuaranteeResult> {
  const title = 'no swap is executed twice for one order, and none for an order that ended failed';
  const executed = await db.query<{ order_id: string; swaps: number; tx_hashes: string[] }>(`
    SELECT aggregate_id::text AS order_id, count(*)::int AS swaps,
           array_agg(event_data->>'tx_hash') AS tx_hashes
    FROM events WHERE event_type = 'SwapExecuted' GROUP BY aggregate_id`);
  const violations: unknown[] = executed
    .filter((r) => r.swaps !== 1)
    .map((r) => ({ ...r, problem: 'more than one SwapExecuted' }));

  const [reconciled] = await db.query<{ present: boolean }>(
    `SELECT to_regclass('swap_reconciliations') IS NOT NULL AS present`,
  );
  let reconciliation = 'no reconciliation table';
  if (reconciled?.present) {
    const found = await db.query<{ order_id: string; tx_hash: string; found_by: string }>(`
      SELECT order_id::text AS order_id, tx_hash, found_by FROM swap_reconciliations
      WHERE venue_outcome = 'executed'`);
    violations.push(
      ...found.map((r) => ({ ...r, problem: 'the venue executed the swap of a failed order' })),
    );
    const [tally] = await db.query<{ total: number; unsettled: number }>(`
      SELECT count(*)::int AS total, count(*) FILTER (WHERE venue_outcome IS NULL)::int AS unsettled
      FROM swap_reconciliations`);
    reconciliation = `${tally?.total ?? 0} failed orders that sent a swap, ${tally?.unsettled ?? 0} not yet confirmed by the venue`;
  }
  const anomalies = await db.query<{ order_id: string; venue_anomalies: string[] }>(`
    SELECT aggregate_id::text AS order_id, event_data->'venue_anomalies' AS venue_anomalies
    FROM events WHERE event_type = 'SwapExecuted' AND event_data ? 'venue_anomalies' LIMIT ${SAMPLE}`);
  const anomalyDetail = anomalies.length
    ? `; swaps executed outside their terms (recorded, flagged): ${anomalies.map((a) => `${a.order_id} ${a.venue_anomalies.join(', ')}`).join('; ')}`
    : '';

  if (!sources.ledger) {
    return result(
      2,
      title,
      `${executed.length} executed swaps (events and reconciliation; no venue ledger)`,
      violations,
      `${reconciliation}${anomalyDetail}`,
    );
  }
  const failed = new Set(
    (
      await db.query<{ order_id: string }>(
        `SELECT aggregate_id::text AS order_id FROM events WHERE event_type = 'OrderFailed'`,
      )
    ).map((r) => r.order_id),
  );
  const byKey = new Map<string, string[]>();
  for (const entry of sources.ledger) {
    byKey.set(entry.idempotency_key, [...(byKey.get(entry.idempotency_key) ?? []), entry.tx_hash]);
  }
  const recorded = new Set<string>();
  for (const row of executed) {
    const key = idempotencyKeyFor(row.order_id);
    recorded.add(key);
    const ledger = byKey.get(key) ?? [];
    if (ledger.length !== 1 || ledger[0] !== row.tx_hashes[0]) {
      violations.push({ order_id: row.order_id, problem: 'ledger disagrees', ledger, events: row.tx_hashes });
    }
  }
  for (const [key, hashes] of byKey) {
    const orderId = key.startsWith('swap-') ? key.slice('swap-'.length) : undefined;
    if (orderId && failed.has(orderId)) {
      violations.push({ order_id: orderId, problem: 'executed at the venue, but the order failed', hashes });
    } else if (!recorded.has(key)) {
      violations.push({ idempotency_key: key, problem: 'executed at the venue, no SwapExecuted', hashes });
    }
  }
  return result(
    2,
    title,
    `${executed.length} executed swaps against ${sources.ledger.length} venue ledger entries`,
    violations,
    `${reconciliation}${anomalyDetail}`,
  );
}

/** 3. One notification per terminal order per channel (recorded; the primary key forbids two rows). */
async function oneNotification(db: Queryable): Promise<GuaranteeResult> {
  const [table] = await db.query<{ present: boolean }>(
    `SELECT to_regclass('notifications') IS NOT NULL AS present`,
  );
  if (!table?.present) {
    return {
      ...result(3, 'exactly one notification per terminal order per channel', 'no notifications table', []),
      status: 'n/a',
    };
  }
  const terminals = await count(
    db,
    `SELECT count(*) AS n FROM events WHERE event_type IN ('OrderCompleted', 'OrderFailed')`,
  );
  const violations = await db.query(`
    SELECT e.aggregate_id::text AS order_id, e.event_id::text AS event_id, count(n.event_id)::int AS notifications,
           coalesce(max(n.attempts), 0)::int AS most_attempts
    FROM events e LEFT JOIN notifications n ON n.event_id = e.event_id
    WHERE e.event_type IN ('OrderCompleted', 'OrderFailed')
    GROUP BY e.aggregate_id, e.event_id
    HAVING count(n.event_id) = 0 OR bool_or(n.status = 'sending')`);
  return result(
    3,
    'exactly one notification per terminal order per channel',
    `${terminals} terminal orders`,
    violations,
    'each terminal event has its notification rows, none still sending; (event_id, channel) is the primary key',
  );
}

/**
 * 4. Every outbox row is published (after draining), and every event a consumer takes has its
 * outbox row (the outbox may leave out the types nobody consumes: OUTBOX_EVENTS).
 */
async function outboxPublished(
  db: Queryable,
  consumers: GuaranteeSources['consumers'],
): Promise<GuaranteeResult> {
  const rows = await count(db, 'SELECT count(*) AS n FROM outbox');
  const unpublished = await db.query(`
    SELECT id::text AS id, event_type, event_id::text AS event_id, created_at
    FROM outbox WHERE NOT published ORDER BY outbox.id LIMIT 100`);
  const consumed = [...new Set(consumers?.flatMap((c) => c.eventTypes) ?? [])];
  const missing = await db.query(
    `SELECT e.event_id::text AS event_id, e.event_type, 'no outbox row' AS problem
     FROM events e WHERE e.event_type = ANY($1::text[])
       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.event_id)
     ORDER BY e.id LIMIT 100`,
    [consumed],
  );
  const violations = [...unpublished, ...missing];
  const [lag] = await db.query<{ max_ms: number | null }>(`
    SELECT round(extract(epoch FROM max(published_at - created_at)) * 1000)::int AS max_ms
    FROM outbox WHERE published`);
  return result(
    4,
    'every outbox row is published, and every consumed event has one',
    `${rows} outbox rows`,
    violations,
    `longest commit → published: ${lag?.max_ms ?? 0} ms`,
  );
}

/** 5. Each aggregate's versions run 1..n without gaps. */
async function contiguousVersions(db: Queryable): Promise<GuaranteeResult> {
  const streams = await count(db, 'SELECT count(DISTINCT aggregate_id) AS n FROM events');
  const violations = await db.query(`
    SELECT aggregate_id::text AS aggregate_id, min(version) AS first, max(version) AS last, count(*)::int AS events
    FROM events GROUP BY aggregate_id HAVING min(version) <> 1 OR max(version) <> count(*)`);
  return result(5, "each aggregate's versions run 1..n with no gaps", `${streams} streams`, violations);
}

/**
 * 6. Read models equal a replay of the events: `orders_view` and `positions_view` (kept by a trigger)
 * row for row against the TypeScript fold of every event (src/app/projections.ts), and
 * `open_sagas` (the sweeper's list) against the orders with no terminal event.
 */
async function readModels(db: Queryable): Promise<GuaranteeResult> {
  const open = await count(db, 'SELECT count(*) AS n FROM open_sagas');
  const openViolations = await db.query(`
    WITH replayed AS (
      SELECT DISTINCT a.aggregate_id AS order_id FROM events a
      WHERE a.aggregate_type = 'order' AND a.event_type = 'OrderAccepted'
        AND NOT EXISTS (SELECT 1 FROM events t
                        WHERE t.aggregate_id = a.aggregate_id
                          AND t.event_type IN ('OrderCompleted', 'OrderFailed')))
    SELECT 'open_sagas' AS view, coalesce(r.order_id, s.order_id)::text AS id,
           CASE WHEN s.order_id IS NULL THEN 'open in the events, missing from open_sagas'
                ELSE 'in open_sagas, but the events show it accepted and ended, or never accepted' END AS problem
    FROM replayed r FULL JOIN open_sagas s ON s.order_id = r.order_id
    WHERE r.order_id IS NULL OR s.order_id IS NULL`);
  const views = await compareReadModels(db, { sample: SAMPLE });
  return {
    ...result(
      6,
      'read models equal a replay of the events',
      `orders_view (${views.rows.orders} rows), positions_view (${views.rows.positions} rows) against a replay of ${views.events} events; open_sagas (${open} open)`,
      [...views.differences, ...openViolations],
    ),
    violationCount: views.differenceCount + openViolations.length,
  };
}

/** 7. A position's totals equal the sum of its completed orders. */
async function positionTotals(db: Queryable): Promise<GuaranteeResult> {
  const positions = await count(db, `SELECT count(*) AS n FROM events WHERE event_type = 'PositionCreated'`);
  const violations = await db.query(`
    WITH completed AS (
      SELECT event_data->>'position_id' AS position_id,
             sum((event_data->>'from_amount')::numeric) AS from_sum,
             sum((event_data->>'to_amount')::numeric) AS to_sum
      FROM events WHERE event_type = 'OrderCompleted' GROUP BY 1),
    latest AS (
      SELECT DISTINCT ON (aggregate_id) aggregate_id::text AS position_id,
             (event_data->>'total_from_amount')::numeric AS total_from,
             (event_data->>'total_to_amount')::numeric AS total_to
      FROM events WHERE event_type = 'PositionUpdated' ORDER BY aggregate_id, version DESC)
    SELECT coalesce(c.position_id, l.position_id) AS position_id,
           c.from_sum::text, l.total_from::text, c.to_sum::text, l.total_to::text
    FROM completed c FULL JOIN latest l ON l.position_id = c.position_id
    WHERE c.from_sum IS DISTINCT FROM l.total_from OR c.to_sum IS DISTINCT FROM l.total_to`);
  return result(
    7,
    "a position's totals equal the sum of its completed orders",
    `${positions} positions`,
    violations,
  );
}

/**
 * 8. Drained: queues empty, and every message a consumer takes was processed by it or sits in its
 * dead letters.
 */
async function drained(db: Queryable, sources: GuaranteeSources): Promise<GuaranteeResult> {
  const violations: unknown[] = [];
  for (const queue of sources.queues ?? []) {
    if (!queue.queue.endsWith('.dead') && queue.messages > 0)
      violations.push({ queue: queue.queue, ready: queue.messages });
  }
  const [table] = await db.query<{ present: boolean }>(
    `SELECT to_regclass('dead_letters') IS NOT NULL AS present`,
  );
  const deadLetters = table?.present
    ? 'OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = e.event_id AND d.consumer = $1)'
    : '';
  let messages = 0;
  for (const consumer of sources.consumers ?? []) {
    messages += await count(
      db,
      `SELECT count(*) AS n FROM events WHERE event_type IN (${consumer.eventTypes.map((t) => `'${t}'`).join(', ')})`,
    );
    const missing = await db.query(
      `SELECT $1::text AS consumer, e.event_type, e.event_id::text AS event_id
       FROM events e
       WHERE e.event_type = ANY($2::text[])
         AND NOT (EXISTS (SELECT 1 FROM processed_events p WHERE p.event_id = e.event_id AND p.processed_by = $1)
                  ${deadLetters})`,
      [consumer.name, consumer.eventTypes],
    );
    violations.push(...missing);
  }
  const dead = (sources.queues ?? []).filter((q) => q.queue.endsWith('.dead'));
  const deadDetail = dead.length
    ? `; dead-letter queues: ${dead.map((q) => `${q.queue}=${q.messages}`).join(', ')}`
    : '';
  return result(
    8,
    'after draining, queues are empty and every message was processed or dead-lettered',
    `${messages} consumer messages, ${(sources.queues ?? []).length} queues`,
    violations,
    `processed_events checked for ${(sources.consumers ?? []).map((c) => c.name).join(', ') || 'no consumer'}${deadDetail}`,
  );
}

/** 9. Bad input changes nothing: a property of requests, not of stored state. */
function badInput(): GuaranteeResult {
  return {
    ...result(9, 'bad input changes nothing and gets a clear, specific error', 'requests, not state', []),
    status: 'n/a',
    detail: 'checked per request by test/http; stored state cannot show a rejected request',
  };
}

/** Checks every guarantee of ARCHITECTURE.md that stored state can show. */
export async function checkGuarantees(sources: GuaranteeSources): Promise<GuaranteeResult[]> {
  const { db } = sources;
  return [
    await oneTerminalEvent(db),
    await noDoubleSwap(db, sources),
    await oneNotification(db),
    await outboxPublished(db, sources.consumers),
    await contiguousVersions(db),
    await readModels(db),
    await positionTotals(db),
    await drained(db, sources),
    badInput(),
  ];
}

/**
 * The report `check` prints: a table with a row per guarantee (guarantee, status, items checked,
 * violations, an example), then each guarantee's detail and, for a violated one, its examples in
 * full, and a last line saying whether anything was violated.
 */
export function formatReport(results: readonly GuaranteeResult[]): string {
  const status = (r: GuaranteeResult) => (r.status === 'violated' ? 'FAIL' : r.status);
  const example = (r: GuaranteeResult) => {
    const first = r.violations[0];
    if (first === undefined) return '';
    const text = JSON.stringify(first);
    return text.length > 60 ? `${text.slice(0, 59)}…` : text;
  };
  const lines = [
    table(
      ['#', 'guarantee', 'status', 'checked', 'violations', 'example'],
      results.map((r) => [
        String(r.guarantee),
        r.title,
        status(r),
        r.checked,
        String(r.violationCount),
        example(r),
      ]),
    ),
    '',
  ];
  for (const r of results) {
    if (r.detail) lines.push(`${r.guarantee}. ${r.detail}`);
    if (r.status === 'violated') for (const v of r.violations) lines.push(`   ${JSON.stringify(v)}`);
  }
  const failed = results.filter((r) => r.status === 'violated');
  const total = failed.reduce((sum, r) => sum + r.violationCount, 0);
  lines.push(
    failed.length
      ? `${failed.length} guarantee(s) violated, ${total} violation(s): ${failed.map((r) => r.guarantee).join(', ')}`
      : 'zero violations',
  );
  return lines.join('\n');
}
