/**
 * `replay-check` over a store of realistic size: fills a scratch database with finished and open
 * sagas run by the real saga runner on the simulated market, then runs `replay-check` as an
 * operator would (a process of its own) and reports its output, exit code and time.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:replay
 *   npm run bench:replay -- --finished 2000 --open 20        # PGlite (file) without DATABASE_URL
 *
 * Finished sagas: mostly completed, some failed (above the liquidity limit after the swap was
 * sent, a pair without a price, an amount too small to deliver). Open ones rest where sagas rest
 * between appends: accepted and not yet run, or SwapExecuting stored and the outcome awaited.
 * Half the sagas lose their `saga_version`, as the sagas stored before versions were recorded.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { createOrderService } from '../src/app/orders.ts';
import { createSagaRunner } from '../src/app/sagaRunner.ts';
import type { SagaRunnerDeps } from '../src/app/sagaRunner.ts';
import { DEFAULT_SAGA_SETTINGS } from '../src/app/sagaSteps.ts';
import { currencies } from '../src/domain/money.ts';
import { pgliteDatabase } from '../src/infra/db/pglite.ts';
import type { Database } from '../src/app/ports/database.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { createEventStore } from '../src/infra/eventStore.ts';
import { silentLogger } from '../src/infra/logger.ts';
import { migrate } from '../src/infra/migrations.ts';
import { createSimulatedMarket } from '../src/infra/venues/simulatedMarket.ts';

const { values } = parseArgs({
  options: {
    finished: { type: 'string', default: '10000' },
    open: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '32' },
  },
});
const FINISHED = Number(values.finished);
const OPEN = Number(values.open);

class Stop extends Error {}

/** The order of the i-th finished saga: one in 20 above the liquidity limit, one in 50 with no price, … */
function orderFor(i: number) {
  const base = { user_id: `bench-${i % 100}`, from_currency: 'USDT', order_type: 'market' } as const;
  if (i % 20 === 7) return { ...base, to_currency: 'BTC', from_amount: '2000000' };
  if (i % 50 === 13) return { ...base, from_currency: 'USDC', to_currency: 'ETH', from_amount: '500' };
  if (i % 100 === 29) return { ...base, to_currency: 'BTC', from_amount: '0.000001' };
  return { ...base, to_currency: i % 2 ? 'BTC' : 'ETH', from_amount: String(100 + (i % 900)) };
}

async function fill(db: Database): Promise<void> {
  await migrate(db);
  const market = createSimulatedMarket({ seed: 17, priceFeed: { unavailablePairs: ['USDC/ETH'] } });
  const store = createEventStore(db);
  const orders = createOrderService({ store, now: () => new Date(), newId: randomUUID });
  const deps: SagaRunnerDeps = {
    store,
    prices: market.priceService,
    venue: market.venue,
    currencies: currencies(),
    settings: DEFAULT_SAGA_SETTINGS,
    now: () => new Date(),
    newId: randomUUID,
    logger: silentLogger,
  };
  const runner = createSagaRunner(deps);
  // A worker that stops once SwapExecuting is stored, as one killed while the venue works would.
  const stopping = createSagaRunner({
    ...deps,
    afterAppend: (_, command) => {
      if (command === 'sendingSwap') throw new Stop();
    },
  });
  const place = async (order: ReturnType<typeof orderFor>) =>
    (await orders.accept(order, { causationId: null })).order_id;

  const limit = pLimit(Number(values.concurrency));
  const outcomes = { completed: 0, failed: 0, open: 0 };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: FINISHED }, (_, i) =>
      limit(async () => {
        const result = await runner.run(await place(orderFor(i)));
        if (result.status === 'completed' || result.status === 'failed') outcomes[result.status] += 1;
        else throw new Error(`saga ${result.orderId} ended ${result.status}`);
      }),
    ),
  );
  await Promise.all(
    Array.from({ length: OPEN }, (_, i) =>
      limit(async () => {
        // An order that goes all the way, so that it is still open where it was stopped.
        const orderId = await place({ ...orderFor(0), from_amount: '1000' });
        if (i % 2)
          await stopping.run(orderId).catch((error: unknown) => {
            if (!(error instanceof Stop)) throw error;
          });
        outcomes.open += 1;
      }),
    ),
  );
  // Every other saga as stored before versions were recorded.
  await db.query(
    `UPDATE events SET metadata = metadata - 'saga_version'
     WHERE event_type = 'OrderAccepted' AND get_byte(uuid_send(aggregate_id), 15) % 2 = 0`,
  );
  const seconds = (performance.now() - started) / 1000;
  const [row] = await db.query<{ unrecorded: number; events: number }>(
    `SELECT count(*) FILTER (WHERE event_type = 'OrderAccepted' AND NOT metadata ? 'saga_version')::int AS unrecorded,
            count(*)::int AS events FROM events`,
  );
  console.log(
    `filled in ${seconds.toFixed(1)} s: ${outcomes.completed} completed, ${outcomes.failed} failed, ` +
      `${outcomes.open} open; ${row?.events} events; ${row?.unrecorded} sagas without saga_version`,
  );
}

/** `npm run replay-check`, as a process of its own: exit code and wall time. */
function replayCheck(env: Record<string, string>): Promise<{ code: number | null; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'replay-check'], {
      env: { ...process.env, AMQP_URL: '', LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, seconds: (performance.now() - started) / 1000 }));
  });
}

let result: { code: number | null; seconds: number };
const url = process.env.DATABASE_URL;
if (url) {
  const admin = postgresDatabase(url, { max: 1 });
  const name = `bench_replay_${process.pid}`;
  await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  await admin.exec(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  try {
    const db = postgresDatabase(target.toString(), { max: 16 });
    await fill(db).finally(() => db.close());
    console.log(`PostgreSQL (${name}):`);
    result = await replayCheck({ DATABASE_URL: target.toString() });
  } finally {
    await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  }
} else {
  const dir = await mkdtemp(join(tmpdir(), 'bench-replay-'));
  try {
    const db = await pgliteDatabase(dir);
    await fill(db).finally(() => db.close());
    console.log('PGlite (file):');
    result = await replayCheck({ DATABASE_URL: '', DATA_DIR: dir });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
console.log(
  `replay-check exited ${result.code} after ${result.seconds.toFixed(1)} s (process start included)`,
);
process.exitCode = result.code ?? 1;
