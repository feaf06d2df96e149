import { existsSync } from 'node:fs';
import { it } from 'vitest';
import { expectClean, runScenario, runWithPacedFaults } from './harness.ts';

/** Debian's libfaketime (apt-get install faketime; .ci/run installs it), the thread-safe build. */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

/** A worker whose wall clock is `offset` off (e.g. `+20s`); timers and timeouts run true. */
const skewed = (offset: string) => ({
  LD_PRELOAD: LIBFAKETIME,
  FAKETIME: offset,
  // Node's timers and AbortSignal.timeout run on the monotonic clock: only Date is off.
  DONT_FAKE_MONOTONIC: '1',
});

/**
 * Two orchestrators whose clocks disagree by 40 s: one 20 s ahead, one 20 s behind (libfaketime
 * through LD_PRELOAD, monotonic clock untouched). The api (which stamps acceptance), the sweeper,
 * the notifier, PostgreSQL and the venue keep true time. A worker's clock may only decide when to
 * stop trying, never what happened: the venue settles every swap by its own clock. At most every
 * 4th swap is processed 7 s late, so the deadline (25 s) matters: the fast worker sees it pass
 * after 5 s and voids those swaps; the slow one waits and finds them executed.
 *
 * MAX_QUOTE_AGE_MS is 30 s here: at its default (5 s) the fast worker finds every quote 20 s old
 * and refuses it, so every order it takes fails `price_unavailable` (cleanly: 100 of 200 in a run)
 * and its deadline logic is never reached.
 */
it('clock: two saga workers 20 s ahead and 20 s behind, some swaps processed late', async () => {
  if (!existsSync(LIBFAKETIME))
    throw new Error(`${LIBFAKETIME} is missing: apt-get install faketime (.ci/run installs it)`);
  await runScenario(
    {
      group: 'clock',
      scenario: 'saga worker clocks +20 s and −20 s',
      processes: [
        ['api', 'relay', 'sweeper', 'notifier'],
        { roles: ['saga'], env: skewed('+20s') },
        { roles: ['saga'], env: skewed('-20s') },
      ],
      env: { MAX_QUOTE_AGE_MS: '30000', SAGA_DEADLINE_MS: '25000' },
    },
    async (s) => {
      const venue = s.market.venue;
      const injected = await runWithPacedFaults(s, {
        every: 4,
        calls: () => venue.calls().executeSwap,
        inject: () => venue.delayNext(7_000),
        restore: () => venue.restore(),
      });
      expectClean(
        await s.finish({
          faults: `2 saga workers with clocks 20 s ahead and 20 s behind all run; ${injected} delays scripted, each for the next new swap request (processed 7 s late)`,
          faultsInjected: 2 + injected,
        }),
      );
    },
  );
});
