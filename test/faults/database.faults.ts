import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'vitest';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { expectClean, runScenario, runWithFaultMidRun } from './harness.ts';
import { crashRestartPostgres, ensurePostgresUp } from './servers.ts';

/**
 * PostgreSQL fails under 200 orders: the shared server crash-restarted, and, separately, the
 * scenario database's backends killed again and again. Requests in flight get 503 and are retried
 * with their keys; consumers and the relay wait for the database; nothing may be lost or doubled.
 */
describe('database faults', () => {
  it('PostgreSQL crash-restarted mid-run (stop -m immediate, 3 s down, start)', async () => {
    try {
      await runScenario({ group: 'database', scenario: 'PostgreSQL crash-restarted mid-run' }, async (s) => {
        await runWithFaultMidRun(s, { at: 60, fault: () => crashRestartPostgres(3_000) });
        expectClean(
          await s.finish({
            faults: '1 crash-restart: stop -m immediate (no checkpoint: crash recovery at start), 3 s down',
            faultsInjected: 1,
          }),
        );
      });
    } finally {
      await ensurePostgresUp();
    }
  });

  it('backends of the scenario database killed with pg_terminate_backend every 250 ms for 6 s', async () => {
    const admin = postgresDatabase(process.env.DATABASE_URL ?? '', { max: 1 });
    try {
      await runScenario(
        { group: 'database', scenario: 'backends killed (pg_terminate_backend)' },
        async (s) => {
          const database = new URL(s.cluster.databaseUrl).pathname.slice(1);
          let killed = 0;
          const kill = async () => {
            const until = Date.now() + 6_000;
            while (Date.now() < until) {
              const [row] = await admin.query<{ n: number }>(
                `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
                [database],
              );
              killed += row?.n ?? 0;
              await sleep(250);
            }
          };
          await runWithFaultMidRun(s, { at: 40, fault: kill });
          expectClean(
            await s.finish({
              faults: `${killed} backends terminated (every backend of the scenario's database, every 250 ms for 6 s)`,
              faultsInjected: killed,
            }),
          );
        },
      );
    } finally {
      await admin.close();
    }
  });
});
