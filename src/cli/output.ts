import process from 'node:process';

/**
 * Where a command writes: `out` is stdout, the result (a table, a report, JSON, a created key)
 * and nothing else, so a script can capture it; `err` is stderr, everything said to the operator.
 */
export interface Output {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** stdout and stderr, a line per call. */
export const processOutput: Output = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
};

/** `value` as `--json` prints it: one document, indented, so that `jq` and a reader both cope. */
export const json = (value: unknown): string => JSON.stringify(value, null, 2);

/**
 * Rows as padded columns under a header, two spaces apart. Padded text rather than a boxed table:
 * `grep`, `awk '{print $1}'` and `sort` work on it, and `--json` is there for anything more.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]?.length ?? 0)));
  return all
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A duration as an operator reads it: 850ms, 42s, 3m 5s, 2h 10m, 3d 4h. */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
