/**
 * Saga throughput and latency with the in-process delivery, on PGlite (file-backed, the embedded
 * default) and on PostgreSQL (DATABASE_URL; a scratch database is created and dropped).
 *
 *   npm run bench:saga                                     # PGlite only
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:saga
 *   npm run bench:saga -- --orders 20000 --only postgres   # memory over many orders
 *
 * Latency first, on a fresh database: orders submitted at a fixed rate (100/s); accept → terminal.
 * Throughput then: N orders submitted by 32 concurrent clients; completed sagas/s over the run.
 * Memory: heap after GC every 5,000 orders, and live saga actors at the end (must be 0). With the
 * simulated market in process (the default) the heap includes the venue's ledger, which keeps every
 * swap by design (about 0.8 KB each); `--market process` serves the market from a process of its own
 * (`npm run market`, reached through the HTTP adapters, as a deployment would), so the heap is the
 * service's alone:
 *
 *   npm run bench:saga -- --orders 20000 --only postgres --market process
 * COUNT_QUERIES=1 also prints how many statements of each kind were sent (round trips per saga).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PriceService, TradeVenue } from '../src/app/ports.ts';
import { DEFAULT_SAGA_SETTINGS } from '../src/app/sagaSteps.ts';
import { currencies } from '../src/domain/money.ts';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import type { Database } from '../src/app/ports/database.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { silentLogger } from '../src/infra/logger.ts';
import { migrate } from '../src/infra/migrations.ts';
import { createHttpPriceService } from '../src/infra/venues/httpPriceService.ts';
import { createHttpTradeWorker } from '../src/infra/venues/httpTradeWorker.ts';
import { createSimulatedMarket } from '../src/infra/venues/simulatedMarket.ts';
import { startMarket } from '../test/helpers/cluster.ts';
import { wireOrderFlow } from '../src/wiring.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '3000' },
    rate: { type: 'string', default: '100' },
    'rate-seconds': { type: 'string', default: '10' },
    clients: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '128' },
    pool: { type: 'string', default: '16' },
    only: { type: 'string' },
    /** `in-process` (default): the simulated market in this heap; `process`: over HTTP. */
    market: { type: 'string', default: 'in-process' },
    /** Without the read models' trigger (migration 010), to measure what it costs. */
    'no-read-models': { type: 'boolean', default: false },
  },
});
if (!['in-process', 'process'].includes(values.market)) {
  throw new Error(`--market must be "in-process" or "process", not "${values.market}"`);
}
const ORDERS = Number(values.orders);
const RATE = Number(values.rate);
const RATE_SECONDS = Number(values['rate-seconds']);
const CLIENTS = Number(values.clients);
const CONCURRENCY = Number(values.concurrency);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const heapMb = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

/** The service's saga path, wired as main.ts wires it, with a completion probe on the consumer. */
function system(db: Database, market: { priceService: PriceService; venue: TradeVenue }) {
  const accepted = new Map<string, number>();
  /** Sagas that ended before accept() returned to their client: the delivery is woken by the append. */
  const endedEarly = new Map<string, number>();
  const latencies: number[] = [];
  /** Every 5,000 finished sagas: when, and the heap after GC. */
  const milestones: Array<{ at: number; heap: number }> = [];
  let finished = 0;
  let onFinished = () => {};
  const count = (started: number, ended: number) => {
    latencies.push(ended - started);
    finished += 1;
    if (finished % 5000 === 0) milestones.push({ at: performance.now(), heap: heapMb() });
    onFinished();
  };
  const { runner, delivery, orders } = wireOrderFlow({
    db,
    logger: silentLogger,
    prices: market.priceService,
    venue: market.venue,
    currencies: currencies(),
    settings: DEFAULT_SAGA_SETTINGS,
    concurrency: CONCURRENCY,
    decorate: (orchestrator) => ({
      ...orchestrator,
      async handle(message) {
        await orchestrator.handle(message);
        const started = accepted.get(message.aggregate_id);
        if (started === undefined) {
          endedEarly.set(message.aggregate_id, performance.now());
          return;
        }
        accepted.delete(message.aggregate_id);
        count(started, performance.now());
      },
    }),
  });
  delivery.start();

  async function place(): Promise<void> {
    const started = performance.now();
    const { order_id } = await orders.accept(
      {
        user_id: 'bench',
        from_amount: '1000',
        from_currency: 'USDT',
        to_currency: 'BTC',
        order_type: 'market',
      },
      { causationId: null },
    );
    const ended = endedEarly.get(order_id);
    if (ended === undefined) {
      accepted.set(order_id, started);
    } else {
      endedEarly.delete(order_id);
      count(started, ended);
    }
  }

  const allFinished = (count: number) =>
    new Promise<void>((resolve) => {
      onFinished = () => finished >= count && resolve();
      onFinished();
    });

  const reset = () => {
    finished = 0;
    latencies.length = 0;
    milestones.length = 0;
  };
  return { place, allFinished, latencies, milestones, runner, delivery, reset };
}

interface Report {
  backend: string;
  sagasPerSecond: number;
  p50: number;
  p99: number;
  rateP50: number;
  rateP99: number;
  heap: string;
  liveActors: number;
}

const queryCounts = new Map<string, number>();
function counting(db: Database): Database {
  if (!process.env.COUNT_QUERIES) return db;
  return {
    ...db,
    query(text, params) {
      const key = text.replace(/\s+/g, ' ').trim().slice(0, 60);
      queryCounts.set(key, (queryCounts.get(key) ?? 0) + 1);
      return db.query(text, params);
    },
  };
}

/** The price service and trade venue the sagas call, in this process or in a market process. */
async function openMarket(): Promise<{
  priceService: PriceService;
  venue: TradeVenue;
  close(): Promise<unknown>;
}> {
  if (values.market === 'in-process') {
    return { ...createSimulatedMarket({ seed: 11 }), close: () => Promise.resolve() };
  }
  const served = await startMarket();
  return {
    priceService: createHttpPriceService({ baseUrl: served.url }),
    venue: createHttpTradeWorker({ baseUrl: served.url }),
    close: () => served.stop(),
  };
}

async function bench(backend: string, rawDb: Database): Promise<Report> {
  const db = counting(rawDb);
  await migrate(db);
  if (values['no-read-models'])
    await db.exec('ALTER TABLE events DISABLE TRIGGER events_project_read_models');
  const market = await openMarket();
  try {
    return await measure(backend, system(db, market));
  } finally {
    await market.close();
  }
}

async function measure(backend: string, s: ReturnType<typeof system>): Promise<Report> {
  // Warm-up: JIT, prepared statements, pools.
  for (let i = 0; i < 200; i++) await s.place();
  await s.allFinished(200);
  s.reset();

  // Latency at a fixed rate.
  s.reset();
  const total = RATE * RATE_SECONDS;
  const t0 = performance.now();
  const placing: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    placing.push(s.place());
  }
  await Promise.all(placing);
  await s.allFinished(total);
  const rateSorted = [...s.latencies].sort((a, b) => a - b);

  // Throughput.
  s.reset();
  const heaps: number[] = [heapMb()];
  const started = performance.now();
  let submitted = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (submitted < ORDERS) {
        submitted += 1;
        await s.place();
      }
    }),
  );
  const acceptedIn = (performance.now() - started) / 1000;
  await s.allFinished(ORDERS);
  const seconds = (performance.now() - started) / 1000;
  const sorted = [...s.latencies].sort((a, b) => a - b);
  heaps.push(...s.milestones.map((m) => m.heap), heapMb());
  let previous = started;
  const segments = s.milestones.map((m) => {
    const rate = 5000 / ((m.at - previous) / 1000);
    previous = m.at;
    return rate.toFixed(0);
  });
  console.log(
    `${backend}: ${ORDERS} accepted in ${acceptedIn.toFixed(1)} s; sagas/s per 5,000: ${segments.join(', ') || '-'}`,
  );
  const throughput = {
    perSecond: ORDERS / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };

  await s.delivery.stop();
  return {
    backend,
    sagasPerSecond: throughput.perSecond,
    p50: throughput.p50,
    p99: throughput.p99,
    rateP50: percentile(rateSorted, 50),
    rateP99: percentile(rateSorted, 99),
    heap: heaps.map((h) => h.toFixed(0)).join(' → '),
    liveActors: s.runner.activeCount,
  };
}

const reports: Report[] = [];
if (values.only !== 'postgres') {
  const dir = await mkdtemp(join(tmpdir(), 'bench-saga-'));
  const db = await pgliteDatabase(dir);
  try {
    reports.push(await bench('PGlite (file)', db));
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}
if (values.only !== 'pglite') {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.log('DATABASE_URL not set: PostgreSQL skipped');
  } else {
    const admin = postgresDatabase(url, { max: 1 });
    const name = `bench_saga_${process.pid}`;
    await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
    await admin.exec(`CREATE DATABASE ${name}`);
    const target = new URL(url);
    target.pathname = `/${name}`;
    const db = postgresDatabase(target.toString(), { max: Number(values.pool) });
    try {
      reports.push(await bench('PostgreSQL', db));
    } finally {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
      await admin.close();
    }
  }
}

for (const [q, n] of [...queryCounts].sort((a, b) => b[1] - a[1])) console.log(String(n).padStart(8), q);
console.log(
  `\nsaga: ${RATE}/s for ${RATE_SECONDS}s (latency), then ${ORDERS} orders by ${CLIENTS} clients (throughput); in-process delivery, concurrency ${CONCURRENCY}; market ${values.market}${values['no-read-models'] ? '; read models off' : ''}\n`,
);
console.log(
  'backend          sagas/s   p50 ms   p99 ms | @rate p50 ms   p99 ms | heap MB (after GC)        live actors',
);
for (const r of reports) {
  console.log(
    `${r.backend.padEnd(16)} ${r.sagasPerSecond.toFixed(0).padStart(7)} ${r.p50.toFixed(1).padStart(8)} ${r.p99
      .toFixed(1)
      .padStart(
        8,
      )} | ${r.rateP50.toFixed(1).padStart(11)} ${r.rateP99.toFixed(1).padStart(8)} | ${r.heap.padEnd(25)} ${String(
      r.liveActors,
    ).padStart(5)}`,
  );
}
