import { it } from 'vitest';
import { expectClean, runScenario, runWithFaultMidRun } from './harness.ts';
import { ensureRabbitUp, restartRabbit } from './servers.ts';

/**
 * RabbitMQ restarts in the middle of 200 orders (the shared broker: see servers.ts for how and
 * why). Publishes in flight lose their confirms, unacked deliveries come again, every process
 * reconnects; the outbox keeps what was not confirmed.
 */
it('broker: RabbitMQ restarted mid-run', async () => {
  try {
    await runScenario({ group: 'broker', scenario: 'RabbitMQ restarted mid-run' }, async (s) => {
      await runWithFaultMidRun(s, { at: 60, fault: () => restartRabbit(3_000) });
      expectClean(
        await s.finish({
          faults: '1 restart: stop_app, 3 s down, start_app (every connection closed by the broker)',
          faultsInjected: 1,
        }),
      );
    });
  } finally {
    await ensureRabbitUp();
  }
});
