import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createOrderService } from '../../src/app/orders.ts';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { migrate } from '../../src/infra/migrations.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { outboxDrained, runCheckCommand, startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const originalOrder = {
  user_id: 'user-123',
  from_amount: 1000,
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
};

async function placeOrder(url: string): Promise<string> {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(originalOrder),
  });
  expect(res.status).toBe(202);
  const { order_id } = (await res.json()) as { order_id: string };
  return order_id;
}

async function history(url: string, orderId: string) {
  const res = await fetch(`${url}/orders/${orderId}/events`);
  expect(res.status).toBe(200);
  const { events } = (await res.json()) as { events: Array<{ event_type: string; version: number }> };
  return events.map((e) => [e.event_type, e.version]);
}

/** The OpenAPI document and the /docs page with every file it loads, as the running service serves them. */
async function expectDocs(url: string) {
  const document = await fetch(`${url}/openapi.json`);
  expect(document.status).toBe(200);
  expect(((await document.json()) as { openapi: string }).openapi).toBe('3.1.0');
  const html = await (await fetch(`${url}/docs`)).text();
  const assets = [...html.matchAll(/(?:src|href)="(\/docs\/[^"]+)"/g)].map((m) => m[1]);
  expect(assets.length).toBeGreaterThanOrEqual(4);
  for (const asset of assets) {
    const res = await fetch(`${url}${asset}`);
    expect(res.status, asset).toBe(200);
    await res.arrayBuffer();
  }
}

// The processes a user starts: `npm start` and `deno task start`, without npm/npx in between so
// that SIGTERM reaches the service itself.
/** Polls the order's saga view until it finishes: the saga runs in the service's own process. */
async function finishedSaga(url: string, orderId: string) {
  type View = {
    status: string;
    state: string;
    position_id: string;
    events: Array<{ event_type: string; stream: string; version: number }>;
  };
  for (;;) {
    const view = (await (await fetch(`${url}/orders/${orderId}/saga`)).json()) as View;
    if (view.status === 'finished') return view;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The order stream of the original order once its saga completed. */
const COMPLETED_HISTORY = [
  ['OrderAccepted', 1],
  ['PriceQuoted', 2],
  ['SwapExecuting', 3],
  ['SwapExecuted', 4],
  ['OrderCompleted', 5],
];

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];
const DENO = ['node_modules/.bin/deno', 'task', 'start'];

describe.each([
  ['Node', NODE],
  ['Deno', DENO],
])('the service on %s with the embedded database', (_, command) => {
  it('takes the original order, records OrderAccepted v1, runs its saga, and still has it all after a restart', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-e2e-'));
    try {
      const first = await startService(command, { DATA_DIR: dataDir, DATABASE_URL: '' });
      await expectDocs(first.url);
      const orderId = await placeOrder(first.url);
      expect((await history(first.url, orderId))[0]).toEqual(['OrderAccepted', 1]);
      await finishedSaga(first.url, orderId);
      const before = await history(first.url, orderId);
      expect(before).toEqual(COMPLETED_HISTORY);
      expect(await first.stop()).toBe(0);

      const second = await startService(command, { DATA_DIR: dataDir, DATABASE_URL: '' });
      expect(await history(second.url, orderId)).toEqual(before);
      expect(await second.stop()).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the saga in a running service (embedded database, simulated market)', () => {
  it('completes the original order, and fails one above the liquidity with its position closed', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-e2e-'));
    const service = await startService(NODE, { DATA_DIR: dataDir, DATABASE_URL: '' });
    try {
      const orderId = await placeOrder(service.url);
      const done = await finishedSaga(service.url, orderId);
      expect(await history(service.url, orderId)).toEqual(COMPLETED_HISTORY);
      const position = (await (
        await fetch(`${service.url}/positions/${done.position_id}/events`)
      ).json()) as {
        events: Array<{ event_type: string; version: number }>;
      };
      expect(position.events.map((e) => [e.event_type, e.version])).toEqual([
        ['PositionCreated', 1],
        ['PositionUpdated', 2],
      ]);

      const big = await fetch(`${service.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...originalOrder, from_amount: '5000000' }),
      });
      const { order_id: bigId } = (await big.json()) as { order_id: string };
      const failed = await finishedSaga(service.url, bigId);
      expect(failed.state).toBe('failed');
      expect(failed.events.map((e) => `${e.stream}:${e.event_type}`)).toEqual([
        'order:OrderAccepted',
        'order:PriceQuoted',
        'position:PositionCreated',
        'order:SwapExecuting',
        'position:PositionClosed',
        'order:OrderFailed',
      ]);
      const events = (await (await fetch(`${service.url}/orders/${bigId}/events`)).json()) as {
        events: Array<{ event_type: string; data: { reason?: string } }>;
      };
      expect(events.events.at(-1)?.data.reason).toBe('insufficient_liquidity');
    } finally {
      expect(await service.stop()).toBe(0);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the sweeper in a running service', () => {
  it('finishes an order whose message was lost before the service started', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-e2e-'));
    try {
      // Accepted, then its OrderAccepted lost on the way to the orchestrator.
      const db = await pgliteDatabase(dataDir);
      await migrate(db);
      const orders = createOrderService({
        store: createEventStore(db),
        now: () => new Date(),
        newId: randomUUID,
      });
      const { order_id: orderId } = await orders.accept(
        { ...originalOrder, from_amount: '1000', order_type: 'market' },
        { causationId: null },
      );
      await db.query('UPDATE outbox SET published = true WHERE aggregate_id = $1', [orderId]);
      await db.close();

      const service = await startService(NODE, {
        DATA_DIR: dataDir,
        DATABASE_URL: '',
        SWEEP_STALE_MS: '1',
        SWEEP_INTERVAL_MS: '50',
      });
      try {
        await finishedSaga(service.url, orderId);
        expect(await history(service.url, orderId)).toEqual(COMPLETED_HISTORY);
      } finally {
        expect(await service.stop()).toBe(0);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the embedded service killed with SIGKILL in the middle of a flood of orders', () => {
  it('restarts within seconds on the same data directory, and every order its clients retry ends exactly once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-e2e-'));
    const env = { DATA_DIR: dataDir, DATABASE_URL: '', SWEEP_STALE_MS: '1000', SWEEP_INTERVAL_MS: '200' };
    const user = `user-${randomUUID()}`;
    const keys = Array.from({ length: 60 }, (_, i) => `order-${i}`);
    // Clients send every order with an Idempotency-Key, so that after a failure they can retry it.
    const post = (url: string, key: string) =>
      fetch(`${url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ ...originalOrder, user_id: user }),
      });
    try {
      const first = await startService(NODE, env);
      let accepted = 0;
      let next = 0;
      const clients = Array.from({ length: 6 }, async () => {
        while (next < keys.length) {
          const res = await post(first.url, keys[next++] ?? '').catch(() => undefined);
          if (res?.status !== 202) return; // the service is gone
          accepted += 1;
        }
      });
      await until(() => accepted >= 20, '20 accepted orders');
      await first.kill();
      await Promise.all(clients);

      const second = await startService(NODE, env);
      try {
        const ids = new Set<string>();
        for (const key of keys) {
          // A key the killed process had claimed but not placed answers 409 (in flight) until its
          // lease runs out; then this retry places the order.
          const res = await until(async () => {
            const answer = await post(second.url, key);
            if (answer.status === 409) await answer.body?.cancel();
            return answer.status !== 409 && answer;
          }, `order ${key} to be accepted`);
          expect(res.status).toBe(202);
          ids.add(((await res.json()) as { order_id: string }).order_id);
        }
        expect(ids.size).toBe(keys.length);
        for (const id of ids) {
          await until(async () => {
            const order = (await (await fetch(`${second.url}/orders/${id}`)).json()) as { status: string };
            return order.status === 'completed' || order.status === 'failed';
          }, `order ${id} to end`);
        }
        await outboxDrained(second.url);
      } finally {
        expect(await second.stop()).toBe(0);
      }
      // The simulated venue died with the first process, so guarantee 2 is checked from the events.
      const check = runCheckCommand(env);
      expect(check.stdout).toContain(`${keys.length} orders`);
      expect(check.stdout).toContain('zero violations');
      expect(check.status).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('two services on one embedded data directory', () => {
  it('refuses the second, naming the directory, and leaves the first serving', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-e2e-'));
    try {
      const first = await startService(NODE, { DATA_DIR: dataDir, DATABASE_URL: '' });
      const second = await startService(NODE, { DATA_DIR: dataDir, DATABASE_URL: '' }).catch(
        (e: unknown) => e,
      );
      // Exit code 3: the database cannot be had (README "The command line").
      expect(String(second)).toMatch(/service exited with 3/);
      expect(String(second)).toContain(`The data directory ${dataDir} is in use by another process`);
      await placeOrder(first.url);
      expect(await first.stop()).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

// Needs a PostgreSQL server: DATABASE_URL.
describe.runIf(DATABASE_URL)('the service on Node with PostgreSQL', () => {
  it('takes the original order, runs its saga and serves its history from PostgreSQL', async () => {
    const service = await startService(NODE, { DATABASE_URL });
    const orderId = await placeOrder(service.url);
    await finishedSaga(service.url, orderId);
    expect(await history(service.url, orderId)).toEqual(COMPLETED_HISTORY);
    expect(await (await fetch(`${service.url}/health`)).json()).toMatchObject({
      status: 'ok',
      database: 'postgres',
    });
    expect(await service.stop()).toBe(0);
  });
});
