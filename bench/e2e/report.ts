/**
 * The report of `npm run bench`: Markdown tables (printed as they are on the console, and written
 * beside the JSON) built from the runs' results.
 */
import type { PhaseFigures, Percentiles } from './measure.ts';
import type { WindowFigures } from './procs.ts';
import { MODE_TITLES } from './systems.ts';
import type { Mode } from './systems.ts';

export type PhaseKind = 'warmup' | 'closed' | 'open' | 'sweep' | 'soak';

export interface PhaseResult {
  readonly kind: PhaseKind;
  readonly label: string;
  /** Open loop: the target rate (orders/s). */
  readonly offered: number | undefined;
  readonly sent: number;
  readonly accepted: number;
  /** Answers other than 202 by status, transport errors by code. */
  readonly refused: Record<string, number>;
  /** The load generator's own view: first request → last answer (s). */
  readonly clientSeconds: number;
  readonly maxLagMs: number;
  readonly maxInFlight: number;
  /** POST /orders → answer as the load generator saw it (open loop: from the scheduled send). */
  readonly answer: Percentiles;
  readonly figures: Omit<PhaseFigures, 'timeline'>;
  readonly cpu: WindowFigures;
  /** CPU time of every process measured, per accepted order (ms). */
  readonly cpuMsPerOrder: number;
  readonly memory?: readonly MemoryTrend[];
}

export interface MemoryTrend {
  readonly name: string;
  readonly startMb: number;
  readonly endMb: number;
  readonly peakMb: number;
  /** Least-squares slope after the warm-up. */
  readonly mbPerMinute: number;
}

export interface ModeRun {
  readonly run: number;
  readonly mode: Mode;
  readonly phases: readonly PhaseResult[];
  readonly error?: string;
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n) ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Failures that are not business outcomes: refused requests, other OrderFailed reasons, unfinished orders. */
export function failures(phase: PhaseResult): number {
  const count = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return count(phase.refused) + count(phase.figures.unexpectedFailures) + phase.figures.unfinished;
}

function failureText(phase: PhaseResult): string {
  const parts = [
    ...Object.entries(phase.refused).map(([k, n]) => `${n}× HTTP ${k}`),
    ...Object.entries(phase.figures.unexpectedFailures).map(([k, n]) => `${n}× ${k}`),
    ...(phase.figures.unfinished ? [`${phase.figures.unfinished} unfinished`] : []),
  ];
  return parts.length ? parts.join(', ') : '0';
}

const modesOf = (runs: readonly ModeRun[]) => [...new Set(runs.map((r) => r.mode))];
const phasesOf = (runs: readonly ModeRun[], mode: Mode, kind: PhaseKind) =>
  runs.filter((r) => r.mode === mode).flatMap((r) => r.phases.filter((p) => p.kind === kind));

/** Values of every run, then their median: "355, 365 (360)". */
function runsAndMedian(values: readonly number[], digits = 0): string {
  if (values.length === 0) return '—';
  if (values.length === 1) return fmt(values[0], digits);
  return `${values.map((v) => fmt(v, digits)).join(', ')} (**${fmt(median(values), digits)}**)`;
}

function headline(runs: readonly ModeRun[], rate: number | undefined): string {
  const rows = modesOf(runs).map((mode) => {
    const closed = phasesOf(runs, mode, 'closed');
    const open = phasesOf(runs, mode, 'open');
    const p = (key: keyof Percentiles) => runsAndMedian(closed.map((c) => c.figures.acceptToTerminal[key]));
    return [
      MODE_TITLES[mode],
      runsAndMedian(closed.map((c) => c.figures.completedPerSecond)),
      p('p50'),
      p('p95'),
      p('p99'),
      p('max'),
      runsAndMedian(open.map((o) => o.figures.acceptToTerminal.p99)),
      runsAndMedian(
        closed.map((c) => c.cpuMsPerOrder),
        1,
      ),
      runsAndMedian(
        closed.map((c) => c.cpu.cores),
        2,
      ),
      [closed, open]
        .filter((phases) => phases.length > 0)
        .map((phases) => `${phases[0]?.kind}: ${phases.map(failureText).join(', ')}`)
        .join(' · ') || '—',
    ];
  });
  return table(
    [
      'mode',
      'completed/s, closed loop',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'max ms',
      `p99 ms at ${rate ?? '—'}/s (open loop)`,
      'CPU ms/order',
      'cores busy',
      'failures (not business)',
    ],
    rows,
  );
}

function processes(phase: PhaseResult): string {
  const orders = Math.max(1, phase.accepted);
  const rows = phase.cpu.processes.map((p) => [
    p.name,
    fmt(p.cores, 2),
    fmt((p.cpuSeconds * 1000) / orders, 2),
    fmt(p.peakMb),
    fmt(p.hwmMb),
  ]);
  rows.push(['**all**', fmt(phase.cpu.cores, 2), fmt(phase.cpuMsPerOrder, 2), '', '']);
  return table(['process', 'cores', 'CPU ms/order', 'peak RSS MB', 'VmHWM MB'], rows);
}

const pct = (p: Percentiles | undefined) =>
  p && p.n > 0 ? `${fmt(p.p50, 1)} / ${fmt(p.p95, 1)} / ${fmt(p.p99, 1)} / ${fmt(p.max, 1)}` : '—';

function stages(runs: readonly ModeRun[], kind: PhaseKind): string {
  const modes = modesOf(runs).filter((m) => phasesOf(runs, m, kind).length > 0);
  const first = (mode: Mode) => phasesOf(runs, mode, kind)[0];
  const stageNames = [...new Set(modes.flatMap((m) => Object.keys(first(m)?.figures.stages ?? {})))];
  const stepNames = [...new Set(modes.flatMap((m) => (first(m)?.figures.steps ?? []).map((s) => s.step)))];
  const rows = [
    ...stageNames.map((name) => [name, ...modes.map((m) => pct(first(m)?.figures.stages[name]))]),
    ...stepNames.map((name) => [
      `step ${name}`,
      ...modes.map((m) => {
        const step = first(m)?.figures.steps.find((s) => s.step === name);
        return step ? `${pct(step)} (n ${fmt(step.n)})` : '—';
      }),
    ]),
  ];
  return table(['stage (p50 / p95 / p99 / max ms)', ...modes], rows);
}

function sweep(runs: readonly ModeRun[]): string {
  const rows = runs.flatMap((r) =>
    r.phases
      .filter((p) => p.kind === 'sweep' || p.kind === 'open')
      .map((p) => [
        r.mode,
        String(r.run),
        fmt(p.offered),
        fmt(p.figures.completedPerSecond, 1),
        fmt(p.figures.acceptToTerminal.p50, 1),
        fmt(p.figures.acceptToTerminal.p99, 1),
        fmt(p.answer.p99, 1),
        fmt(p.cpu.cores, 2),
        fmt(p.maxLagMs),
        failureText(p),
      ]),
  );
  const header = [
    'mode',
    'run',
    'offered/s',
    'completed/s',
    'p50 ms',
    'p99 ms',
    'POST → 202 p99 ms',
    'cores busy',
    'generator lag ms',
    'failures',
  ];
  return [
    table(header, rows),
    '',
    'p50/p99: accept → terminal from the stored events. POST → 202: from the time the load generator ' +
      'was to send the order to its answer, so it includes any wait before the service accepted it ' +
      '(an open loop above capacity shows there first). Generator lag: how late the generator sent an ' +
      'order at worst (its own CPU).',
  ].join('\n');
}

function soak(runs: readonly ModeRun[]): string {
  const rows = runs.flatMap((r) =>
    r.phases.flatMap((p) =>
      (p.memory ?? []).map((m) => [
        r.mode,
        m.name,
        fmt(m.startMb),
        fmt(m.endMb),
        fmt(m.peakMb),
        fmt(m.mbPerMinute, 2),
      ]),
    ),
  );
  return table(['mode', 'process', 'start MB', 'end MB', 'peak MB', 'MB/min after warm-up'], rows);
}

export interface ReportInput {
  readonly title: string;
  readonly command: string;
  readonly machine: string;
  readonly runs: readonly ModeRun[];
  readonly rate: number | undefined;
  readonly plots: readonly { readonly title: string; readonly file: string }[];
}

export function markdown(input: ReportInput): string {
  const { runs } = input;
  const parts = [
    `# ${input.title}`,
    '',
    `\`${input.command}\``,
    '',
    input.machine,
    '',
    'Completed/s = orders ÷ (last terminal event − first acceptance); latencies from the events’ ' +
      '`created_at`, `outbox.published_at` and `notifications.sent_at`. Figures of several runs: each run, ' +
      'then the median in bold. Timing figures are noisy on a shared 2-core machine; memory is not.',
    '',
  ];
  const hasKind = (kind: PhaseKind) => runs.some((r) => r.phases.some((p) => p.kind === kind));
  if (hasKind('closed') || hasKind('open')) parts.push('## Headline', '', headline(runs, input.rate), '');
  const stageKinds = (['closed', 'open', 'soak'] as const).filter(hasKind);
  if (stageKinds.length) {
    parts.push(
      '## Per stage (run 1)',
      '',
      '`published` is when the relay (or the in-process bus) marked the outbox row, after the ' +
        "broker's confirm (in process: after the delivery), so a consumer may start the saga before " +
        'it: published → saga start can be negative. A step of 0 ms rides in the append of the step ' +
        'before it (same transaction, same `created_at`).',
      '',
    );
  }
  for (const kind of stageKinds) {
    parts.push(`### ${kind === 'closed' ? 'Closed loop' : kind === 'open' ? 'Open loop' : 'Soak'}`);
    parts.push('', stages(runs, kind), '');
  }
  if (hasKind('sweep') || hasKind('open'))
    parts.push('## Open loop: offered vs completed', '', sweep(runs), '');
  if (hasKind('soak')) parts.push('## Soak: memory', '', soak(runs), '');
  parts.push('## CPU and memory per process', '');
  for (const r of runs) {
    for (const p of r.phases.filter((phase) => phase.kind !== 'sweep' && phase.kind !== 'warmup')) {
      parts.push(
        `### ${r.mode}, run ${r.run}: ${p.label} (${fmt(p.cpu.wallSeconds, 1)} s)`,
        '',
        processes(p),
        '',
      );
    }
  }
  const errors = runs.filter((r) => r.error);
  if (errors.length) {
    parts.push('## Errors', '');
    for (const r of errors) parts.push(`- ${r.mode}, run ${r.run}: ${r.error?.split('\n')[0]}`);
    parts.push('');
  }
  if (input.plots.length) {
    parts.push('## Plots', '');
    for (const plot of input.plots) parts.push(`![${plot.title}](${plot.file})`, '');
  }
  return parts.join('\n');
}
