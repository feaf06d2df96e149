/**
 * The dashboard's queries on a large store: seeds N orders (50,000 unless told) straight into
 * `orders_view` with SQL (the dashboard reads nothing else), then times each query the page and
 * its live feed run, first on a quiet store, then while 200 orders a second arrive and move on
 * (each new order written, and 5 updates per order a second, as the saga's steps would).
 *
 *   npm run bench:dashboard                                   # PGlite, in memory
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> npm run bench:dashboard -- --orders 50000
 *
 * On PostgreSQL it uses a scratch database of its own (created and dropped).
 */
import { randomUUID } from 'node:crypto';
import process from 'node:process';
import { parseArgs } from 'node:util';
import type { Database } from '../src/app/ports/database.ts';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { migrate } from '../src/infra/migrations.ts';
import { createOrderFeedRows } from '../src/infra/orderFeed.ts';

const { values } = parseArgs({
  options: { orders: { type: 'string', default: '50000' }, runs: { type: 'string', default: '30' } },
});
const ORDERS = Number(values.orders);
const RUNS = Number(values.runs);

async function open(): Promise<{ db: Database; label: string; drop: () => Promise<void> }> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const db = await pgliteDatabase();
    await migrate(db);
    return { db, label: 'PGlite (in memory)', drop: () => db.close() };
  }
  const admin = postgresDatabase(url, { max: 1 });
  const name = `bench_dashboard_${randomUUID().replaceAll('-', '')}`;
  await admin.exec(`CREATE DATABASE ${name}`);
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  const db = postgresDatabase(scratch.toString(), { max: 4 });
  await migrate(db);
  return {
    db,
    label: 'PostgreSQL',
    drop: async () => {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** N orders over the last N × 20 ms, 500 users; 4 % failed, the newest 50 still processing. */
async function seed(db: Database, n: number): Promise<void> {
  await db.query(
    `INSERT INTO orders_view (order_id, user_id, order_type, status, from_amount, from_currency, to_currency,
       quoted_price, quoted_to_amount, executed_price, to_amount, tx_hash, position_id, failure_reason,
       failed_step, created_at, updated_at, version)
     SELECT gen_random_uuid(), 'user-' || (i % 500), 'market',
       CASE WHEN i % 25 = 0 THEN 'failed' WHEN i > $1 - 50 THEN 'processing' ELSE 'completed' END,
       100 + i % 900, 'USDT', 'BTC', 0.00001, (100 + i % 900) * 0.00001,
       CASE WHEN i % 25 = 0 THEN NULL ELSE 0.00001 END,
       CASE WHEN i % 25 = 0 THEN NULL ELSE (100 + i % 900) * 0.00001 END,
       NULL, gen_random_uuid(),
       CASE WHEN i % 25 = 0 THEN 'insufficient_liquidity' END,
       CASE WHEN i % 25 = 0 THEN 'execute_swap' END,
       date_trunc('milliseconds', now() - ($1 - i) * interval '20 ms'),
       date_trunc('milliseconds', now() - ($1 - i) * interval '20 ms' + interval '300 ms'),
       CASE WHEN i % 25 = 0 THEN 6 ELSE 5 END
     FROM generate_series(1, $1) AS i`,
    [n],
  );
  await db.exec('ANALYZE orders_view');
}

async function time(run: () => Promise<unknown>): Promise<{ median: number; p95: number }> {
  const took: number[] = [];
  for (let i = 0; i < RUNS; i += 1) {
    const started = performance.now();
    await run();
    took.push(performance.now() - started);
  }
  took.sort((a, b) => a - b);
  return { median: took[Math.floor(took.length / 2)] ?? 0, p95: took[Math.floor(took.length * 0.95)] ?? 0 };
}

/** 200 orders a second: every 250 ms, 50 new rows and 250 updates of recent ones. */
function stream(db: Database): { stop(): Promise<void>; written: () => number } {
  let stopped = false;
  let written = 0;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      await db.query(
        `INSERT INTO orders_view (order_id, user_id, order_type, status, from_amount, from_currency,
           to_currency, created_at, updated_at, version)
         SELECT gen_random_uuid(), 'user-' || (i % 500), 'market', 'pending', 100, 'USDT', 'BTC',
           date_trunc('milliseconds', now()), date_trunc('milliseconds', now()), 1
         FROM generate_series(1, 50) AS i`,
      );
      await db.query(
        `UPDATE orders_view SET status = 'processing', updated_at = date_trunc('milliseconds', now()),
           version = version + 1
         WHERE order_id IN (SELECT order_id FROM orders_view ORDER BY created_at DESC LIMIT 250)`,
      );
      written += 50;
      const wait = 250 - (performance.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();
  return {
    written: () => written,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

const { db, label, drop } = await open();
try {
  const seeded = performance.now();
  await seed(db, ORDERS);
  console.log(`${label}: ${ORDERS} orders seeded in ${Math.round(performance.now() - seeded)} ms`);
  const rows = createOrderFeedRows(db);
  const [deep] = await db.query<{ created_at: Date | string; order_id: string }>(
    'SELECT created_at, order_id::text AS order_id FROM orders_view ORDER BY created_at DESC OFFSET 25000 LIMIT 1',
  );
  const after = deep && { created_at: new Date(deep.created_at).toISOString(), id: deep.order_id };
  const queries: Array<[string, () => Promise<unknown>]> = [
    ['newest page (51 rows)', () => rows.list({ limit: 51 })],
    ['status=failed page', () => rows.list({ limit: 51, status: 'failed' })],
    ['user page', () => rows.list({ limit: 51, userId: 'user-7' })],
    ['page 500 deep (cursor)', () => rows.list({ limit: 51, after })],
    [
      'feed tick (changes of the last 1.25 s)',
      () => rows.changedSince({ since: undefined, overlapMs: 1250, limit: 2001 }),
    ],
    ['counts, every user', () => rows.counts()],
    ['counts, one user', () => rows.counts('user-7')],
  ];
  const report = async (phase: string) => {
    console.log(`\n${phase} (ms, median / p95 of ${RUNS})`);
    for (const [name, run] of queries) {
      const { median, p95 } = await time(run);
      console.log(`  ${name.padEnd(40)} ${median.toFixed(2).padStart(8)} / ${p95.toFixed(2)}`);
    }
  };
  await report('quiet');
  const writer = stream(db);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await report('while 200 orders/s arrive (each moved on 5 times a second)');
  await writer.stop();
  console.log(`\n(${writer.written()} orders written meanwhile)`);
} finally {
  await drop();
}
