import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

/** The pids of a process's children, as the kernel lists them. */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(/\s+/).map(Number) : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const order = (i: number) => ({
  user_id: `workers-${i % 5}`,
  from_amount: String(10 + i),
  from_currency: 'USDT',
  to_currency: i % 2 ? 'ETH' : 'BTC',
  order_type: 'market',
});

async function place(url: string, count: number, from: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const response = await fetch(`${url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(order(from + i)),
      });
      expect(response.status).toBe(202);
      return ((await response.json()) as { order_id: string }).order_id;
    }),
  );
}

describe('WORKERS > 1 without a broker or a server database', () => {
  it('refuses to start and says what it needs', () => {
    const run = spawnSync(NODE[0] ?? process.execPath, NODE.slice(1), {
      env: {
        ...process.env,
        WORKERS: '2',
        DATABASE_URL: '',
        AMQP_URL: '',
        DATA_DIR: `/tmp/mos-${randomUUID()}`,
      },
      encoding: 'utf8',
    });
    // Exit code 2: a configuration that cannot run (README "The command line").
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('WORKERS > 1 needs DATABASE_URL and AMQP_URL');
  });

  it('names a WORKERS value it cannot use', () => {
    const run = spawnSync(NODE[0] ?? process.execPath, NODE.slice(1), {
      env: { ...process.env, WORKERS: 'many' },
      encoding: 'utf8',
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/WORKERS: must be a number from 1 to 64, or auto/);
  });
});

// Real processes on the real PostgreSQL and RabbitMQ, as `WORKERS=2 npm start` runs them.
describe.runIf(DATABASE_URL && AMQP_URL)('serve with WORKERS=2', () => {
  it('spreads the roles over two workers, replaces one killed with -9, and stops both cleanly', async () => {
    const scratch = await scratchPostgres({ max: 2 });
    const prefix = `workers-${randomUUID().slice(0, 8)}.`;
    const service = await startService(NODE, {
      DATABASE_URL: scratch.url,
      AMQP_URL: AMQP_URL ?? '',
      AMQP_PREFIX: prefix,
      WORKERS: '2',
      DATABASE_POOL_SIZE: '4',
    });
    const supervisor = service.pid;
    const ended = async (ids: readonly string[]) => {
      const [row] = await scratch.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM events
         WHERE aggregate_id = ANY($1::uuid[]) AND event_type IN ('OrderCompleted', 'OrderFailed')`,
        [ids],
      );
      return row?.n === ids.length;
    };
    try {
      expect(supervisor).toBeGreaterThan(0);
      await until(() => childrenOf(supervisor).length === 2, 'two workers');
      // Each worker serves (its own "serving" line, named by its slot).
      await until(
        () =>
          /"worker":0[^\n]*"msg":"serving"/.test(service.output()) &&
          /"worker":1[^\n]*"msg":"serving"/.test(service.output()),
        'both workers to serve',
      );
      const first = await place(service.url, 30, 0);
      await until(() => ended(first), 'the first orders to end');

      const [victim] = childrenOf(supervisor);
      process.kill(victim ?? 0, 'SIGKILL');
      await until(
        () => childrenOf(supervisor).length === 2 && !childrenOf(supervisor).includes(victim ?? 0),
        'a replacement worker',
      );
      expect(service.output()).toContain('a worker exited unexpectedly; starting another');
      const serving = (slot: number) =>
        service.output().match(new RegExp(`"worker":${slot}[^\\n]*"msg":"serving"`, 'g'))?.length ?? 0;
      await until(() => serving(0) + serving(1) === 3, 'the replacement to serve');
      const second = await place(service.url, 30, 30);
      await until(() => ended(second), 'the orders placed after the crash to end');

      const workers = childrenOf(supervisor);
      const code = await service.stop();
      expect(code).toBe(0);
      expect(workers.filter(alive)).toEqual([]);
      expect(service.output()).toContain('supervisor: stopping the workers');
      const [counts] = await scratch.db.query<{ orders: number; terminal: number; unpublished: number }>(
        `SELECT (SELECT count(*)::int FROM events WHERE event_type = 'OrderAccepted') AS orders,
                (SELECT count(*)::int FROM events WHERE event_type IN ('OrderCompleted', 'OrderFailed')) AS terminal,
                (SELECT count(*)::int FROM outbox WHERE NOT published) AS unpublished`,
      );
      expect(counts).toEqual({ orders: 60, terminal: 60, unpublished: 0 });
    } finally {
      await service.kill();
      await scratch.drop();
      const connection = await connect(AMQP_URL ?? '');
      await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
      await connection.close();
    }
  }, 120_000);
});
