/**
 * What the read models' trigger costs the append path, on PostgreSQL: a saga's appends as the
 * runner makes them (OrderAccepted; PriceQuoted, PositionCreated, SwapExecuting; SwapExecuted,
 * OrderCompleted, PositionUpdated), by 8 writers, in rounds with the trigger on and off in turn.
 * Reports sagas/s and the CPU the database's backends spent per saga (from /proc, so the server
 * must run on this machine), medians of the rounds. `--accept-only` appends OrderAccepted alone,
 * as order intake does.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:projection-cost
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { migrate } from '../src/infra/migrations.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    sagas: { type: 'string', default: '1500' },
    'accept-only': { type: 'boolean', default: false },
  },
});
const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is required: this measures PostgreSQL');

const APPEND = `INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
SELECT event_id, aggregate_id, aggregate_type, event_type, version, event_data, '{}'::jsonb
FROM jsonb_to_recordset($1::text::jsonb) AS t(event_id uuid, aggregate_id uuid, aggregate_type text,
  event_type text, version int, event_data jsonb, ord int)
ORDER BY ord`;

/** One saga's appends, each the JSON of its rows. */
function sagaAppends(): string[] {
  const id = randomUUID();
  const pid = randomUUID();
  const at = new Date().toISOString();
  const event = (aggregate: string, event_type: string, version: number, event_data: object) => ({
    event_id: randomUUID(),
    aggregate_id: aggregate,
    aggregate_type: aggregate === id ? 'order' : 'position',
    event_type,
    version,
    event_data,
  });
  const terms = { from_amount: '1000', from_currency: 'USDT', to_currency: 'BTC' };
  const done = { to_amount: '0.00999', executed_price: '0.00000999', tx_hash: '0x1' };
  const appends = [
    [
      event(id, 'OrderAccepted', 1, {
        order_id: id,
        user_id: 'u1',
        ...terms,
        order_type: 'market',
        accepted_at: at,
      }),
    ],
    [
      event(id, 'PriceQuoted', 2, { price: '0.00001', to_amount: '0.01', quoted_at: at, source: 'bench' }),
      event(pid, 'PositionCreated', 1, {
        position_id: pid,
        user_id: 'u1',
        order_id: id,
        ...terms,
        created_at: at,
      }),
      event(id, 'SwapExecuting', 3, { idempotency_key: `swap-${id}`, position_id: pid, started_at: at }),
    ],
    [
      event(id, 'SwapExecuted', 4, { ...done, executed_at: at }),
      event(id, 'OrderCompleted', 5, { order_id: id, position_id: pid, ...terms, ...done, completed_at: at }),
      event(pid, 'PositionUpdated', 2, {
        position_id: pid,
        order_id: id,
        from_amount: '1000',
        to_amount: '0.00999',
        executed_price: '0.00000999',
        total_from_amount: '1000',
        total_to_amount: '0.00999',
        updated_at: at,
      }),
    ],
  ];
  const chosen = values['accept-only'] ? appends.slice(0, 1) : appends;
  return chosen.map((rows) => JSON.stringify(rows.map((row, ord) => ({ ...row, ord }))));
}

const admin = postgresDatabase(url, { max: 1 });
const name = `bench_projection_${process.pid}`;
await admin.exec(`CREATE DATABASE ${name}`);
const target = new URL(url);
target.pathname = `/${name}`;
const db = postgresDatabase(target.toString(), { max: 8 });

/** CPU (user + system) the database's backends for this database have used, in ms. */
async function backendCpuMs(): Promise<number> {
  const pids = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [
    name,
  ]);
  let ticks = 0;
  for (const { pid } of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // A backend that ended meanwhile.
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

async function round(sagas: number): Promise<{ perSecond: number; cpuMs: number }> {
  const cpu = await backendCpuMs();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < sagas) for (const append of sagaAppends()) await db.query(APPEND, [append]);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: sagas / seconds, cpuMs: ((await backendCpuMs()) - cpu) / sagas };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
try {
  await migrate(db);
  await round(300); // warm-up: connections, plans
  const results = {
    on: [] as { perSecond: number; cpuMs: number }[],
    off: [] as { perSecond: number; cpuMs: number }[],
  };
  for (let i = 0; i < Number(values.rounds); i++) {
    for (const mode of ['on', 'off'] as const) {
      await db.exec(
        `ALTER TABLE events ${mode === 'on' ? 'ENABLE' : 'DISABLE'} TRIGGER events_project_read_models`,
      );
      const result = await round(Number(values.sagas));
      results[mode].push(result);
      console.log(
        `round ${i + 1} trigger ${mode}: ${result.perSecond.toFixed(0)}/s, ${result.cpuMs.toFixed(3)} ms database CPU each`,
      );
    }
  }
  const what = values['accept-only'] ? 'OrderAccepted appends' : 'sagas (3 appends, 7 events)';
  const [on, off] = [results.on, results.off].map((r) => ({
    perSecond: median(r.map((x) => x.perSecond)),
    cpuMs: median(r.map((x) => x.cpuMs)),
  }));
  if (!on || !off) throw new Error('no rounds');
  console.log(
    `\n${what}, medians of ${values.rounds} rounds each: with the trigger ${on.perSecond.toFixed(0)}/s and ` +
      `${on.cpuMs.toFixed(3)} ms database CPU each; without ${off.perSecond.toFixed(0)}/s and ${off.cpuMs.toFixed(3)} ms ` +
      `(throughput ratio ${(on.perSecond / off.perSecond).toFixed(2)}, CPU ratio ${(on.cpuMs / off.cpuMs).toFixed(2)})`,
  );
} finally {
  await db.close();
  await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.close();
}
