import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ordersEnded, submitRetrying } from '../helpers/clients.ts';
import { clusterOrder, drained, startCluster } from '../helpers/cluster.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import { until } from '../helpers/wait.ts';

const OUTAGE_MS = 5_000;

/** The log lines a process writes from now on (pino: one JSON object a line). */
function logLines(child: ChildProcess): { readonly lines: string[] } {
  const seen = { lines: [] as string[] };
  let partial = '';
  const keep = (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    seen.lines.push(...parts);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return seen;
}

/** How many lines carry each message (`msg`), most frequent first: what a failure report shows. */
function byMessage(lines: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    counts.set(msg, (counts.get(msg) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([msg, n]) => `${n} × ${msg}`)
    .join('\n');
}

// Real processes against the real PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL. The service
// reaches both through TCP proxies: the database's is cut, the broker's counts the connections.
describe.runIf(DATABASE_URL && AMQP_URL)('the service on RabbitMQ while its database is unreachable', () => {
  it('opens no new broker connection, logs a handful of lines, and carries every order once it is back', async () => {
    const databaseTarget = new URL(DATABASE_URL ?? '');
    const brokerTarget = new URL(AMQP_URL ?? '');
    const database = await startTcpProxy({
      host: databaseTarget.hostname,
      port: Number(databaseTarget.port || 5432),
    });
    const broker = await startTcpProxy({
      host: brokerTarget.hostname,
      port: Number(brokerTarget.port || 5672),
    });
    const cluster = await startCluster({
      databaseUrl: DATABASE_URL ?? '',
      amqpUrl: AMQP_URL ?? '',
      databaseHost: `127.0.0.1:${database.port}`,
      amqpHost: `127.0.0.1:${broker.port}`,
      processes: [['api', 'relay', 'saga', 'notifier', 'sweeper']],
      // What an operator's log shows by default.
      env: { LOG_LEVEL: 'info' },
    });
    try {
      const service = cluster.services[0];
      if (!service) throw new Error('no service process');
      const log = logLines(service.child);
      const user = randomUUID();
      // The database goes as the 16th order is sent, so the sagas of the first ones are under way
      // and their messages meet the outage too; the clients stop there.
      let cut: { readonly at: number; readonly connections: number; readonly lines: number } | undefined;
      const before = submitRetrying(cluster.apiUrl, {
        count: 40,
        clients: 4,
        order: (i) => {
          if (i === 15) {
            cut = { at: Date.now(), connections: broker.connections, lines: log.lines.length };
            database.cut('reset');
            before.stop();
          }
          return clusterOrder(i, user);
        },
      });
      await before.done;
      if (!cut) throw new Error('the clients stopped before the cut');
      await sleep(cut.at + OUTAGE_MS - Date.now()); // the outage itself is what is under test
      const opened = broker.connections - cut.connections;
      const logged = log.lines.slice(cut.lines);
      database.restore();
      // Relay, orchestrator and notifier keep the connections they had: a database error is no
      // reason to reconnect to the broker (before the fix the relay reconnected at every batch).
      expect(opened, byMessage(logged)).toBe(0);
      // A few lines a second at most, not hundreds (the report names what was logged). The
      // requests in flight at the cut are answered 503, a line each.
      expect(logged.length, byMessage(logged)).toBeLessThanOrEqual(30);

      // The orders sent before the cut again (their keys answer with the same orders), and the rest.
      const after = submitRetrying(cluster.apiUrl, {
        count: 40,
        clients: 4,
        order: (i) => clusterOrder(i, user),
      });
      try {
        await until(() => after.ids.size === 40, 'the orders after the outage to be accepted', 30_000);
      } finally {
        after.stop();
      }
      await ordersEnded(cluster.db, after.ids);
      await drained(cluster);
      expect(await service.stop()).toBe(0);
      const { code, report } = await cluster.check();
      expect(report).toContain('zero violations');
      expect(code).toBe(0);
    } finally {
      await cluster.close();
      await database.close();
      await broker.close();
    }
  }, 180_000);
});
