import { describe, expect, it } from 'vitest';
import type { FailpointName } from '../../src/app/failpoints.ts';
import type { ServiceSpec } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';
import { cli } from '../cli/run.ts';
import { DEFAULT_PROCESSES, expectClean, runScenario } from './harness.ts';

/**
 * Every failpoint of the service (src/app/failpoints.ts), each on its own run of 200 orders: the
 * processes that carry the point die there, as by kill -9, again and again — `@N` fires on the Nth
 * hit of each life, and the supervisor starts a dead process again — so each run crosses the
 * point's moment (a commit made and not answered, a message confirmed and not marked, a venue's
 * answer not stored, a notification sent and not recorded) several times. Clients retry with their
 * Idempotency-Key as careful ones do. Then: nothing lost, duplicated, stuck or executed behind our
 * back, and the verifier clean.
 */

/** The default processes, with FAILPOINTS on those that run `role`. */
function armed(role: string, failpoints: string): readonly ServiceSpec[] {
  return DEFAULT_PROCESSES.map((spec) => {
    const roles = 'roles' in spec ? spec.roles : spec;
    return roles.includes(role) ? { roles, env: { FAILPOINTS: failpoints } } : spec;
  });
}

/** A point, the role whose processes carry it, and the hit of each life it fires on. */
const CRASHES: readonly { readonly point: FailpointName; readonly role: string; readonly nth: number }[] = [
  // One hit per order accepted (a group-committed batch is answered after its commit).
  { point: 'api.after-commit', role: 'api', nth: 30 },
  // One hit per confirmed publish batch.
  { point: 'relay.after-confirm', role: 'relay', nth: 25 },
  // Per orchestrator: one hit per quote, one or more per swap, about three appends per order.
  { point: 'saga.after-price-call', role: 'saga', nth: 20 },
  { point: 'saga.after-venue-call', role: 'saga', nth: 20 },
  { point: 'saga.after-append', role: 'saga', nth: 15 },
  // One hit per notification sent.
  { point: 'notifier.after-send', role: 'notifier', nth: 60 },
];

describe('failpoints: a process killed at the point, over and over', () => {
  for (const { point, role, nth } of CRASHES) {
    it(`${point}: the ${role} processes die at hit ${nth} of every life`, async () => {
      await runScenario(
        {
          group: 'failpoints',
          scenario: `crash at ${point}`,
          processes: armed(role, `${point}=crash@${nth}`),
        },
        async (s) => {
          // The point keeps firing until every order has ended: the last orders meet it too.
          await s.placeOrders({ orders: 200, clients: 8 }).done;
          // Every life is short and starts again: allow twice the usual time to drain.
          await s.drain(120_000);
          const crashes = s.supervisor.faultLines().length;
          // The point must have been crossed: a scenario that injected nothing proves nothing.
          expect(crashes, `no crash at ${point}`).toBeGreaterThan(0);
          s.markFaultEnd(Math.max(...s.supervisor.lives().map((life) => life.diedAt ?? 0)));
          const finished = await s.finish({
            faults: `${crashes} crash${crashes === 1 ? '' : 'es'} (kill -9 at the point, hit ${nth} of each life), ${s.supervisor.restarts} restart${s.supervisor.restarts === 1 ? '' : 's'}`,
            faultsInjected: crashes,
          });
          expectClean(finished);
        },
      );
    });
  }

  it('saga.after-venue-call frozen past the sweeper’s stale time: another worker takes the saga over, then the frozen one wakes', async () => {
    // A pause freezes the whole process (timers, sockets, heartbeats) for 4 s, twice the 2 s after
    // which the sweeper takes a quiet saga over: the frozen worker wakes holding a venue answer
    // for a saga another worker has moved on, and must not act on it twice.
    await runScenario(
      {
        group: 'failpoints',
        scenario: 'pause at saga.after-venue-call (4 s, past the sweeper’s 2 s)',
        processes: armed('saga', 'saga.after-venue-call=pause:4000%4'),
      },
      async (s) => {
        await s.placeOrders({ orders: 200, clients: 8 }).done;
        await s.drain();
        const pauses = s.supervisor
          .lives()
          .reduce((n, life) => n + (life.output().match(/^failpoint \S+: pause /gm)?.length ?? 0), 0);
        expect(pauses, 'no worker was frozen').toBeGreaterThan(0);
        expectClean(
          await s.finish({
            faults: `${pauses} freezes of a saga worker for 4 s, right after a venue call (4 % of calls)`,
            faultsInjected: pauses,
          }),
        );
      },
    );
  });

  it('projection.mid-batch: rebuild-projections killed after a batch while orders flow, then run again', async () => {
    await runScenario({ group: 'failpoints', scenario: 'crash at projection.mid-batch' }, async (s) => {
      const env = { DATABASE_URL: s.cluster.databaseUrl };
      const placing = s.placeOrders({ orders: 200, clients: 8 });
      await until(async () => {
        const [row] = await s.cluster.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM orders_view`);
        return (row?.n ?? 0) >= 50;
      }, 'some orders to rebuild');
      const crashed = await cli(['rebuild-projections'], {
        ...env,
        FAILPOINTS: 'projection.mid-batch=crash@1',
      });
      expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
      const rerun = await cli(['rebuild-projections'], env);
      expect(rerun.code, rerun.stderr).toBe(0);
      s.markFaultEnd();
      await placing.done;
      await s.drain();
      expectClean(
        await s.finish({
          faults:
            '1 crash of rebuild-projections after its first batch, with orders flowing; run again to the end',
          faultsInjected: 1,
          notes: `the rerun while orders flowed: ${rerun.stdout.trim().split('\n').join('; ')}`,
        }),
      );
    });
  });

  it('reconcile.mid-run: reconcile killed after its first answer, the rest settled by the sweeper once the dead run’s claims lapse', async () => {
    // No sweeper at first, so the failed orders' swaps wait for the command.
    await runScenario(
      {
        group: 'failpoints',
        scenario: 'crash at reconcile.mid-run',
        processes: [['api', 'relay'], ['saga'], ['saga', 'notifier']],
      },
      async (s) => {
        await s.placeOrders({ orders: 200, clients: 8 }).done;
        await s.drain();
        const due = async () => {
          const [row] = await s.cluster.db.query<{ due: number; total: number }>(
            `SELECT count(*) FILTER (WHERE venue_outcome IS NULL)::int AS due, count(*)::int AS total
             FROM swap_reconciliations`,
          );
          return row ?? { due: 0, total: 0 };
        };
        const before = await due();
        expect(before.due, 'no failed order sent a swap: nothing to reconcile').toBeGreaterThan(1);
        const env = {
          DATABASE_URL: s.cluster.databaseUrl,
          TRADE_WORKER_URL: s.market ? (s.cluster.marketUrl ?? '') : '',
        };
        const crashed = await cli(['reconcile'], { ...env, FAILPOINTS: 'reconcile.mid-run=crash@1' });
        expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
        const midway = await due();
        expect(midway.due).toBeLessThan(before.due);
        s.markFaultEnd();
        // The sweeper reconciles on its schedule; the dead run's claims hold its orders for 30 s.
        await s.cluster.startService(['sweeper']);
        await until(async () => (await due()).due === 0, 'every failed order’s swap settled', 90_000, 500);
        await s.drain();
        expectClean(
          await s.finish({
            faults: `1 crash of reconcile after its first recorded answer (${before.due} failed orders’ swaps were due, ${midway.due} left); the sweeper settled the rest`,
            faultsInjected: 1,
          }),
        );
      },
    );
  });
});
