/**
 * The system as the original design draws it, in separate processes: `api`+`relay`+`sweeper`, `saga`,
 * `saga`+`notifier` against one PostgreSQL (a scratch database), one RabbitMQ (a name prefix of
 * its own) and one simulated market served over HTTP. Submits N orders over HTTP, waits for every
 * saga to end, stops the processes (draining), then runs `src/main.ts check`, which checks every
 * guarantee of ARCHITECTURE.md against what is stored.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 \
 *     npm run bench:cluster -- --orders 5000
 *
 * About 1 in 20 orders is larger than the simulated liquidity and must fail with
 * insufficient_liquidity (and be compensated); the rest complete.
 */
import { parseArgs } from 'node:util';
import { runClusterOrders, startCluster } from '../test/helpers/cluster.ts';
import { startTelegramEmulator } from '../test/helpers/notifyPeers.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '5000' },
    clients: { type: 'string', default: '32' },
    keep: { type: 'boolean', default: false },
    /** The processes and their roles, e.g. `api+relay+sweeper+saga+notifier` for one process (comma between processes). */
    processes: { type: 'string', default: 'api+relay+sweeper,saga,saga+notifier' },
    /** Writes a CPU profile of every process into this directory (node --cpu-prof). */
    profile: { type: 'string' },
  },
});

const databaseUrl = process.env.DATABASE_URL;
const amqpUrl = process.env.AMQP_URL;
if (!databaseUrl || !amqpUrl) {
  console.error('Set DATABASE_URL and AMQP_URL (see the comment at the top of bench/cluster.ts)');
  process.exit(2);
}

const processes = values.processes.split(',').map((p) => p.split('+'));
console.log(`starting ${processes.map((p) => p.join('+')).join(', ')} and the simulated market…`);
// Every user has a Telegram chat; the notifier sends to the telegram-test-api emulator.
const emulator = await startTelegramEmulator();
const telegram = { apiRoot: emulator.apiRoot, token: '1000:bench-cluster' };
const cluster = await startCluster({
  databaseUrl,
  amqpUrl,
  processes,
  telegram,
  ...(values.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}),
});
let ok: boolean;
try {
  const run = await runClusterOrders(cluster, {
    orders: Number(values.orders),
    clients: Number(values.clients),
  });
  console.log(
    `${run.orders} orders: ${run.completed} completed, ${run.failed} failed, in ${(run.ms / 1000).toFixed(1)} s ` +
      `→ ${Math.round(run.orders / (run.ms / 1000))} orders/s end to end`,
  );
  console.log(
    `accept → terminal: p50 ${run.latency.p50} ms, p99 ${run.latency.p99} ms, max ${run.latency.max} ms`,
  );
  const sent = emulator.sent(telegram.token);
  const distinct = new Set(sent.map((m) => m.text)).size;
  console.log(
    `Telegram emulator: ${sent.length} messages (${distinct} distinct) for ${run.orders} terminal orders`,
  );
  for (const service of cluster.services) {
    const code = await service.stop();
    console.log(`${service.name} stopped (exit ${code})`);
  }
  const { code, report } = await cluster.check();
  console.log(report.trim());
  ok = code === 0 && sent.length === run.orders && distinct === run.orders;
} finally {
  await cluster.close({ keep: values.keep });
  await emulator.stop();
  if (values.keep) console.log(`kept database ${cluster.databaseUrl} and prefix ${cluster.prefix}`);
}
process.exit(ok ? 0 : 1);
