/**
 * The embedded default as a user runs it: `src/main.ts` without DATABASE_URL or AMQP_URL, as a
 * process of its own on a scratch data directory. Posts N orders over HTTP with 32 in flight, waits
 * until every one is completed or failed (the read model's pending and processing lists are empty),
 * and reports the process's resident memory (VmRSS now, VmHWM its peak, from /proc) once healthy,
 * after the first order and after all N, and the orders completed per second.
 *
 *   npm run bench:embedded                               # 10,000 orders on a fresh data directory
 *   npm run bench:embedded -- --orders 2000 --clients 32
 *   npm run bench:embedded -- --profile .scratch/prof    # CPU profile of the service (--cpu-prof)
 *   PGLITE_SHARED_BUFFERS=128MB npm run bench:embedded   # the service's env is this process's
 *
 * Linux only (/proc). Timing figures depend on what else the machine runs; memory does not.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startService } from '../test/helpers/server.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '32' },
    /** Writes the service's CPU profile (node --cpu-prof) into this directory. */
    profile: { type: 'string' },
    /** Starts the service once to create the database, stops it, and measures the second start. */
    restart: { type: 'boolean', default: false },
  },
});
const ORDERS = Number(values.orders);
const CLIENTS = Number(values.clients);
const USER = `bench-${randomUUID().slice(0, 8)}`;

const order = {
  user_id: USER,
  from_amount: '1000',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
};

interface Memory {
  readonly rssMb: number;
  readonly peakMb: number;
}

async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** CPU seconds the process has used (user + system), from /proc/<pid>/stat (clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function post(url: string): Promise<void> {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(order),
  });
  if (res.status !== 202) throw new Error(`POST /orders answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

/** True when none of the user's orders is still pending or processing. */
async function allTerminal(url: string): Promise<boolean> {
  for (const status of ['pending', 'processing']) {
    const res = await fetch(`${url}/users/${USER}/orders?status=${status}&limit=1`);
    const page = (await res.json()) as { orders: unknown[] };
    if (page.orders.length > 0) return false;
  }
  return true;
}

/** Polls the read model (the service is another process: there is no event to await). */
async function drained(url: string): Promise<void> {
  while (!(await allTerminal(url))) await new Promise((r) => setTimeout(r, 100));
}

async function counts(url: string): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const status of ['completed', 'failed']) {
    let n = 0;
    let cursor: string | undefined;
    do {
      const res = await fetch(
        `${url}/users/${USER}/orders?status=${status}&limit=200${cursor ? `&cursor=${cursor}` : ''}`,
      );
      const page = (await res.json()) as { orders: unknown[]; next_cursor?: string | null };
      n += page.orders.length;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    result[status] = n;
  }
  return result;
}

const dataDir = await mkdtemp(join(tmpdir(), 'bench-embedded-'));
const nodeArgs = [
  ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`] : []),
  '--import',
  'tsx',
  'src/main.ts',
];
const serviceEnv = { DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' };
if (values.restart) {
  const first = await startService([process.execPath, '--import', 'tsx', 'src/main.ts'], serviceEnv);
  await first.stop();
}
const service = await startService([process.execPath, ...nodeArgs], serviceEnv);
const servicePid = service.pid;
try {
  const rows: Array<[string, Memory]> = [['healthy', await memoryOf(servicePid)]];

  await post(service.url);
  await drained(service.url);
  rows.push(['after 1 order', await memoryOf(servicePid)]);

  const started = performance.now();
  const cpuBefore = await cpuSeconds(servicePid);
  let submitted = 1;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (submitted < ORDERS) {
        submitted += 1;
        await post(service.url);
      }
    }),
  );
  const acceptedIn = (performance.now() - started) / 1000;
  await drained(service.url);
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await cpuSeconds(servicePid)) - cpuBefore;
  rows.push([`after ${ORDERS} orders`, await memoryOf(servicePid)]);
  const outcome = await counts(service.url);

  console.log(
    `embedded service (pid ${servicePid}, ${values.restart ? 'second start' : 'first start'}): ${ORDERS} orders, ${CLIENTS} in flight; ` +
      `accepted in ${acceptedIn.toFixed(1)} s, all terminal in ${seconds.toFixed(1)} s: ` +
      `${((ORDERS - 1) / seconds).toFixed(0)} orders completed/s ` +
      `(${outcome.completed} completed, ${outcome.failed} failed); ` +
      `service CPU ${((cpu * 1000) / (ORDERS - 1)).toFixed(2)} ms per order ` +
      `(${(seconds > 0 ? cpu / seconds : 0).toFixed(2)} of a core)\n`,
  );
  console.log('when                     RSS MB   peak RSS MB');
  for (const [when, m] of rows) {
    console.log(`${when.padEnd(22)} ${m.rssMb.toFixed(0).padStart(8)} ${m.peakMb.toFixed(0).padStart(13)}`);
  }
} finally {
  await service.stop();
  await rm(dataDir, { recursive: true, force: true });
}
