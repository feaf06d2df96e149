/**
 * `rebuild-projections` on a store of realistic size: fills a scratch database with N orders'
 * event streams written straight in SQL (as the saga would have stored them, the read-model
 * trigger keeping the views), then runs `rebuild-projections` as an operator would (a process of
 * its own) and reports its rate and how many rows differed.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:rebuild
 *   DATABASE_URL=… npm run bench:rebuild -- --orders 100000 --concurrent
 *   npm run bench:rebuild -- --orders 5000           # PGlite (file) without DATABASE_URL
 *
 * Streams: 90 % completed (OrderAccepted; PriceQuoted, PositionCreated, SwapExecuting;
 * SwapExecuted, OrderCompleted, PositionUpdated: 7 events in three appends), 6 % failed after the
 * swap was sent (6 events), 4 % failed at the quote (2 events): about 6.7 events per order. Each
 * append is its own transaction, and the appends of 2,000 orders interleave, as concurrent sagas'
 * do, so an order's events lie thousands of events apart in commit order.
 *
 * `--concurrent` keeps placing orders through the real order flow (in-process bus, simulated
 * market) while the rebuild runs, then drains and compares the views with a replay of every event:
 * none lost. It reports the longest order intake meanwhile (the swap holds appends briefly).
 * `--profile <dir>` writes a CPU profile of the rebuild process.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { DEFAULT_SAGA_SETTINGS } from '../src/app/sagaSteps.ts';
import type { Database } from '../src/app/ports/database.ts';
import { positionIdFor } from '../src/domain/ids.ts';
import { convert, currencies, decimal, formatAmount, sum } from '../src/domain/money.ts';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { silentLogger } from '../src/infra/logger.ts';
import { migrate } from '../src/infra/migrations.ts';
import { compareReadModels } from '../src/infra/projectionReplay.ts';
import { createSimulatedMarket } from '../src/infra/venues/simulatedMarket.ts';
import { wireOrderFlow } from '../src/wiring.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string' },
    batch: { type: 'string', default: '5000' },
    concurrent: { type: 'boolean', default: false },
    /** Clients placing orders during a --concurrent rebuild. */
    clients: { type: 'string', default: '8' },
    profile: { type: 'string' },
    /** Keep the scratch database (PostgreSQL) for a closer look; its name is printed. */
    keep: { type: 'boolean', default: false },
  },
});
const URL_ = process.env.DATABASE_URL;
const ORDERS = Number(values.orders ?? (URL_ ? 100_000 : 5_000));
const CHUNK = 2000;
const CURRENCIES = currencies();

const PAIRS = [
  { from: 'USDT', to: 'BTC', price: '0.00001' },
  { from: 'USDT', to: 'ETH', price: '0.000285714285714285' },
  { from: 'USDC', to: 'BTC', price: '0.00001' },
  { from: 'USDC', to: 'ETH', price: '0.000285714285714285' },
] as const;

interface Row {
  event_id: string;
  aggregate_id: string;
  aggregate_type: 'order' | 'position';
  event_type: string;
  version: number;
  event_data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  created_at: string;
}

/** The three appends of order `i`, as the saga stores them. */
function streamsOf(i: number, t0: number): [Row[], Row[], Row[]] {
  const id = randomUUID();
  const positionId = positionIdFor(id);
  const userId = `user-${i % 1000}`;
  const pair = PAIRS[i % PAIRS.length] ?? PAIRS[0];
  const target = CURRENCIES.get(pair.to);
  if (!target) throw new Error(`no currency ${pair.to}`);
  const fromAmount = `${10 + ((i * 37) % 99_990)}.${String(i % 100).padStart(2, '0')}`;
  const kind = i % 100 < 4 ? 'quote_failed' : i % 100 < 10 ? 'swap_failed' : 'completed';
  const at = (ms: number) => new Date(t0 + i * 20 + ms).toISOString();
  const meta = (ms: number, extra: Record<string, unknown> = {}) => ({
    correlation_id: id,
    causation_id: null,
    occurred_at: at(ms),
    schema_version: 1,
    ...extra,
  });
  const row = (
    aggregate: 'order' | 'position',
    version: number,
    event_type: string,
    event_data: Record<string, unknown>,
    ms: number,
  ): Row => ({
    event_id: randomUUID(),
    aggregate_id: aggregate === 'order' ? id : positionId,
    aggregate_type: aggregate,
    event_type,
    version,
    event_data,
    metadata: meta(ms, event_type === 'OrderAccepted' ? { saga_version: 1 } : {}),
    created_at: at(ms),
  });
  const accepted = [
    row(
      'order',
      1,
      'OrderAccepted',
      {
        order_id: id,
        user_id: userId,
        from_amount: fromAmount,
        from_currency: pair.from,
        to_currency: pair.to,
        order_type: 'market',
        accepted_at: at(0),
      },
      0,
    ),
  ];
  if (kind === 'quote_failed') {
    const failed = row(
      'order',
      2,
      'OrderFailed',
      { order_id: id, reason: 'price_unavailable', failed_step: 'quote_price', failed_at: at(5) },
      5,
    );
    return [accepted, [failed], []];
  }
  const quoted = formatAmount(convert(decimal(fromAmount), decimal(pair.price), target));
  const executedPrice = formatAmount(decimal(pair.price).times('0.999').toDecimalPlaces(18));
  const executed = formatAmount(convert(decimal(fromAmount), decimal(executedPrice), target));
  const txHash = `0x${randomBytes(32).toString('hex')}`;
  const started = [
    row(
      'order',
      2,
      'PriceQuoted',
      { price: pair.price, to_amount: quoted, quoted_at: at(5), source: 'simulated' },
      5,
    ),
    row(
      'position',
      1,
      'PositionCreated',
      {
        position_id: positionId,
        user_id: userId,
        order_id: id,
        from_currency: pair.from,
        to_currency: pair.to,
        created_at: at(5),
      },
      5,
    ),
    row(
      'order',
      3,
      'SwapExecuting',
      { idempotency_key: `swap-${id}`, position_id: positionId, started_at: at(5) },
      5,
    ),
  ];
  if (kind === 'swap_failed') {
    return [
      accepted,
      started,
      [
        row(
          'order',
          4,
          'OrderFailed',
          { order_id: id, reason: 'insufficient_liquidity', failed_step: 'execute_swap', failed_at: at(12) },
          12,
        ),
        row(
          'position',
          2,
          'PositionClosed',
          { position_id: positionId, reason: 'order_failed', closed_at: at(12) },
          12,
        ),
      ],
    ];
  }
  return [
    accepted,
    started,
    [
      row(
        'order',
        4,
        'SwapExecuted',
        { tx_hash: txHash, to_amount: executed, executed_price: executedPrice, executed_at: at(12) },
        12,
      ),
      row(
        'order',
        5,
        'OrderCompleted',
        {
          order_id: id,
          position_id: positionId,
          from_amount: fromAmount,
          from_currency: pair.from,
          to_amount: executed,
          to_currency: pair.to,
          executed_price: executedPrice,
          tx_hash: txHash,
          completed_at: at(12),
        },
        12,
      ),
      row(
        'position',
        2,
        'PositionUpdated',
        {
          position_id: positionId,
          order_id: id,
          from_amount: fromAmount,
          to_amount: executed,
          executed_price: executedPrice,
          total_from_amount: sum('0', fromAmount),
          total_to_amount: sum('0', executed),
          updated_at: at(12),
        },
        12,
      ),
    ],
  ];
}

const INSERT = `
INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata, created_at)
SELECT event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata, created_at
FROM jsonb_to_recordset($1::text::jsonb) AS t(
  event_id uuid, aggregate_id uuid, aggregate_type text, event_type text, version int, event_data jsonb,
  metadata jsonb, created_at timestamptz, ord int)
ORDER BY ord`;

/** N orders' appends, one transaction each round of a chunk of 2,000 orders; the trigger keeps the views. */
async function seed(db: Database): Promise<number> {
  const started = performance.now();
  const t0 = Date.now() - ORDERS * 20;
  let events = 0;
  for (let first = 0; first < ORDERS; first += CHUNK) {
    const rounds: [Row[], Row[], Row[]] = [[], [], []];
    for (let i = first; i < Math.min(ORDERS, first + CHUNK); i++) {
      const streams = streamsOf(i, t0);
      for (const r of [0, 1, 2] as const) rounds[r].push(...streams[r]);
    }
    for (const round of rounds) {
      if (round.length === 0) continue;
      await db.query(INSERT, [JSON.stringify(round.map((row, ord) => ({ ...row, ord })))]);
      events += round.length;
    }
    if ((first / CHUNK) % 10 === 9) {
      process.stderr.write(`seeded ${first + CHUNK} orders, ${events} events\n`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `seeded ${ORDERS} orders, ${events} events in ${seconds.toFixed(1)} s (${Math.round(events / seconds)} events/s with the trigger)`,
  );
  return events;
}

/** `npm run rebuild-projections` as a process of its own; its report and wall time. */
function rebuild(
  env: Record<string, string>,
): Promise<{ code: number | null; seconds: number; out: string }> {
  const started = performance.now();
  const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...profile, '--import', 'tsx', 'src/main.ts', 'rebuild-projections'],
      {
        env: { ...process.env, AMQP_URL: '', LOG_LEVEL: 'warn', ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      process.stdout.write(chunk);
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, seconds: (performance.now() - started) / 1000, out }));
  });
}

/** Orders placed through the real flow until `stop` resolves; the longest intake meanwhile. */
async function placeWhile(db: Database, stop: Promise<unknown>) {
  const market = createSimulatedMarket({ seed: 5 });
  const { orders, delivery } = wireOrderFlow({
    db,
    logger: silentLogger,
    prices: market.priceService,
    venue: market.venue,
    currencies: CURRENCIES,
    settings: DEFAULT_SAGA_SETTINGS,
    concurrency: 32,
  });
  delivery.start();
  let stopped = false;
  void stop.finally(() => (stopped = true));
  const intake: number[] = [];
  const placed: string[] = [];
  await Promise.all(
    Array.from({ length: Number(values.clients) }, async (_, c) => {
      while (!stopped) {
        const t = performance.now();
        const { order_id } = await orders.accept(
          {
            user_id: `live-${c}`,
            from_amount: '250',
            from_currency: 'USDT',
            to_currency: 'BTC',
            order_type: 'market',
          },
          { causationId: null },
        );
        intake.push(performance.now() - t);
        placed.push(order_id);
      }
    }),
  );
  // Drained: every saga placed has ended (the sweeper's list is empty again).
  for (;;) {
    const [open] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM open_sagas');
    if (open?.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await delivery.stop();
  intake.sort((a, b) => a - b);
  return { placed, p50: intake[Math.floor(intake.length / 2)] ?? 0, max: intake.at(-1) ?? 0 };
}

async function run(db: Database, env: Record<string, string>): Promise<number | null> {
  await migrate(db);
  await seed(db);
  if (!values.concurrent) {
    const result = await rebuild(env);
    console.log(
      `rebuild-projections exited ${result.code} after ${result.seconds.toFixed(1)} s (process start included)`,
    );
    return result.code;
  }
  const rebuilding = rebuild(env);
  const live = await placeWhile(db, rebuilding);
  const result = await rebuilding;
  const comparison = await compareReadModels(db);
  console.log(
    `while rebuilding: ${live.placed.length} orders placed and run (intake p50 ${live.p50.toFixed(1)} ms, max ${live.max.toFixed(0)} ms)`,
  );
  console.log(
    `after: views against a replay of ${comparison.events} events: ${comparison.differenceCount} differences ` +
      `(orders_view ${comparison.rows.orders} rows, positions_view ${comparison.rows.positions} rows)`,
  );
  for (const d of comparison.differences) console.log(`  ${d.view} ${d.id}: ${d.problem}`);
  return comparison.differenceCount === 0 ? result.code : 1;
}

let code: number | null;
if (URL_) {
  const admin = postgresDatabase(URL_, { max: 1 });
  const name = `bench_rebuild_${process.pid}`;
  await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  await admin.exec(`CREATE DATABASE ${name}`);
  const target = new URL(URL_);
  target.pathname = `/${name}`;
  const db = postgresDatabase(target.toString(), { max: 16 });
  try {
    console.log(`PostgreSQL (${name}):`);
    code = await run(db, { DATABASE_URL: target.toString() });
  } finally {
    await db.close();
    if (values.keep) console.log(`kept ${target.toString()}`);
    else await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  }
} else {
  if (values.concurrent)
    throw new Error('--concurrent needs DATABASE_URL: the embedded database has one process');
  const dir = await mkdtemp(join(tmpdir(), 'bench-rebuild-'));
  try {
    const db = await pgliteDatabase(dir);
    console.log('PGlite (file):');
    await migrate(db);
    await seed(db);
    await db.close();
    const result = await rebuild({ DATABASE_URL: '', DATA_DIR: dir });
    code = result.code;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
process.exitCode = code ?? 1;
