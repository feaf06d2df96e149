import { it } from 'vitest';
import { expectClean, runScenario } from './harness.ts';

/**
 * A burst of 10,000 orders from 64 clients at once, for 200 users: intake's group commit, the
 * relay, both orchestrators and the notifier at full load on a small machine. Nothing is injected
 * but the load itself; everything must still end and drain.
 */
it('load: a burst of 10,000 orders from 64 clients', async () => {
  await runScenario({ group: 'load', scenario: 'burst of 10,000 orders', users: 200 }, async (s) => {
    await s.placeOrders({ orders: 10_000, clients: 64 }).done;
    s.markFaultEnd();
    await s.drain(300_000);
    expectClean(
      await s.finish({
        faults: '10,000 orders from 64 clients at once',
        faultsInjected: 0,
        notes: 'recovery: from the last order accepted until every order ended and everything drained',
      }),
    );
  });
}, 900_000);
