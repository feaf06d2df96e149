/**
 * `npm run bench`: the end-to-end load generator and its report (issue 12). Each mode (see
 * bench/e2e/systems.ts) is started from scratch, users get Telegram chats on an emulator, then
 * orders go over HTTP: a closed loop (the maximum), an open loop at a target rate, a sweep of
 * rates, or a soak. Figures come from what the system stored (bench/e2e/measure.ts), CPU and
 * memory from /proc (bench/e2e/procs.ts). Writes JSON, Markdown and SVG plots under bench/results/.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 \
 *     npm run bench -- --runs 2
 *   npm run bench -- --mode embedded --orders 300 --sweep ''
 *
 * `npm run bench -- --help` lists the options.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTelegramChat, until } from '../test/helpers/cluster.ts';
import { startTelegramEmulator } from '../test/helpers/notifyPeers.ts';
import type { TelegramEmulator } from '../test/helpers/notifyPeers.ts';
import { loadGenerator } from './e2e/load.ts';
import type { LoadResult } from './e2e/load.ts';
import { orderTimes, percentiles, phaseFigures, stepTimes } from './e2e/measure.ts';
import type { PhaseFigures } from './e2e/measure.ts';
import { latencyOverTime, memoryOverTime, renderSvg, throughputVsOffered } from './e2e/plots.ts';
import type { LatencySeries } from './e2e/plots.ts';
import { startSampler } from './e2e/procs.ts';
import type { WindowFigures } from './e2e/procs.ts';
import { failures, markdown, median } from './e2e/report.ts';
import type { MemoryTrend, ModeRun, PhaseKind, PhaseResult } from './e2e/report.ts';
import { MODES, MODE_TITLES, startSystem } from './e2e/systems.ts';
import type { Mode } from './e2e/systems.ts';

const HELP = `npm run bench -- [options]

Starts each mode from scratch, loads it over HTTP, measures from the stored timestamps and
writes <out>/<yyyy-mm-dd>-<name>.json, .md and .svg plots.

  --mode <m>          embedded | one | cores | split; repeat or comma-separate (default: all four).
                      All but embedded need DATABASE_URL and AMQP_URL.
  --runs <n>          runs of every mode, interleaved (default 1); tables show each and the median
  --orders <n>        closed loop: orders (default 2000; 0: no closed loop)
  --concurrency <n>   closed loop: requests in flight (default 32)
  --warmup <n>        closed-loop orders before the measured phases, not reported (default 0)
  --rate <n>          open loop at n orders/s (default 200; with --soak 150; 0: none)
  --seconds <s>       length of each open-loop phase, --rate's and every --sweep rate's (default 10)
  --open-orders <n>   open-loop phases send n orders instead of --seconds' worth
  --arrivals <a>      even | poisson spacing of the open loop (default even)
  --sweep <list>      offered rates for the throughput-vs-offered-load plot
                      (default 100,200,300,400,500; '' for none)
  --soak <s>          instead of the above: open loop at --rate for s seconds, RSS of every process
                      every 5 s, memory plot and slope (e.g. --soak 600 --rate 150)
  --connections <n>   keep-alive connections of the open loop (default 256)
  --users <n>         users ordering in turn, each with a Telegram chat (default 50)
  --workers <w>       WORKERS for the cores mode (default auto)
  --profile <dir>     writes a CPU profile of every service process there (node --cpu-prof)
  --out <dir>         where to write (default bench/results)
  --name <name>       file name after the date (default bench, or soak with --soak)
  --help`;

const { values } = parseArgs({
  options: {
    mode: { type: 'string', multiple: true },
    runs: { type: 'string', default: '1' },
    orders: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '32' },
    warmup: { type: 'string', default: '0' },
    rate: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    'open-orders': { type: 'string' },
    arrivals: { type: 'string', default: 'even' },
    sweep: { type: 'string', default: '100,200,300,400,500' },
    soak: { type: 'string' },
    connections: { type: 'string', default: '256' },
    users: { type: 'string', default: '50' },
    workers: { type: 'string', default: 'auto' },
    out: { type: 'string', default: 'bench/results' },
    profile: { type: 'string' },
    name: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(HELP);
  process.exit(0);
}

function fail(message: string): never {
  console.error(`${message}\n\n${HELP}`);
  process.exit(2);
}

const count = (name: string, text: string | undefined, min = 0): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be a whole number ≥ ${min}, not "${text}"`);
  return n;
};

const modes = (values.mode ?? [MODES.join(',')]).flatMap((m) => m.split(',')).filter(Boolean);
for (const m of modes) if (!(MODES as readonly string[]).includes(m)) fail(`unknown --mode "${m}"`);
const soakSeconds = values.soak === undefined ? undefined : count('soak', values.soak, 1);
const rate = count('rate', values.rate ?? (soakSeconds ? '150' : '200'));
const seconds = count('seconds', values.seconds, 1);
const openOrders =
  values['open-orders'] === undefined ? undefined : count('open-orders', values['open-orders'], 1);
const sweepRates = values.sweep
  .split(',')
  .filter((s) => s.trim() !== '')
  .map((s) => count('sweep', s.trim(), 0))
  .filter((n) => n > 0);
if (values.arrivals !== 'even' && values.arrivals !== 'poisson') fail('--arrivals must be even or poisson');
const arrivals: 'even' | 'poisson' = values.arrivals;
const options = {
  runs: count('runs', values.runs, 1),
  orders: count('orders', values.orders),
  concurrency: count('concurrency', values.concurrency, 1),
  warmup: count('warmup', values.warmup),
  connections: count('connections', values.connections, 1),
  users: count('users', values.users, 1),
};
if (soakSeconds !== undefined && rate === 0) fail('--soak needs a --rate above 0');

const databaseUrl = process.env.DATABASE_URL || undefined;
const amqpUrl = process.env.AMQP_URL || undefined;
const onServers = modes.filter((m) => m !== 'embedded');
if (onServers.length > 0 && (!databaseUrl || !amqpUrl)) {
  fail(
    `--mode ${onServers.join(',')} runs on PostgreSQL and RabbitMQ: set DATABASE_URL and AMQP_URL, e.g.\n` +
      `  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 npm run bench\n` +
      `or run only --mode embedded`,
  );
}

interface PlannedPhase {
  readonly kind: PhaseKind;
  readonly label: string;
  readonly rate?: number;
  readonly orders: number;
}

/** What each mode is put through, in order. */
function plan(): PlannedPhase[] {
  const openSize = (r: number) => openOrders ?? Math.max(1, Math.round(r * seconds));
  if (soakSeconds !== undefined)
    return [
      { kind: 'soak', label: `soak at ${rate}/s for ${soakSeconds} s`, rate, orders: rate * soakSeconds },
    ];
  const phases: PlannedPhase[] = [];
  if (options.warmup > 0) phases.push({ kind: 'warmup', label: 'warm-up', orders: options.warmup });
  if (options.orders > 0)
    phases.push({
      kind: 'closed',
      label: `closed loop, ${options.orders} orders, ${options.concurrency} in flight`,
      orders: options.orders,
    });
  if (rate > 0) phases.push({ kind: 'open', label: `open loop at ${rate}/s`, rate, orders: openSize(rate) });
  for (const r of sweepRates)
    phases.push({ kind: 'sweep', label: `sweep at ${r}/s`, rate: r, orders: openSize(r) });
  return phases;
}

/** Waits until every accepted order's Telegram message has reached the emulator. */
async function notifiedAll(emulator: TelegramEmulator, token: string, expected: number, alive: () => void) {
  await until(
    () => {
      alive();
      return emulator.sent(token).length >= expected;
    },
    `${expected} Telegram messages`,
    Math.max(120_000, expected * 50),
    200,
  );
}

/** Least-squares slope of (minutes, MB). */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxx === 0 ? NaN : Math.round((sxy / sxx) * 100) / 100;
}

/** Start, end and peak of each line of a soak, and its slope after the warm-up (20 %, at most 2 min). */
function memoryTrends(series: WindowFigures['series'], totalSeconds: number): MemoryTrend[] {
  const warmUp = Math.min(120, totalSeconds * 0.2);
  const names = [...new Set(series.map((s) => s.name))];
  return names.map((name) => {
    const line = series.filter((s) => s.name === name);
    return {
      name,
      startMb: line[0]?.mb ?? NaN,
      endMb: line.at(-1)?.mb ?? NaN,
      peakMb: Math.max(...line.map((s) => s.mb)),
      mbPerMinute: slope(
        line.filter((s) => s.seconds >= warmUp).map((s) => ({ x: s.seconds / 60, y: s.mb })),
      ),
    };
  });
}

interface Measured {
  readonly planned: PlannedPhase;
  readonly load: LoadResult;
  readonly cpu: WindowFigures;
}

/**
 * Ctrl-C: the services get the SIGINT too and drain; the scratch database, RabbitMQ prefix or data
 * directory of the mode running are dropped before the bench exits.
 */
let stopOnInterrupt: () => Promise<void> = async () => {};
process.once('SIGINT', () => {
  console.error('\ninterrupted: stopping the mode running and dropping its scratch data…');
  void stopOnInterrupt()
    .catch(() => {})
    .finally(() => process.exit(130));
});

/** Latency points of run 1, by mode and phase label, for the plots (kept out of the JSON). */
const timelines = new Map<string, LatencySeries>();

async function runMode(mode: Mode, run: number): Promise<ModeRun> {
  const token = `1000:bench-${randomUUID().slice(0, 8)}`;
  const emulator = await startTelegramEmulator({ storeTimeoutSeconds: (soakSeconds ?? 0) + 3600 });
  const telegram = { apiRoot: emulator.apiRoot, token };
  console.log(`\n▶ ${mode} (run ${run}): ${MODE_TITLES[mode]}`);
  const system = await startSystem(mode, {
    databaseUrl,
    amqpUrl,
    telegram,
    workers: values.workers,
    ...(values.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`] } : {}),
    onCleanUp: (abort) => (stopOnInterrupt = abort),
  }).catch(async (error: unknown) => {
    await emulator.stop();
    throw error;
  });
  const sampler = startSampler({
    roots: system.roots,
    database: system.database,
    broker: mode !== 'embedded',
  });
  const measured: Measured[] = [];
  try {
    const users = Array.from({ length: options.users }, () => randomUUID());
    for (const [i, user] of users.entries()) await setTelegramChat(system.apiUrl, user, String(1000 + i));
    const load = loadGenerator(system.apiUrl, users, Math.max(options.connections, options.concurrency));
    let expected = 0;
    try {
      for (const planned of plan()) {
        const window = sampler.window(planned.kind === 'soak' ? { seriesEveryMs: 5000 } : {});
        const result =
          planned.rate === undefined
            ? await load.closed({ orders: planned.orders, concurrency: options.concurrency })
            : await load.open({ rate: planned.rate, orders: planned.orders, arrivals });
        expected += result.orderIds.length;
        await notifiedAll(emulator, token, expected, () => system.alive());
        await system.settle();
        const cpu = window.close();
        measured.push({ planned, load: result, cpu });
        console.log(
          `  ${planned.label}: ${result.orderIds.length}/${result.sent} accepted, drained in ${cpu.wallSeconds} s, ` +
            `${cpu.cores} cores busy`,
        );
      }
    } finally {
      await load.close();
    }
  } catch (error) {
    sampler.stop();
    await system.abort().catch(() => {});
    stopOnInterrupt = async () => {};
    await emulator.stop();
    throw error;
  }
  sampler.stop();
  // The figures, from the stored timestamps (PGlite's after the service has stopped).
  const figures = await system.finish(async (db) => {
    const all: PhaseFigures[] = [];
    for (const m of measured)
      all.push(phaseFigures(await orderTimes(db, m.load.orderIds), await stepTimes(db, m.load.orderIds)));
    return all;
  });
  stopOnInterrupt = async () => {};
  await emulator.stop();
  const phases = measured.flatMap((m, i): PhaseResult[] => {
    const f = figures[i];
    if (!f || m.planned.kind === 'warmup') return [];
    const { timeline, ...kept } = f;
    if (run === 1)
      timelines.set(`${mode}|${m.planned.label}`, { mode, points: timeline, windows: f.windows });
    return [
      {
        kind: m.planned.kind,
        label: m.planned.label,
        offered: m.planned.rate,
        sent: m.load.sent,
        accepted: m.load.orderIds.length,
        refused: m.load.refused,
        clientSeconds: (m.load.endedAt - m.load.startedAt) / 1000,
        maxLagMs: m.load.maxLagMs,
        maxInFlight: m.load.maxInFlight,
        answer: percentiles(m.load.answerMs),
        figures: kept,
        cpu: m.cpu,
        cpuMsPerOrder:
          Math.round(((m.cpu.cpuSeconds * 1000) / Math.max(1, m.load.orderIds.length)) * 100) / 100,
        ...(m.planned.kind === 'soak' ? { memory: memoryTrends(m.cpu.series, m.cpu.wallSeconds) } : {}),
      },
    ];
  });
  for (const p of phases) {
    const a = p.figures.acceptToTerminal;
    console.log(
      `  ${p.label}: ${p.figures.completedPerSecond} completed/s, accept → terminal p50 ${a.p50} p95 ${a.p95} ` +
        `p99 ${a.p99} max ${a.max} ms (POST → 202 p99 ${p.answer.p99} ms), ${p.cpuMsPerOrder} CPU ms/order, ` +
        `failures (not business) ${failures(p)}`,
    );
  }
  return { run, mode, phases };
}

const runs: ModeRun[] = [];
for (let run = 1; run <= options.runs; run++) {
  for (const mode of modes as Mode[]) {
    try {
      runs.push(await runMode(mode, run));
    } catch (error) {
      console.error(`✗ ${mode} (run ${run}) failed: ${(error as Error).stack ?? String(error)}`);
      runs.push({ run, mode, phases: [], error: (error as Error).message });
    }
  }
}

// Plots, from run 1.
const day = new Date().toLocaleDateString('sv-SE'); // yyyy-mm-dd in local time
const name = `${day}-${values.name ?? (soakSeconds ? 'soak' : 'bench')}`;
await mkdir(values.out, { recursive: true });
const plots: { title: string; file: string }[] = [];
async function plot(suffix: string, title: string, spec: Parameters<typeof renderSvg>[0]) {
  const file = `${name}-${suffix}.svg`;
  await writeFile(join(values.out, file), await renderSvg(spec));
  plots.push({ title, file });
}
const firstRuns = runs.filter((r) => r.run === 1);
for (const kind of ['closed', 'open', 'soak'] as const) {
  const series = firstRuns.flatMap((r) =>
    r.phases.filter((p) => p.kind === kind).flatMap((p) => timelines.get(`${r.mode}|${p.label}`) ?? []),
  );
  const label = firstRuns.flatMap((r) => r.phases).find((p) => p.kind === kind)?.label;
  if (series.length && label)
    await plot(
      `latency-${kind}`,
      `Accept → terminal over time: ${label}`,
      latencyOverTime(`Accept → terminal over time, ${label} (red: p99 of 1-s windows)`, series),
    );
}
const offered = runs.flatMap((r) =>
  r.phases
    .filter((p) => p.kind === 'open' || p.kind === 'sweep')
    .map((p) => ({
      mode: r.mode,
      offered: p.offered ?? 0,
      completed: p.figures.completedPerSecond,
      p99: p.figures.acceptToTerminal.p99,
    })),
);
if (offered.length) {
  const closed = [...new Set(runs.map((r) => r.mode))].flatMap((mode) => {
    const values = runs
      .filter((r) => r.mode === mode)
      .flatMap((r) => r.phases.filter((p) => p.kind === 'closed').map((p) => p.figures.completedPerSecond));
    return values.length ? [{ mode, completed: median(values) }] : [];
  });
  await plot(
    'throughput',
    'Throughput vs offered load',
    throughputVsOffered('Completed vs offered orders/s, and p99 accept → terminal', offered, closed),
  );
}
const memory = firstRuns.flatMap((r) =>
  r.phases.filter((p) => p.kind === 'soak').flatMap((p) => p.cpu.series.map((s) => ({ mode: r.mode, ...s }))),
);
if (memory.length)
  await plot('memory', 'Memory over the soak', memoryOverTime('Resident memory over the soak', memory));

const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
const machine = `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}.`;
const report = markdown({
  title: `npm run bench, ${day}`,
  command,
  machine,
  runs,
  rate: soakSeconds ? undefined : rate || undefined,
  plots,
});
await writeFile(join(values.out, `${name}.md`), report);
await writeFile(
  join(values.out, `${name}.json`),
  JSON.stringify(
    {
      date: day,
      command,
      machine,
      options: {
        ...options,
        modes,
        rate,
        seconds,
        openOrders,
        sweepRates,
        arrivals,
        soakSeconds,
        workers: values.workers,
      },
      runs,
    },
    null,
    2,
  ),
);
console.log(`\n${report}`);
console.log(`\nwrote ${join(values.out, name)}.json, .md and ${plots.length} plot(s)`);
process.exit(runs.some((r) => r.error) ? 1 : 0);
