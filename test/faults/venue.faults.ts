import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'vitest';
import { expectClean, runScenario, runWithFaultMidRun, runWithPacedFaults } from './harness.ts';

/**
 * The venue misbehaves as real ones do, each on its own run of 200 orders: calls that time out,
 * swaps that execute while their answer is lost, requests processed after their deadline, and an
 * outage. The saga learns a swap's outcome from the venue alone, so none of these may end in a
 * swap executed for a failed order, a second swap, or an order left open.
 */
describe('venue faults', () => {
  it('timeouts: at most every 4th swap request never reaches the venue and its caller times out', async () => {
    await runScenario({ group: 'venue', scenario: 'venue timeouts' }, async (s) => {
      const venue = s.market.venue;
      const injected = await runWithPacedFaults(s, {
        every: 4,
        calls: () => venue.calls().executeSwap,
        inject: () => venue.failNext('timeout'),
        restore: () => venue.restore(),
      });
      expectClean(
        await s.finish({
          faults: `${injected} swap requests that never arrived (no answer until the caller's 2 s timeout)`,
          faultsInjected: injected,
        }),
      );
    });
  });

  it('lost answers: at most every 3rd swap executes at the venue and its answer is cut off', async () => {
    await runScenario({ group: 'venue', scenario: 'venue lost answers' }, async (s) => {
      const venue = s.market.venue;
      const injected = await runWithPacedFaults(s, {
        every: 3,
        calls: () => venue.calls().executeSwap,
        inject: () => venue.failNext('lost_answer'),
        restore: () => venue.restore(),
      });
      expectClean(
        await s.finish({
          faults: `${injected} swaps executed whose answer broke off mid-body`,
          faultsInjected: injected,
        }),
      );
    });
  });

  it('late processing: swaps decided seconds after they arrive, some after their deadline, while the saga gave up waiting', async () => {
    // A 5 s deadline: a swap processed after 3 s executes late (its caller timed out at 2 s); one
    // processed after 7 s is past execute_before, and the saga has asked the venue to void it.
    await runScenario(
      { group: 'venue', scenario: 'venue late processing', env: { SAGA_DEADLINE_MS: '5000' } },
      async (s) => {
        const venue = s.market.venue;
        const injected = await runWithPacedFaults(s, {
          every: 4,
          calls: () => venue.calls().executeSwap,
          inject: (n) => venue.delayNext(n % 2 === 0 ? 3_000 : 7_000),
          restore: () => venue.restore(),
        });
        expectClean(
          await s.finish({
            faults: `${injected} delays scripted, each for the next new swap request: half processed after 3 s (after the caller's 2 s timeout), half after 7 s (past the 5 s deadline)`,
            faultsInjected: injected,
          }),
        );
      },
    );
  });

  it('outage: the venue answers 503 to every call for 5 s mid-run', async () => {
    await runScenario({ group: 'venue', scenario: 'venue outage' }, async (s) => {
      const venue = s.market.venue;
      const calls = () => {
        const c = venue.calls();
        return c.executeSwap + c.findSwap + c.voidSwap;
      };
      let injected = 0;
      await runWithFaultMidRun(s, {
        at: 60,
        fault: async () => {
          const before = calls();
          venue.startOutage();
          await sleep(5_000);
          venue.restore();
          injected = calls() - before;
        },
      });
      expectClean(
        await s.finish({
          faults: `venue down 5 s: ${injected} calls answered 503 (swaps, lookups, voids)`,
          faultsInjected: injected,
        }),
      );
    });
  });
});
