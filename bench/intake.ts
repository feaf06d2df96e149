/**
 * Order intake with and without an Idempotency-Key: POST /orders through the Hono app in process
 * (no socket: the cost of the request itself, validation, key and append), with N concurrent
 * clients, on PostgreSQL (DATABASE_URL; a scratch database beside it, dropped afterwards) or PGlite.
 * Reports orders/s, latency and the database round trips (statements) per request.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:intake
 *   npm run bench:intake -- --seconds 10 --clients 32 --only pglite
 */
import { createReadModelQueries } from '../src/app/readModels.ts';
import { createReadModels } from '../src/infra/readModels.ts';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createOrderService } from '../src/app/orders.ts';
import { createPositionService } from '../src/app/positions.ts';
import { createSagaViews } from '../src/app/sagaView.ts';
import type { Database } from '../src/app/ports/database.ts';
import { currencies } from '../src/domain/money.ts';
import { createApp } from '../src/http/app.ts';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { createEventStore } from '../src/infra/eventStore.ts';
import { createHealthProbe } from '../src/infra/health.ts';
import { createIdempotencyKeys } from '../src/infra/idempotencyKeys.ts';
import { logContext, silentLogger } from '../src/infra/logger.ts';
import { migrate } from '../src/infra/migrations.ts';
import { counted } from '../test/helpers/databases.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '16' },
    only: { type: 'string' },
    /** Group commit (src/app/intakeBatcher.ts): statements in flight at once; 0 for none. */
    lanes: { type: 'string', default: '4' },
    /** Group commit: requests in one statement at most. */
    'max-batch': { type: 'string', default: '64' },
  },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);
const batching =
  Number(values.lanes) > 0
    ? { lanes: Number(values.lanes), maxBatch: Number(values['max-batch']) }
    : (false as const);

type Mode = 'no key' | 'new key' | 'replay';

interface Result {
  readonly backend: string;
  readonly mode: Mode;
  readonly requests: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly statements: number;
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function run(backend: string, raw: Database, mode: Mode): Promise<Result> {
  const { db, count } = counted(raw);
  const store = createEventStore(db);
  const app = createApp({
    orders: createOrderService({
      store,
      now: () => new Date(),
      newId: randomUUID,
      keys: createIdempotencyKeys(db),
      batching,
    }),
    positions: createPositionService(store),
    sagas: createSagaViews(store),
    readModels: createReadModelQueries(createReadModels(db)),
    health: createHealthProbe(db),
    currencies: currencies(),
    logger: silentLogger,
    logContext,
  });
  const latencies: number[] = [];
  const client = (c: number) => {
    const user = `bench-${c}-${randomUUID()}`;
    const body = JSON.stringify({
      user_id: user,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
    });
    const replayKey = randomUUID();
    return async () => {
      const key = mode === 'no key' ? undefined : mode === 'replay' ? replayKey : randomUUID();
      const started = performance.now();
      const res = await app.request('/orders', {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      });
      if (res.status !== 202) throw new Error(`POST /orders answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
    };
  };
  const posts = Array.from({ length: clients }, (_, c) => client(c));

  // Warm up: connections open, statements prepared, and the replay keys placed.
  await Promise.all(posts.map((post) => post()));
  latencies.length = 0;
  count.statements = 0;

  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    posts.map(async (post) => {
      while (performance.now() < deadline) await post();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    backend,
    mode,
    requests: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    statements: count.statements / latencies.length,
  };
}

const MODES: readonly Mode[] = ['no key', 'new key', 'replay'];

async function benchAll(backend: string, db: Database): Promise<Result[]> {
  await migrate(db);
  const results: Result[] = [];
  for (const mode of MODES) results.push(await run(backend, db, mode));
  return results;
}

const results: Result[] = [];
if (values.only !== 'postgres') {
  const db = await pgliteDatabase();
  try {
    results.push(...(await benchAll('PGlite (memory)', db)));
  } finally {
    await db.close();
  }
}
if (values.only !== 'pglite') {
  const url = process.env.DATABASE_URL;
  if (!url) console.log('DATABASE_URL not set: PostgreSQL skipped');
  else {
    const admin = postgresDatabase(url, { max: 1 });
    const name = `bench_intake_${process.pid}`;
    await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
    await admin.exec(`CREATE DATABASE ${name}`);
    const target = new URL(url);
    target.pathname = `/${name}`;
    const db = postgresDatabase(target.toString(), { max: clients });
    try {
      results.push(...(await benchAll('PostgreSQL', db)));
    } finally {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
      await admin.close();
    }
  }
}

console.log(
  `\nPOST /orders in process, ${clients} clients, ${seconds}s per run, ` +
    (batching
      ? `group commit: ${batching.lanes} lanes, ${batching.maxBatch} a statement\n`
      : 'no group commit\n'),
);
console.log('backend           mode       requests   orders/s   p50 ms   p99 ms   statements/POST');
for (const r of results) {
  console.log(
    `${r.backend.padEnd(17)} ${r.mode.padEnd(8)} ${String(r.requests).padStart(10)} ${r.perSecond
      .toFixed(0)
      .padStart(10)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${r.statements
      .toFixed(2)
      .padStart(17)}`,
  );
}
