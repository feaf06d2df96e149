import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { clearRows, readRows, writeReport } from './report.ts';

/**
 * The fault suite needs the real servers: without them it fails at once instead of skipping (a
 * proof that ran nothing must not look green). Each run starts with no rows; the teardown writes
 * `bench/results/faults-<date>.md` and `.json` from the rows the scenarios left.
 */
export default function setup(): () => void {
  for (const name of ['DATABASE_URL', 'AMQP_URL'])
    if (!process.env[name])
      throw new Error(`npm run test:faults needs ${name} (a real server): it is not set`);
  clearRows();
  return () => {
    if (readRows().length === 0) return;
    const commit = (() => {
      try {
        return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })();
    const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`;
    const written = writeReport({ commit, machine });
    if (written) console.log(`fault report: ${written}`);
  };
}
