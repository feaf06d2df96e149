import process from 'node:process';
import { SingleBar } from 'cli-progress';
import type { Database } from '../app/ports/database.ts';
import { rebuildReadModels } from '../infra/projectionRebuild.ts';
import type { RebuildReport } from '../infra/projectionRebuild.ts';

/** The report `rebuild-projections` prints. */
export function formatRebuildReport(report: RebuildReport): string {
  const lines = [
    `events read:    ${report.eventsRead}`,
    `rows written:   ${report.rowsWritten} (orders_view ${report.rows.orders} rows, positions_view ${report.rows.positions} rows)`,
    `rows differed:  ${report.rowsDiffered}${report.differed.length ? ` (e.g. ${report.differed.map((d) => `${d.view} ${d.id}`).join(', ')})` : ''}`,
    `seconds:        ${report.seconds.toFixed(1)} (appends held ${Math.round(report.lockedMs)} ms for the swap${report.swapAttempts > 1 ? `, locked at try ${report.swapAttempts}` : ''})`,
    `events/s:       ${Math.round(report.eventsPerSecond)}`,
  ];
  if (report.skippedEvents > 0) {
    lines.push(
      `events skipped: ${report.skippedEvents} (out of version order: see npm run check, guarantee 5)`,
    );
  }
  return lines.join('\n');
}

/**
 * `rebuild-projections`: rebuilds the read models from the event log and swaps them in while the
 * service runs, with a progress bar on stderr; prints the report on stdout.
 */
export async function runRebuildProjections(
  db: Database,
  print: (text: string) => void,
  options: { batchSize?: number; cachedRows?: number } = {},
): Promise<RebuildReport> {
  const bar = new SingleBar({
    stream: process.stderr,
    format: 'rebuild-projections [{bar}] {percentage}% | {value}/{total} events | {phase} | {rate} events/s',
    // Without a terminal (a log, CI) a line every few seconds instead of a redrawn bar.
    noTTYOutput: true,
    notTTYSchedule: 5000,
    etaBuffer: 50,
  });
  const started = performance.now();
  let running = false;
  const report = await rebuildReadModels(db, {
    ...options,
    onProgress({ phase, eventsRead, totalEvents }) {
      const seconds = (performance.now() - started) / 1000;
      const payload = { phase, rate: seconds > 0 ? Math.round(eventsRead / seconds) : 0 };
      if (!running) {
        bar.start(totalEvents, eventsRead, payload);
        running = true;
      }
      bar.setTotal(Math.max(totalEvents, eventsRead));
      bar.update(eventsRead, payload);
    },
  }).finally(() => bar.stop());
  print(formatRebuildReport(report));
  return report;
}
