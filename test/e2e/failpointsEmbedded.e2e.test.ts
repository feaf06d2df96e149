import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterOrder } from '../helpers/cluster.ts';
import { outboxDrained, runCheckCommand, startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts', 'start'];
// `deno run` itself rather than `deno task start`, whose task runner would outlive the kill.
const DENO = [
  'node_modules/.bin/deno',
  'run',
  '--allow-net',
  '--allow-read',
  '--allow-write',
  '--allow-env',
  '--allow-sys',
  'src/cli.ts',
  'start',
];

/*
 * The embedded default's in-process delivery has the relay's failpoint where its rows, handled by
 * every consumer, are not yet marked. The service dies there, on Node and on Deno; started again,
 * it delivers those rows again, the consumers find them done, and the order ends once. It is
 * started again on Node: Deno without --allow-run cannot tell that the dead holder of the data
 * directory is gone (src/infra/db/dataDirLock.ts), and would wait 15 s for its lock to go stale.
 */
describe.each([
  ['Node', NODE],
  ['Deno', DENO],
])('the embedded service on %s killed at relay.after-confirm', (_, command) => {
  it('dies with a delivered row unmarked; started again, it finishes the order once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-failpoints-'));
    const env = { DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' };
    const key = { 'idempotency-key': randomUUID() };
    const post = (url: string) =>
      fetch(`${url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...key },
        body: JSON.stringify(clusterOrder(0, randomUUID())),
      });
    try {
      const first = await startService(command, { ...env, FAILPOINTS: 'relay.after-confirm' });
      // The answer races the saga, which runs at once in the same process: it may never come.
      await post(first.url).catch(() => undefined);
      await until(
        () => first.output().includes('failpoint relay.after-confirm: crash (hit 1)'),
        'the failpoint to fire',
      );
      // Killed by a signal: no exit code.
      expect(await first.stop()).toBeNull();

      const second = await startService(NODE, env);
      try {
        const retry = await post(second.url);
        expect(retry.status).toBe(202);
        const { order_id } = (await retry.json()) as { order_id: string };
        const history = await until(async () => {
          const { events } = (await (await fetch(`${second.url}/orders/${order_id}/events`)).json()) as {
            events: { event_type: string; version: number }[];
          };
          return events.some((e) => e.event_type === 'OrderCompleted') && events;
        }, 'the order to complete');
        expect(history.map((e) => e.event_type)).toEqual([
          'OrderAccepted',
          'PriceQuoted',
          'SwapExecuting',
          'SwapExecuted',
          'OrderCompleted',
        ]);
        await outboxDrained(second.url);
      } finally {
        expect(await second.stop()).toBe(0);
      }
      const check = runCheckCommand(env);
      expect(check.stdout).toContain('zero violations');
      expect(check.status).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
