/**
 * What a run measured, from the timestamps the system stored (never from the load generator's
 * clock): events' `created_at` (the appending transaction's start), `outbox.published_at` (the
 * relay's or in-process bus's mark after delivery) and `notifications.sent_at` (the notifier's
 * record of a sent Telegram message). All clocks are this machine's.
 */
import type { Database } from '../../src/app/ports/database.ts';

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles of `values` (ms, rounded to 0.1). */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN;
  const r = (n: number) => Math.round(n * 10) / 10;
  return {
    n: sorted.length,
    p50: r(at(0.5)),
    p95: r(at(0.95)),
    p99: r(at(0.99)),
    max: r(sorted.at(-1) ?? NaN),
  };
}

/** One order as stored: times in ms since the epoch. */
export interface OrderTimes {
  readonly accepted: number;
  readonly published: number | null;
  /** The saga's first event after OrderAccepted (version 2 of the order's stream). */
  readonly sagaStart: number | null;
  readonly terminal: number | null;
  readonly outcome: string | null;
  readonly reason: string | null;
  readonly notified: number | null;
}

/** A PostgreSQL array literal of uuids, one parameter that PGlite and postgres.js both take. */
const uuidArray = (ids: readonly string[]) => `{${ids.join(',')}}`;

const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`;

export async function orderTimes(db: Database, orderIds: readonly string[]): Promise<OrderTimes[]> {
  if (orderIds.length === 0) return [];
  return db.query<OrderTimes>(
    `WITH ids AS (SELECT unnest($1::uuid[]) AS id)
     SELECT ${ms('a.created_at')} AS accepted, ${ms('o.published_at')} AS published,
            ${ms('s.created_at')} AS "sagaStart", ${ms('t.created_at')} AS terminal,
            t.event_type AS outcome, t.event_data->>'reason' AS reason, ${ms('n.sent_at')} AS notified
     FROM ids
     JOIN events a ON a.aggregate_id = ids.id AND a.version = 1
     LEFT JOIN outbox o ON o.event_id = a.event_id
     LEFT JOIN events s ON s.aggregate_id = ids.id AND s.version = 2
     LEFT JOIN events t ON t.aggregate_id = ids.id AND t.event_type IN ('OrderCompleted', 'OrderFailed')
     LEFT JOIN notifications n ON n.event_id = t.event_id AND n.channel = 'telegram'`,
    [uuidArray(orderIds)],
  );
}

export interface StepFigures extends Percentiles {
  /** `PriceQuoted → SwapExecuting`: consecutive events of the order's stream. */
  readonly step: string;
}

/**
 * Time between consecutive events of each order's stream, by the pair of event types. Steps that
 * need no I/O ride in the append of the step before them: their events share its transaction
 * and so its `created_at` (0 ms). Position events are stored in those same appends.
 */
export async function stepTimes(db: Database, orderIds: readonly string[]): Promise<StepFigures[]> {
  if (orderIds.length === 0) return [];
  const rows = await db.query<StepFigures & { at: number }>(
    `WITH ids AS (SELECT unnest($1::uuid[]) AS id),
     steps AS (
       SELECT lag(e.event_type) OVER w AS from_type, e.event_type AS to_type, e.version,
              extract(epoch FROM e.created_at - lag(e.created_at) OVER w) * 1000 AS ms
       FROM events e JOIN ids ON e.aggregate_id = ids.id
       WINDOW w AS (PARTITION BY e.aggregate_id ORDER BY e.version))
     SELECT from_type || ' → ' || to_type AS step, count(*)::int AS n, min(version)::int AS at,
            round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms), 1)::float8 AS p50,
            round(percentile_disc(0.95) WITHIN GROUP (ORDER BY ms), 1)::float8 AS p95,
            round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), 1)::float8 AS p99,
            round(max(ms), 1)::float8 AS max
     FROM steps WHERE from_type IS NOT NULL
     GROUP BY from_type, to_type ORDER BY min(version), count(*) DESC`,
    [uuidArray(orderIds)],
  );
  return rows.map(({ at: _at, ...step }) => step);
}

const BUSINESS_OUTCOMES = new Set(['insufficient_liquidity']);

export interface PhaseFigures {
  readonly orders: number;
  readonly completed: number;
  /** OrderFailed with a business reason (insufficient_liquidity). */
  readonly failedAsExpected: number;
  /** Orders accepted that have no terminal event after the drain. */
  readonly unfinished: number;
  /** OrderFailed by other reasons, by reason. */
  readonly unexpectedFailures: Record<string, number>;
  /** orders ÷ (last terminal event − first acceptance). */
  readonly completedPerSecond: number;
  readonly acceptToTerminal: Percentiles;
  readonly stages: Record<string, Percentiles>;
  readonly steps: readonly StepFigures[];
  /** Accept → terminal by acceptance time, for the latency-over-time plot. */
  readonly timeline: readonly { readonly seconds: number; readonly ms: number }[];
  /** p99 of accept → terminal in each 1-s window of acceptance. */
  readonly windows: readonly { readonly seconds: number; readonly p99: number; readonly n: number }[];
}

const diffs = (rows: readonly OrderTimes[], from: keyof OrderTimes, to: keyof OrderTimes) =>
  rows.flatMap((r) => {
    const [a, b] = [r[from], r[to]];
    return typeof a === 'number' && typeof b === 'number' ? [b - a] : [];
  });

export function phaseFigures(rows: readonly OrderTimes[], steps: readonly StepFigures[]): PhaseFigures {
  const ended = rows.filter((r) => r.terminal !== null);
  // reduce, not Math.min(...): a soak's tens of thousands of arguments overflow the stack.
  const first = rows.reduce((min, r) => Math.min(min, r.accepted), Infinity);
  const last = ended.reduce((max, r) => Math.max(max, r.terminal ?? 0), 0);
  const unexpectedFailures: Record<string, number> = {};
  let failedAsExpected = 0;
  for (const r of ended) {
    if (r.outcome !== 'OrderFailed') continue;
    if (BUSINESS_OUTCOMES.has(r.reason ?? '')) failedAsExpected += 1;
    else unexpectedFailures[r.reason ?? 'none'] = (unexpectedFailures[r.reason ?? 'none'] ?? 0) + 1;
  }
  const timeline = ended.map((r) => ({
    seconds: Math.round(r.accepted - first) / 1000,
    ms: Math.round(((r.terminal ?? 0) - r.accepted) * 10) / 10,
  }));
  const bySecond = new Map<number, number[]>();
  for (const point of timeline) {
    const second = Math.floor(point.seconds);
    const bucket = bySecond.get(second) ?? [];
    bucket.push(point.ms);
    bySecond.set(second, bucket);
  }
  return {
    orders: rows.length,
    completed: ended.filter((r) => r.outcome === 'OrderCompleted').length,
    failedAsExpected,
    unfinished: rows.length - ended.length,
    unexpectedFailures,
    completedPerSecond: ended.length > 0 ? Math.round((rows.length / ((last - first) / 1000)) * 10) / 10 : 0,
    acceptToTerminal: percentiles(diffs(rows, 'accepted', 'terminal')),
    stages: {
      'accept → published': percentiles(diffs(rows, 'accepted', 'published')),
      'published → saga start': percentiles(diffs(rows, 'published', 'sagaStart')),
      'accept → terminal': percentiles(diffs(rows, 'accepted', 'terminal')),
      'terminal → notified': percentiles(diffs(rows, 'terminal', 'notified')),
    },
    steps,
    timeline,
    windows: [...bySecond.entries()]
      .sort(([a], [b]) => a - b)
      .map(([seconds, values]) => ({ seconds, p99: percentiles(values).p99, n: values.length })),
  };
}
