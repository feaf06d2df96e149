/**
 * CPU and memory of the processes a benchmark involves, read from /proc (Linux): the service's
 * process trees (a root and every descendant, e.g. the workers a supervisor forks), this process,
 * PostgreSQL and RabbitMQ. PostgreSQL and RabbitMQ are not our children: they are found by name
 * and summed as one line each. The machine is shared, so PostgreSQL counts only its server
 * processes and the backends of the benchmark's own database; RabbitMQ counts the whole broker.
 *
 * CPU is utime+stime; a process that exits keeps what its last sample saw, one that starts during
 * a window counts from zero. Memory is RSS sampled every `everyMs` (the peak over a window) and
 * VmHWM (the kernel's lifetime peak); for the PostgreSQL and RabbitMQ lines, PSS summed, so that
 * shared buffers are not counted once per backend.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export type Group = 'service' | 'bench' | 'postgres' | 'rabbitmq';

interface Stat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, in clock ticks. */
  readonly ticks: number;
  readonly start: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process exited between the listing and the read
  }
}

function readStat(pid: number): Stat | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (!text) return undefined;
  // comm is in parentheses and may hold spaces: the fields after the last ')' are space-separated.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const rest = text.slice(close + 2).split(' ');
  return {
    pid,
    ppid: Number(rest[1]),
    comm,
    ticks: Number(rest[11]) + Number(rest[12]),
    start: rest[19] ?? '',
  };
}

/** VmRSS and VmHWM in kB (0 for a process that has gone). */
function readStatus(pid: number): { rssKb: number; hwmKb: number } {
  const text = readText(`/proc/${pid}/status`) ?? '';
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** Proportional set size in kB: shared pages split between the processes that map them. */
function readPss(pid: number): number {
  const text = readText(`/proc/${pid}/smaps_rollup`) ?? '';
  return Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
}

const cmdline = (pid: number) => (readText(`/proc/${pid}/cmdline`) ?? '').replaceAll('\0', ' ').trim();

/** node:cluster gives each worker NODE_UNIQUE_ID: the worker's number, to name it by. */
function workerId(pid: number): string | undefined {
  const env = readText(`/proc/${pid}/environ`) ?? '';
  return /(?:^|\0)NODE_UNIQUE_ID=(\d+)/.exec(env)?.[1];
}

const RABBIT = new Set(['beam.smp', 'epmd', 'erl_child_setup', 'inet_gethost', 'rabbitmq-server']);

/**
 * Whether a `postgres` process belongs to the benchmark: the server's own processes (title
 * `postgres: [15/main: ]checkpointer`…) yes; a backend (`postgres: [15/main: ]user db host(port)
 * state`) or an autovacuum worker only when it serves `database`.
 */
function ourPostgres(pid: number, database: string): boolean {
  const title = cmdline(pid).replace(/^postgres: (?:[\w./-]+: )?/, '');
  const backend = /^\S+ (\S+) (?:\S+\(\d+\)|\[local\])/.exec(title);
  if (backend) return backend[1] === database;
  const vacuum = /^autovacuum worker (\S+)/.exec(title);
  if (vacuum) return vacuum[1] === database;
  return true;
}

export interface ProcessFigures {
  readonly name: string;
  readonly group: Group;
  /** The pids behind the line (several for PostgreSQL and RabbitMQ). */
  readonly pids: readonly number[];
  readonly cpuSeconds: number;
  /** cpuSeconds ÷ the window's wall seconds. */
  readonly cores: number;
  /** Highest sampled RSS (PSS summed for the groups) over the window, MB. */
  readonly peakMb: number;
  /** The kernel's high-water mark of the process's RSS over its life, MB (none for the groups). */
  readonly hwmMb: number | undefined;
  /** RSS (or PSS summed) at the end of the window, MB. */
  readonly endMb: number;
}

export interface WindowFigures {
  readonly wallSeconds: number;
  readonly processes: readonly ProcessFigures[];
  /** Every process above summed. */
  readonly cores: number;
  readonly cpuSeconds: number;
  /** Memory over time, when the window was opened with `seriesEveryMs`: MB by line name. */
  readonly series: readonly { readonly seconds: number; readonly name: string; readonly mb: number }[];
}

/** One line of the tables: a process of ours, or a group summed. */
interface Line {
  readonly name: string;
  readonly group: Group;
  /** CPU ticks of each member seen so far (key: pid and start time, so a reused pid is new). */
  readonly ticks: Map<string, number>;
  readonly pids: Set<number>;
  mb: number;
  hwmMb: number | undefined;
}

interface OpenWindow {
  readonly startedAt: number;
  readonly startTicks: Map<string, number>;
  readonly peaks: Map<string, number>;
  readonly seriesEveryMs: number | undefined;
  lastSeriesAt: number;
  readonly series: { seconds: number; name: string; mb: number }[];
}

export interface SamplerOptions {
  /** Our processes by name: each with every descendant. */
  readonly roots: () => readonly { readonly pid: number; readonly name: string }[];
  /** The scratch database whose PostgreSQL backends count; none: no PostgreSQL line. */
  readonly database?: string;
  /** Count the RabbitMQ broker. */
  readonly broker: boolean;
  readonly everyMs?: number;
  /** The name of this process's line (default: the benchmark's load generator and emulator). */
  readonly selfName?: string;
}

export interface Sampler {
  /** Opens a measuring window; `close` returns its figures. */
  window(options?: { seriesEveryMs?: number }): { close(): WindowFigures };
  stop(): void;
}

/** Samples every `everyMs` (500 ms) until stopped. */
export function startSampler(options: SamplerOptions): Sampler {
  const lines = new Map<string, Line>();
  const windows = new Set<OpenWindow>();
  const line = (name: string, group: Group): Line => {
    let found = lines.get(name);
    if (!found) {
      found = { name, group, ticks: new Map(), pids: new Set(), mb: 0, hwmMb: undefined };
      lines.set(name, found);
    }
    return found;
  };

  const sample = () => {
    const stats = new Map<number, Stat>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = readStat(Number(entry));
      if (stat) stats.set(stat.pid, stat);
    }
    const children = new Map<number, Stat[]>();
    for (const stat of stats.values()) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat]);

    const seen = new Map<Line, number>();
    const count = (target: Line, stat: Stat, mb: number, hwmMb?: number) => {
      target.ticks.set(`${stat.pid}:${stat.start}`, stat.ticks);
      target.pids.add(stat.pid);
      seen.set(target, (seen.get(target) ?? 0) + mb);
      if (hwmMb !== undefined) target.hwmMb = Math.max(target.hwmMb ?? 0, hwmMb);
    };
    const own = (stat: Stat, name: string, group: Group) => {
      const { rssKb, hwmKb } = readStatus(stat.pid);
      count(line(name, group), stat, rssKb / 1024, hwmKb / 1024);
    };

    const self = stats.get(process.pid);
    if (self) own(self, options.selfName ?? 'bench (load, Telegram emulator)', 'bench');
    for (const root of options.roots()) {
      const top = stats.get(root.pid);
      if (!top) continue;
      own(top, root.name, 'service');
      const below = [...(children.get(root.pid) ?? [])];
      for (let next = below.shift(); next; next = below.shift()) {
        const id = workerId(next.pid);
        own(next, `${root.name} ${id ? `worker ${id}` : `${next.comm} ${next.pid}`}`, 'service');
        below.push(...(children.get(next.pid) ?? []));
      }
    }
    for (const stat of stats.values()) {
      if (
        options.database !== undefined &&
        stat.comm === 'postgres' &&
        ourPostgres(stat.pid, options.database)
      )
        count(line('postgres', 'postgres'), stat, readPss(stat.pid) / 1024);
      else if (options.broker && RABBIT.has(stat.comm))
        count(line('rabbitmq', 'rabbitmq'), stat, readPss(stat.pid) / 1024);
    }

    const now = Date.now();
    for (const target of lines.values()) target.mb = seen.get(target) ?? 0;
    for (const w of windows) {
      for (const target of lines.values())
        w.peaks.set(target.name, Math.max(w.peaks.get(target.name) ?? 0, target.mb));
      if (w.seriesEveryMs !== undefined && now - w.lastSeriesAt >= w.seriesEveryMs) {
        w.lastSeriesAt = now;
        for (const target of lines.values())
          if (target.mb > 0)
            w.series.push({ seconds: (now - w.startedAt) / 1000, name: target.name, mb: round(target.mb) });
      }
    }
  };

  const allTicks = () => {
    const all = new Map<string, number>();
    for (const target of lines.values())
      for (const [key, ticks] of target.ticks) all.set(`${target.name}|${key}`, ticks);
    return all;
  };

  sample();
  const timer = setInterval(sample, options.everyMs ?? 500);
  timer.unref();

  return {
    window(windowOptions = {}) {
      sample();
      const w: OpenWindow = {
        startedAt: Date.now(),
        startTicks: allTicks(),
        peaks: new Map(),
        seriesEveryMs: windowOptions.seriesEveryMs,
        lastSeriesAt: 0,
        series: [],
      };
      windows.add(w);
      sample();
      return {
        close(): WindowFigures {
          sample();
          windows.delete(w);
          const wallSeconds = (Date.now() - w.startedAt) / 1000;
          const processes = [...lines.values()].map((target): ProcessFigures => {
            let ticks = 0;
            for (const [key, now] of target.ticks)
              ticks += now - (w.startTicks.get(`${target.name}|${key}`) ?? 0);
            const cpuSeconds = ticks / CLOCK_TICKS;
            return {
              name: target.name,
              group: target.group,
              pids: [...target.pids],
              cpuSeconds: round(cpuSeconds),
              cores: round(cpuSeconds / wallSeconds),
              peakMb: round(w.peaks.get(target.name) ?? target.mb),
              hwmMb: target.hwmMb === undefined ? undefined : round(target.hwmMb),
              endMb: round(target.mb),
            };
          });
          const cpuSeconds = processes.reduce((sum, p) => sum + p.cpuSeconds, 0);
          return {
            wallSeconds: round(wallSeconds),
            processes,
            cpuSeconds: round(cpuSeconds),
            cores: round(cpuSeconds / wallSeconds),
            series: w.series,
          };
        },
      };
    },
    stop: () => clearInterval(timer),
  };
}

const round = (n: number) => Math.round(n * 100) / 100;
