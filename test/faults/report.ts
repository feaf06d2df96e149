import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One row of the fault report: a scenario of `npm run test:faults`, what was injected and what the
 * outside world (the clients' answers, the venue's ledger, the Telegram emulator, the broker) and
 * the verifier found once the system had drained.
 */
export interface ScenarioRow {
  /** e.g. `failpoint saga.after-append`, `RabbitMQ restarted mid-run`. */
  readonly scenario: string;
  /** `failpoints`, `broker`, `database`, `messages`, `venue`, `price`, `clock`, `load`, `hosts`. */
  readonly group: string;
  readonly orders: number;
  /** What was injected, in words, e.g. `12 crashes (kill -9 at the point), 12 restarts`. */
  readonly faults: string;
  /** How many faults were injected (crashes, restarts, messages, failed calls…). */
  readonly faultsInjected: number;
  readonly completed: number;
  readonly failed: number;
  /** OrderFailed reasons and how many orders failed with each (business outcomes and others). */
  readonly failures: Readonly<Record<string, number>>;
  /** Orders a client was told were accepted and that the database does not hold. */
  readonly lost: number;
  /** Second orders for one request, second swaps or second executions for one order. */
  readonly duplicated: number;
  /** Accepted orders with no terminal event once the run was given time to drain. */
  readonly stuck: number;
  /** Swaps the venue executed for an order recorded as failed, or with no SwapExecuted. */
  readonly ghostSwaps: number;
  /** Violations the verifier (`check`) found, all guarantees together. */
  readonly violations: number;
  /** Notifications a user received twice (allowed only inside the send → record window). */
  readonly duplicateNotifications: number;
  /** The longest send → record window measured in this scenario (ms), when one was measured. */
  readonly duplicateWindowMs?: number;
  /** From the end of the fault (or the last one) until every order was terminal and drained (ms). */
  readonly recoveryMs: number | null;
  /** Whole scenario, first order to drained (ms). */
  readonly durationMs: number;
  readonly notes?: string;
}

/** Where the test files leave their rows until the run's teardown writes the report. */
export const ROWS_DIR = join(import.meta.dirname, '../../bench/results/.faults-rows');
const RESULTS_DIR = join(import.meta.dirname, '../../bench/results');

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/** Keeps one scenario's row for the report (test files run in separate workers: a file each). */
export function recordScenario(row: ScenarioRow): void {
  mkdirSync(ROWS_DIR, { recursive: true });
  writeFileSync(join(ROWS_DIR, `${slug(`${row.group} ${row.scenario}`)}.json`), JSON.stringify(row));
}

/**
 * A section of the report after the scenarios' table, for what a group measured besides its rows
 * (e.g. the separate hosts' throughput by number of saga hosts, with CPU per process).
 */
export interface ReportSection {
  readonly title: string;
  /** The section's body, Markdown (a table, a sentence). */
  readonly markdown: string;
  /** The same figures for machines, in the report's JSON. */
  readonly data?: unknown;
}

const SECTIONS_DIR = join(ROWS_DIR, 'sections');

/** Keeps a section for the report (one file per title: recording it again replaces it). */
export function recordSection(section: ReportSection): void {
  mkdirSync(SECTIONS_DIR, { recursive: true });
  writeFileSync(join(SECTIONS_DIR, `${slug(section.title)}.json`), JSON.stringify(section));
}

function readSections(): ReportSection[] {
  let files: string[];
  try {
    files = readdirSync(SECTIONS_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.sort().map((f) => JSON.parse(readFileSync(join(SECTIONS_DIR, f), 'utf8')) as ReportSection);
}

export function clearRows(): void {
  rmSync(ROWS_DIR, { recursive: true, force: true });
}

export function readRows(): ScenarioRow[] {
  let files: string[];
  try {
    files = readdirSync(ROWS_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.map((f) => JSON.parse(readFileSync(join(ROWS_DIR, f), 'utf8')) as ScenarioRow);
}

const GROUPS = ['failpoints', 'broker', 'database', 'messages', 'venue', 'price', 'clock', 'load', 'hosts'];

/** Whether the row is clean: nothing lost, duplicated, stuck or executed behind our back. */
export function clean(row: ScenarioRow): boolean {
  return row.lost + row.duplicated + row.stuck + row.ghostSwaps + row.violations === 0;
}

function markdown(
  rows: readonly ScenarioRow[],
  sections: readonly ReportSection[],
  meta: Record<string, string>,
): string {
  const seconds = (ms: number | null) => (ms === null ? '—' : (ms / 1000).toFixed(1));
  const reasons = (r: ScenarioRow) =>
    Object.entries(r.failures)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(', ') || '—';
  const lines = [
    `# Fault report, ${meta.date}`,
    '',
    `\`npm run test:faults\` on commit ${meta.commit}, ${meta.machine}. Each scenario placed its orders,`,
    'injected its faults, waited for every order to end and every queue to drain, then checked every',
    'guarantee against the database, the broker, the venue’s ledger and what users received.',
    '',
    '| scenario | orders | faults injected | completed / failed | lost | duplicated | stuck | ghost swaps | violations | dup. notifications | recovery s | failure reasons |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const window = r.duplicateWindowMs === undefined ? '' : ` (window ≤ ${r.duplicateWindowMs} ms)`;
    lines.push(
      `| ${r.scenario} | ${r.orders} | ${r.faults} | ${r.completed} / ${r.failed} | ${r.lost} | ${r.duplicated} | ${r.stuck} | ${r.ghostSwaps} | ${r.violations} | ${r.duplicateNotifications}${window} | ${seconds(r.recoveryMs)} | ${reasons(r)} |`,
    );
  }
  const dirty = rows.filter((r) => !clean(r));
  lines.push(
    '',
    dirty.length === 0
      ? `All ${rows.length} scenarios: 0 lost, 0 duplicated, 0 stuck, 0 ghost swaps, 0 violations.`
      : `${dirty.length} of ${rows.length} scenarios are NOT clean: ${dirty.map((r) => r.scenario).join('; ')}.`,
  );
  const notes = rows.filter((r) => r.notes);
  if (notes.length) {
    lines.push('', '## Notes', '');
    for (const r of notes) lines.push(`- **${r.scenario}**: ${r.notes}`);
  }
  for (const section of sections) lines.push('', `## ${section.title}`, '', section.markdown.trim());
  return `${lines.join('\n')}\n`;
}

/** Writes `bench/results/faults-<date>.md` and `.json` from the rows the scenarios left (`-partial` when some groups ran none). */
export function writeReport(meta: { commit: string; machine: string }): string | undefined {
  const rows = readRows().sort(
    (a, b) => GROUPS.indexOf(a.group) - GROUPS.indexOf(b.group) || a.scenario.localeCompare(b.scenario),
  );
  if (rows.length === 0) return undefined;
  const date = new Date().toISOString().slice(0, 10);
  // A run of some scenarios (one file, a -t filter) must not replace the whole suite's report.
  const whole = GROUPS.every((group) => rows.some((row) => row.group === group));
  const base = join(RESULTS_DIR, `faults-${date}${whole ? '' : '-partial'}`);
  const sections = readSections();
  writeFileSync(`${base}.json`, `${JSON.stringify({ date, ...meta, rows, sections }, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown(rows, sections, { date, ...meta }));
  return `${base}.md`;
}
