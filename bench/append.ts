/**
 * Append throughput: single-event streams (OrderAccepted-sized payloads, with their outbox rows),
 * 1 and 16 concurrent writers, on PGlite (file-backed, as the embedded default runs) and on
 * PostgreSQL (DATABASE_URL; a scratch database is created beside it and dropped afterwards).
 *
 *   npm run bench:append                    # PGlite only
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:append
 *   npm run bench:append -- --seconds 10 --writers 1,16,32
 *   npm run bench:append -- --notify      # with the post-commit NOTIFY that wakes remote relays
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import type { Database } from '../src/app/ports/database.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { createEventStore } from '../src/infra/eventStore.ts';
import { outboxNotifier } from '../src/infra/bus/outboxNotifier.ts';
import { migrate } from '../src/infra/migrations.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    writers: { type: 'string', default: '1,16' },
    only: { type: 'string' },
    /** Wake relays after every append, as the api role does next to remote relays. */
    notify: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const writerCounts = values.writers.split(',').map(Number);

interface Result {
  readonly backend: string;
  readonly writers: number;
  readonly appends: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function run(backend: string, db: Database, writers: number): Promise<Result> {
  const store = createEventStore(db, values.notify ? { onAppended: outboxNotifier(db) } : {});
  const latencies: number[] = [];
  const append = async () => {
    const orderId = randomUUID();
    const started = performance.now();
    await store.append([
      {
        aggregate_id: orderId,
        aggregate_type: 'order',
        expected_version: 0,
        events: [
          {
            event_id: randomUUID(),
            event_type: 'OrderAccepted',
            event_data: {
              order_id: orderId,
              user_id: 'bench-user',
              from_amount: '1000',
              from_currency: 'USDT',
              to_currency: 'BTC',
              order_type: 'market',
              accepted_at: new Date().toISOString(),
            },
            metadata: {
              correlation_id: orderId,
              causation_id: null,
              occurred_at: new Date().toISOString(),
              schema_version: 1,
            },
          },
        ],
      },
    ]);
    latencies.push(performance.now() - started);
  };

  // Warm up: connections open and statements prepared before the clock starts.
  await Promise.all(Array.from({ length: writers }, append));
  latencies.length = 0;

  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < deadline) await append();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    backend,
    writers,
    appends: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

async function benchPglite(): Promise<Result[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-append-'));
  const db = await pgliteDatabase(dir);
  try {
    await migrate(db);
    const results: Result[] = [];
    for (const writers of writerCounts) results.push(await run('PGlite (file)', db, writers));
    return results;
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchPostgres(url: string): Promise<Result[]> {
  const admin = postgresDatabase(url, { max: 1 });
  const name = `bench_append_${process.pid}`;
  await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  await admin.exec(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  const db = postgresDatabase(target.toString(), { max: Math.max(...writerCounts) });
  try {
    await migrate(db);
    const results: Result[] = [];
    for (const writers of writerCounts) results.push(await run('PostgreSQL', db, writers));
    return results;
  } finally {
    await db.close();
    await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
    await admin.close();
  }
}

const results: Result[] = [];
if (values.only !== 'postgres') results.push(...(await benchPglite()));
if (values.only !== 'pglite') {
  if (process.env.DATABASE_URL) results.push(...(await benchPostgres(process.env.DATABASE_URL)));
  else console.log('DATABASE_URL not set: PostgreSQL skipped');
}

console.log(`\nappend: single-event streams + outbox rows, ${seconds}s per run\n`);
console.log('backend          writers   appends   appends/s   p50 ms   p99 ms');
for (const r of results) {
  console.log(
    `${r.backend.padEnd(16)} ${String(r.writers).padStart(7)} ${String(r.appends).padStart(9)} ${r.perSecond
      .toFixed(0)
      .padStart(11)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}`,
  );
}
