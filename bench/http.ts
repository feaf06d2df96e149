/**
 * `POST /orders` over HTTP (autocannon) against PostgreSQL, with authentication on: the api (with
 * the outbox relay and the sweeper) in one process, the saga roles (orchestrator and notifier) in
 * another, the simulated market in a third, as `bench:cluster` starts them.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 \
 *     npm run bench:http -- --runs 3 --seconds 15
 *
 * Two loads, each run `--runs` times (medians reported):
 *   - throughput: `--connections` clients as fast as the service answers → accepted orders/s;
 *   - latency: a fixed 1,000 requests/s (`--rate`) → latency percentiles.
 * Every request is a new order with an Idempotency-Key of its own and a user's API key (`--users`
 * users); the count of 202s is checked against the OrderAccepted events stored.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type { Request as LoadRequest, Result } from 'autocannon';
import { startCluster } from '../test/helpers/cluster.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '64' },
    rate: { type: 'string', default: '1000' },
    users: { type: 'string', default: '100' },
    /** Without an Idempotency-Key header (one transaction per order instead of two). */
    'no-key': { type: 'boolean', default: false },
    /** Writes a CPU profile of every process into this directory (node --cpu-prof). */
    profile: { type: 'string' },
    /**
     * The api alone, no relay, saga or notifier: what intake costs by itself (the outbox fills
     * and nothing is carried further), to split the machine's CPU between intake and the saga.
     */
    'api-only': { type: 'boolean', default: false },
  },
});

const databaseUrl = process.env.DATABASE_URL;
const amqpUrl = process.env.AMQP_URL;
if (!databaseUrl || !amqpUrl) {
  console.error('Set DATABASE_URL and AMQP_URL (see the comment at the top of bench/http.ts)');
  process.exit(2);
}

const users = Array.from({ length: Number(values.users) }, (_, i) => ({
  id: `bench-user-${i}`,
  key: `bench-key-${i}-${randomUUID()}`,
}));

const cluster = await startCluster({
  databaseUrl,
  amqpUrl,
  processes: values['api-only'] ? [['api']] : [['api'], ['relay', 'sweeper', 'saga', 'notifier']],
  env: {
    API_KEYS: users.map((u) => `${u.id}:${u.key}`).join(','),
    ORDER_RATE_LIMIT_PER_SECOND: '0',
    DATABASE_POOL_SIZE: '16',
  },
  ...(values.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}),
});

let n = 0;
function order(request: LoadRequest): LoadRequest {
  const user = users[n % users.length]!;
  n += 1;
  return {
    ...request,
    headers: {
      ...request.headers,
      'content-type': 'application/json',
      authorization: `Bearer ${user.key}`,
      ...(values['no-key'] ? {} : { 'idempotency-key': randomUUID() }),
    },
    body: JSON.stringify({
      user_id: user.id,
      from_amount: String(10 + (n % 990)),
      from_currency: 'USDT',
      to_currency: n % 2 === 0 ? 'BTC' : 'ETH',
      order_type: 'market',
    }),
  };
}

function load(options: { connections: number; seconds: number; rate?: number }): Promise<Result> {
  return autocannon({
    url: cluster.apiUrl,
    connections: options.connections,
    duration: options.seconds,
    ...(options.rate ? { overallRate: options.rate } : {}),
    requests: [{ method: 'POST', path: '/orders', setupRequest: order }],
  });
}

const median = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function acceptedSoFar(): Promise<number> {
  const [row] = await cluster.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM events WHERE event_type = 'OrderAccepted'`,
  );
  return row?.n ?? 0;
}

interface Figures {
  readonly accepted: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly errors: number;
}

async function measure(options: { connections: number; seconds: number; rate?: number }): Promise<Figures> {
  const before = await acceptedSoFar();
  const result = await load(options);
  const stored = (await acceptedSoFar()) - before;
  // The stored count is the truth: autocannon does not count answers that arrive as it stops.
  const accepted = stored;
  if (result['2xx'] > stored)
    throw new Error(`${result['2xx']} answered 202 but only ${stored} OrderAccepted were stored`);
  return {
    accepted,
    perSecond: accepted / options.seconds,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.non2xx + result.errors + result.timeouts,
  };
}

const summary = (label: string, runs: readonly Figures[]) => {
  const m = (pick: (f: Figures) => number) => median(runs.map(pick));
  console.log(
    `${label}: median of ${runs.length} runs: ${Math.round(m((f) => f.perSecond))} accepted orders/s; ` +
      `latency p50 ${m((f) => f.p50)} ms, p90 ${m((f) => f.p90)} ms, p99 ${m((f) => f.p99)} ms, ` +
      `max ${m((f) => f.max)} ms; ${m((f) => f.errors)} non-202 or failed requests`,
  );
};

let failed = false;
try {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  console.log(
    `${values['api-only'] ? 'api alone (no relay, no saga)' : 'api | relay+sweeper+saga+notifier | market'} on PostgreSQL, auth on (${users.length} users), ` +
      `${values['no-key'] ? 'no Idempotency-Key' : 'an Idempotency-Key per order'}`,
  );
  await measure({ connections, seconds: 3 }); // warm-up: JIT, connection pools
  const throughput: Figures[] = [];
  const latency: Figures[] = [];
  for (let run = 1; run <= Number(values.runs); run++) {
    const t = await measure({ connections, seconds });
    throughput.push(t);
    console.log(
      `run ${run} throughput: ${Math.round(t.perSecond)}/s p50 ${t.p50} p99 ${t.p99} ms (${t.errors} errors)`,
    );
    const l = await measure({ connections, seconds, rate: Number(values.rate) });
    latency.push(l);
    console.log(
      `run ${run} at ${values.rate}/s: ${Math.round(l.perSecond)}/s p50 ${l.p50} p99 ${l.p99} max ${l.max} ms (${l.errors} errors)`,
    );
  }
  summary(`throughput (${connections} connections)`, throughput);
  summary(`fixed rate ${values.rate} req/s`, latency);
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await cluster.close();
}
process.exit(failed ? 1 : 0);
