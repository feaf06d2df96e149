/**
 * Outbox → RabbitMQ relay: (a) throughput draining a preloaded outbox, (b) commit → publish lag
 * at a fixed append rate. Runs on a scratch database beside DATABASE_URL's (created and dropped)
 * and a private, prefixed exchange on AMQP_URL's broker, consumed by a temporary queue.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 \
 *     npm run bench:relay
 *   npm run bench:relay -- --rows 50000 --relays 1,2 --rate 500 --seconds 10 --batch 500
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { connect } from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { createOutboxRelay } from '../src/infra/bus/rabbit/outboxRelay.ts';
import { declareTopology, deleteTopology, topology } from '../src/infra/bus/rabbit/topology.ts';
import type { Database } from '../src/app/ports/database.ts';
import { postgresDatabase } from '../src/infra/db/postgres.ts';
import { createEventStore } from '../src/infra/eventStore.ts';
import { outboxNotifier } from '../src/infra/bus/outboxNotifier.ts';
import { silentLogger } from '../src/infra/logger.ts';
import { migrate } from '../src/infra/migrations.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '50000' },
    relays: { type: 'string', default: '1,2' },
    batch: { type: 'string', default: '500' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
  },
});
const rows = Number(values.rows);
const relayCounts = values.relays.split(',').map(Number);
const batchSize = Number(values.batch);
const rate = Number(values.rate);
const seconds = Number(values.seconds);

const databaseUrl = process.env.DATABASE_URL;
const amqpUrl = process.env.AMQP_URL;
if (!databaseUrl || !amqpUrl) {
  console.log('bench:relay needs DATABASE_URL and AMQP_URL');
  process.exit(1);
}

const topo = { ...topology({ prefix: `bench.relay.${process.pid}.` }), queues: [] };

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** A temporary queue taking everything the relay publishes; `onMessage` sees each message id. */
async function drain(amqp: ChannelModel, onMessage: (id: string) => void) {
  const ch = await amqp.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  await ch.bindQueue(queue, topo.exchange, '#');
  await ch.consume(queue, (m) => m && onMessage(m.properties.messageId as string), { noAck: true });
  return ch;
}

function relays(db: Database, n: number) {
  return Array.from({ length: n }, () =>
    createOutboxRelay({ db, amqpUrl: amqpUrl ?? '', logger: silentLogger, topology: topo, batchSize }),
  );
}

/** (a) Preloads `rows` OrderAccepted-sized rows in one commit, then times the relays draining them. */
async function throughput(db: Database, amqp: ChannelModel, relayCount: number) {
  let received = 0;
  const ch = await drain(amqp, () => (received += 1));
  const running = relays(db, relayCount);
  await Promise.all(running.map((r) => r.start()));
  const published = () => running.reduce((sum, r) => sum + r.counters.published, 0);
  const before = published();
  await db.query(
    `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
     SELECT gen_random_uuid(), a, 'order', 'OrderAccepted', 1,
       jsonb_build_object('order_id', a, 'user_id', 'bench-user', 'from_amount', '1000',
         'from_currency', 'USDT', 'to_currency', 'BTC', 'order_type', 'market'),
       jsonb_build_object('correlation_id', a, 'causation_id', NULL, 'occurred_at', now(), 'schema_version', 1)
     FROM (SELECT gen_random_uuid() AS a FROM generate_series(1, $1::int)) s`,
    [rows],
  );
  const started = performance.now();
  while (published() - before < rows) await sleep(5);
  const elapsed = (performance.now() - started) / 1000;
  const batches = running.reduce((sum, r) => sum + r.counters.batches, 0);
  await Promise.all(running.map((r) => r.stop()));
  while (received < rows) await sleep(5);
  await ch.close();
  return { relayCount, perSecond: rows / elapsed, elapsed, batches };
}

/** (b) Appends at `rate` per second through the event store; lag = consumer arrival − commit. */
async function lag(db: Database, amqp: ChannelModel) {
  // As the api role will run it: every append wakes relays through a coalesced post-commit NOTIFY.
  const store = createEventStore(db, { onAppended: outboxNotifier(db) });
  const appendStarted = new Map<string, number>();
  const committed = new Map<string, number>();
  const arrived = new Map<string, number>();
  const ch = await drain(amqp, (id) => arrived.set(id, performance.now()));
  const [relay] = relays(db, 1);
  await relay!.start();

  const append = async () => {
    const orderId = randomUUID();
    const eventId = randomUUID();
    appendStarted.set(eventId, performance.now());
    await store.append([
      {
        aggregate_id: orderId,
        aggregate_type: 'order',
        expected_version: 0,
        events: [
          {
            event_id: eventId,
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
    // The append resolves once COMMIT is acknowledged: the commit time as the writer sees it.
    committed.set(eventId, performance.now());
  };

  // Ticks of 10 ms, each firing the appends due by then: a steady rate without a timer per append.
  const total = rate * seconds;
  const started = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (let fired = 0; fired < total;) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    for (; fired < due; fired++) {
      const p = append().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await sleep(10);
  }
  await Promise.all(inFlight);
  const deadline = performance.now() + 10_000;
  while (arrived.size < total && performance.now() < deadline) await sleep(5);
  await relay!.stop();
  await ch.close();

  const fromCommit: number[] = [];
  const fromAppend: number[] = [];
  for (const [id, at] of committed) {
    const got = arrived.get(id);
    if (got === undefined) continue;
    fromCommit.push(got - at);
    fromAppend.push(got - (appendStarted.get(id) ?? at));
  }
  fromCommit.sort((a, b) => a - b);
  fromAppend.sort((a, b) => a - b);
  return { total, received: fromCommit.length, fromCommit, fromAppend };
}

const admin = postgresDatabase(databaseUrl, { max: 1 });
const name = `bench_relay_${process.pid}`;
await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
await admin.exec(`CREATE DATABASE ${name}`);
const target = new URL(databaseUrl);
target.pathname = `/${name}`;
const db = postgresDatabase(target.toString(), { max: 20 });
const amqp = await connect(amqpUrl);
try {
  await migrate(db);
  const ch = await amqp.createChannel();
  await declareTopology(ch, topo);
  await ch.close();

  console.log(`\nrelay throughput: ${rows} preloaded outbox rows, batch ${batchSize}\n`);
  console.log('relays   events/s   seconds   batches');
  for (const n of relayCounts) {
    const r = await throughput(db, amqp, n);
    console.log(
      `${String(n).padStart(6)} ${r.perSecond.toFixed(0).padStart(10)} ${r.elapsed.toFixed(2).padStart(9)} ${String(r.batches).padStart(9)}`,
    );
  }

  const l = await lag(db, amqp);
  const f = (xs: number[], p: number) => percentile(xs, p).toFixed(1).padStart(7);
  console.log(`\nrelay lag: ${rate} events/s for ${seconds}s, 1 relay, ${l.received}/${l.total} received\n`);
  console.log('measured from                  p50 ms   p99 ms   max ms');
  console.log(
    `commit (append resolved)      ${f(l.fromCommit, 50)}  ${f(l.fromCommit, 99)}  ${f(l.fromCommit, 100)}`,
  );
  console.log(
    `append start (upper bound)    ${f(l.fromAppend, 50)}  ${f(l.fromAppend, 99)}  ${f(l.fromAppend, 100)}`,
  );
} finally {
  const ch = await amqp.createChannel();
  await deleteTopology(ch, topo);
  await amqp.close();
  await db.close();
  await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  await admin.close();
}
