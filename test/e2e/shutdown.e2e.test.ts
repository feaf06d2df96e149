import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { serveSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startProcess } from '../helpers/cluster.ts';
import { outboxDrained, startService } from '../helpers/server.ts';
import type { ServiceProcess } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

/** Where a run keeps its data, and how it is cleaned up. */
interface Setup {
  readonly env: Record<string, string>;
  cleanup(): Promise<void>;
}

async function embedded(): Promise<Setup> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mos-shutdown-'));
  return {
    env: { DATA_DIR: dataDir, DATABASE_URL: '', AMQP_URL: '' },
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
}

async function brokered(): Promise<Setup> {
  const scratch = await scratchPostgres({ max: 1 });
  const prefix = `shutdown-${randomUUID().slice(0, 8)}.`;
  return {
    env: {
      DATABASE_URL: scratch.url,
      AMQP_URL: AMQP_URL ?? '',
      AMQP_PREFIX: prefix,
      DATABASE_POOL_SIZE: '6',
    },
    async cleanup() {
      await scratch.drop();
      const connection = await connect(AMQP_URL ?? '');
      await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
      await connection.close();
    },
  };
}

const order = (user: string) =>
  JSON.stringify({
    user_id: user,
    from_amount: '100',
    from_currency: 'USDT',
    to_currency: 'BTC',
    order_type: 'market',
  });

/** One order sent once with its Idempotency-Key: the answer, or undefined when nobody answered. */
async function post(url: string, user: string, key: string): Promise<Response | undefined> {
  return fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: order(user),
  }).catch(() => undefined);
}

async function orderStatus(url: string, id: string): Promise<string | undefined> {
  const res = await fetch(`${url}/orders/${id}`);
  if (!res.ok) return void (await res.body?.cancel());
  return ((await res.json()) as { status: string }).status;
}

let market: ServedSimulatedMarket | undefined;
const running: ServiceProcess[] = [];
afterEach(async () => {
  for (const service of running.splice(0)) await service.kill();
  await market?.server.close();
  market = undefined;
});

describe.each([
  ['embedded database, in-process bus', embedded, true],
  ['PostgreSQL and RabbitMQ', brokered, Boolean(DATABASE_URL && AMQP_URL)],
] as const)('when a service with sagas in flight gets SIGTERM (%s)', (_, setUp, runs) => {
  it.runIf(runs)(
    'answers 503 to new requests, exits 0, and after a restart every accepted order ends exactly once',
    async () => {
      // A venue that takes its time, so that sagas are in flight when the signal comes.
      market = await serveSimulatedMarket({ venue: { latency: { minMs: 300, maxMs: 600 } } });
      const setup = await setUp();
      const env = {
        ...setup.env,
        PRICE_SERVICE_URL: market.url,
        TRADE_WORKER_URL: market.url,
        SWEEP_STALE_MS: '1000',
        SWEEP_INTERVAL_MS: '200',
        SHUTDOWN_TIMEOUT_MS: '30000',
      };
      const user = `user-${randomUUID()}`;
      const keys = Array.from({ length: 40 }, () => randomUUID());
      const accepted = new Map<string, string>(); // key → order id
      try {
        const first = await startService(NODE, env);
        running.push(first);
        // Half the orders, then the signal while their sagas wait on the venue.
        await Promise.all(
          keys.slice(0, 20).map(async (key) => {
            const res = await post(first.url, user, key);
            expect(res?.status).toBe(202);
            accepted.set(key, ((await res?.json()) as { order_id: string }).order_id);
          }),
        );
        await until(() => market?.market.calls().executeSwap !== 0, 'a swap to be under way');
        const exited = first.stop();

        // Intake is closed at once: /health says so, and a new order gets a problem with Retry-After.
        const health = await until(async () => {
          const res = await fetch(`${first.url}/health`).catch(() => undefined);
          if (res?.status !== 503) return void (await res?.body?.cancel());
          return res;
        }, '/health to say shutting down');
        expect(await health.json()).toEqual({ status: 'shutting_down' });
        const refused = await post(first.url, user, keys[20] ?? '');
        expect(refused?.status).toBe(503);
        expect(refused?.headers.get('content-type')).toBe('application/problem+json');
        expect(refused?.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(((await refused?.json()) as { title: string }).title).toBe('Shutting down');
        expect(await exited).toBe(0);
        expect(first.output()).toContain('"msg":"stopped"');

        // After a restart the clients send the rest (and the refused one) again.
        const second = await startService(NODE, env);
        running.push(second);
        for (const key of keys.slice(20)) {
          const res = await post(second.url, user, key);
          expect(res?.status).toBe(202);
          accepted.set(key, ((await res?.json()) as { order_id: string }).order_id);
        }
        const ids = [...accepted.values()];
        expect(new Set(ids).size).toBe(keys.length);
        for (const id of ids) {
          await until(async () => {
            const status = await orderStatus(second.url, id);
            return status === 'completed' || status === 'failed';
          }, `order ${id} to end`);
        }
        // The venue's ledger: one swap per completed order, none for a failed one, none twice.
        const ledger = market.market.venue.ledger();
        const swaps = new Map<string, number>();
        for (const entry of ledger)
          swaps.set(entry.idempotency_key, (swaps.get(entry.idempotency_key) ?? 0) + 1);
        for (const id of ids) {
          const status = await orderStatus(second.url, id);
          expect(swaps.get(idempotencyKeyFor(id)) ?? 0, `swaps of ${id} (${status})`).toBe(
            status === 'completed' ? 1 : 0,
          );
        }
        await outboxDrained(second.url);
        expect(await second.stop()).toBe(0);

        // Asynchronously: `check` asks the venue, served by this very process.
        const check = startProcess('check', ['check'], env);
        expect(await check.exited, check.output()).toBe(0);
        expect(check.output()).toContain('zero violations');
      } finally {
        await setup.cleanup();
      }
    },
    120_000,
  );
});

describe('when a stop is stuck on a venue call that does not answer', () => {
  /** A service whose only order's swap is at the venue, which answers in a minute. */
  async function stuck(shutdownTimeoutMs: number) {
    market = await serveSimulatedMarket({ venue: { latency: { minMs: 60_000 } } });
    const setup = await embedded();
    const service = await startService(NODE, {
      ...setup.env,
      PRICE_SERVICE_URL: market.url,
      TRADE_WORKER_URL: market.url,
      CALL_TIMEOUT_MS: '120000',
      SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
    });
    running.push(service);
    const res = await post(service.url, `user-${randomUUID()}`, randomUUID());
    expect(res?.status).toBe(202);
    await until(() => market?.market.calls().executeSwap !== 0, 'the swap to reach the venue');
    return { service, setup };
  }

  it('exits, non-zero and saying why, once SHUTDOWN_TIMEOUT_MS has passed', async () => {
    const { service, setup } = await stuck(1_500);
    try {
      const started = Date.now();
      const code = await service.stop();
      const took = Date.now() - started;
      expect(code).toBe(1);
      expect(took).toBeGreaterThanOrEqual(1_400);
      expect(took).toBeLessThan(10_000);
      expect(service.output()).toContain('shutdown did not finish within SHUTDOWN_TIMEOUT_MS');
    } finally {
      await setup.cleanup();
    }
  }, 60_000);

  it('exits at once on a second signal', async () => {
    const { service, setup } = await stuck(60_000);
    try {
      const exited = service.stop();
      await until(() => service.output().includes('shutting down'), 'the stop to begin');
      const started = Date.now();
      process.kill(service.pid, 'SIGTERM');
      expect(await exited).toBe(1);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(service.output()).toContain('second signal: exiting now');
    } finally {
      await setup.cleanup();
    }
  }, 60_000);
});
