import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyRing, parseApiKeyList } from '../../src/app/apiKeys.ts';
import type { KeyRing } from '../../src/app/apiKeys.ts';
import { PoisonMessageError } from '../../src/app/messages.ts';
import type { Consumer } from '../../src/app/messages.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createSagaAdmin } from '../../src/app/sagaAdmin.ts';
import type { SagaRunnerDeps } from '../../src/app/sagaRunner.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import { createApiKeyStore } from '../../src/infra/apiKeys.ts';
import { createInProcessDelivery } from '../../src/infra/bus/inProcessDelivery.ts';
import { createDeadLetters } from '../../src/infra/deadLetters.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createInbox } from '../../src/infra/inbox.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSagaRows } from '../../src/infra/sagaAdmin.ts';
import { testApp } from '../helpers/app.ts';
import { aMessage } from '../helpers/messages.ts';
import { assertSagaGuarantees, FAST_SETTINGS, sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';
import { eventually } from '../helpers/wait.ts';

/*
 * The admin API (issue 13 item 5, the admin HTTP contract) over the real parts: the event store,
 * read models and open_sagas on `open()`'s database, the saga runner on the simulated market.
 */

export interface AdminDatabase {
  readonly db: Database;
  close(): Promise<void>;
}

interface Problem {
  type: string;
  status: number;
  detail: string;
  errors?: { field: string; message: string }[];
}

interface Summary {
  order_id: string;
  user_id: string;
  status: string;
  state: string;
  pending_step: string | null;
  machine_version: number;
  age_ms: number;
  stuck: boolean;
  failure_reason: string | null;
  updated_at: string;
}

interface Page {
  sagas: Summary[];
  next_cursor: string | null;
}

type Headers = Record<string, string>;
const bearer = (key: string): Headers => ({ authorization: `Bearer ${key}` });

const post = (body?: unknown, headers: Headers = {}) => ({
  method: 'POST',
  ...(body === undefined
    ? { headers }
    : {
        body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...headers },
      }),
});

class Crash extends Error {}

async function expectProblem(res: Response, status: number, code: string): Promise<Problem> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const problem = (await res.json()) as Problem;
  expect(problem.type).toBe(`urn:market-order-saga:problem:${code}`);
  return problem;
}

export function adminContract(database: string, open: () => Promise<AdminDatabase>): void {
  describe(`the admin API on ${database}`, () => {
    let handle: AdminDatabase;
    let db: Database;
    let world: SagaWorld;
    const rings: KeyRing[] = [];

    /** The admin app: its runner is another worker on the world's market; `stuckAfterMs` 0 = every open saga is stuck. */
    function adminApp(
      options: { stuckAfterMs?: number; auth?: KeyRing; runner?: Partial<SagaRunnerDeps> } = {},
    ): Hono {
      const store = createEventStore(db);
      return testApp(db, {
        ...(options.auth ? { auth: options.auth } : {}),
        admin: {
          sagas: createSagaAdmin({
            rows: createSagaRows(db),
            store,
            runner: world.newRunner(options.runner),
            deadlineMs: FAST_SETTINGS.deadlineMs,
            stuckAfterMs: options.stuckAfterMs ?? 3_600_000,
          }),
          deadLetters: createDeadLetters(db),
        },
      });
    }

    beforeAll(async () => {
      handle = await open();
      db = handle.db;
      world = sagaWorld(db);
    });
    afterAll(async () => {
      for (const ring of rings) await ring.stop();
      await handle?.close();
    });

    /** An order whose saga stopped right after SwapExecuting was stored: the swap never sent. */
    async function stoppedAfterSwapExecuting(user?: string): Promise<string> {
      const orderId = await world.place(user ? { user_id: user } : {});
      const worker = world.newRunner({
        afterAppend: (_, step) => {
          if (step === 'sendingSwap') throw new Crash('killed after SwapExecuting');
        },
      });
      await expect(worker.run(orderId)).rejects.toThrow(Crash);
      return orderId;
    }

    /** An order whose swap the venue executed, the worker dying before SwapExecuted was stored. */
    async function executedButUnrecorded(): Promise<string> {
      const orderId = await world.place();
      const worker = world.newRunner({
        beforeAppend: (_, step) => {
          if (step === 'awaitingOutcome') throw new Crash('killed before SwapExecuted');
        },
      });
      await expect(worker.run(orderId)).rejects.toThrow(Crash);
      expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
      return orderId;
    }

    const eventTypes = async (orderId: string) => streams(await world.events(orderId));

    const cancel = async (orderId: string, body: unknown = { reason: 'customer called' }) =>
      adminApp().request(`/admin/sagas/${orderId}/cancel`, post(body));

    describe('access', () => {
      const adminSecret = `admin-${randomUUID()}`;
      const userSecret = `user-${randomUUID()}`;
      const user = `user-${randomUUID()}`;
      let app: Hono;

      /** Each route of the contract, called for a fresh target; `ok` is its admin answer. */
      const routes: readonly {
        name: string;
        send: (headers: Headers) => Response | Promise<Response>;
        ok: number;
      }[] = [
        { name: 'GET /admin/sagas', send: (h) => app.request('/admin/sagas', { headers: h }), ok: 200 },
        {
          name: 'GET /admin/sagas/:orderId',
          send: async (h) => app.request(`/admin/sagas/${await world.place()}`, { headers: h }),
          ok: 200,
        },
        {
          name: 'POST /admin/sagas/:orderId/retry',
          send: async (h) => app.request(`/admin/sagas/${await world.place()}/retry`, post(undefined, h)),
          ok: 200,
        },
        {
          name: 'POST /admin/sagas/:orderId/cancel',
          send: async (h) =>
            app.request(`/admin/sagas/${await world.place()}/cancel`, post({ reason: 'matrix' }, h)),
          ok: 200,
        },
        { name: 'GET /admin/dlq', send: (h) => app.request('/admin/dlq', { headers: h }), ok: 200 },
        {
          name: 'POST /admin/dlq/replay',
          send: (h) => app.request('/admin/dlq/replay', post({ ids: ['999999999'] }, h)),
          ok: 200,
        },
        {
          name: 'POST /admin/dlq/drop',
          send: (h) => app.request('/admin/dlq/drop', post({ ids: ['999999999'] }, h)),
          ok: 200,
        },
      ];

      beforeAll(async () => {
        const ring = createKeyRing({
          store: createApiKeyStore(db),
          configured: parseApiKeyList(`${user}:${userSecret},*:${adminSecret}`, () => undefined),
          logger: silentLogger,
          refreshMs: 3_600_000,
        });
        await ring.start();
        rings.push(ring);
        app = adminApp({ auth: ring });
      });

      it.each([
        ['no key', {}, 401, 'unauthorized'],
        ['an unknown key', bearer('not-a-key'), 401, 'unauthorized'],
        ["a user's key", bearer(userSecret), 403, 'forbidden'],
      ] as const)('refuses %s on every admin route, changing nothing', async (_, headers, status, code) => {
        for (const route of routes) {
          const before = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
          const res = await route.send(headers);
          await expectProblem(res, status, code);
          // The target order was placed by the test: only its OrderAccepted is there.
          const after = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
          expect(after[0]?.n, route.name).toBe(
            (before[0]?.n ?? 0) + (route.name.includes(':orderId') ? 1 : 0),
          );
        }
      });

      it('answers an admin key on every admin route', async () => {
        for (const route of routes)
          expect((await route.send(bearer(adminSecret))).status, route.name).toBe(route.ok);
      });

      it('is open, like the rest of the API, when no key is configured', async () => {
        const openApp = adminApp();
        expect((await openApp.request('/admin/sagas')).status).toBe(200);
        expect((await openApp.request('/admin/dlq')).status).toBe(200);
      });
    });

    describe('listing sagas', () => {
      const user = `list-${randomUUID()}`;
      let completed: string;
      let failed: string;
      let open: string[];

      beforeAll(async () => {
        completed = await world.place({ user_id: user });
        expect((await world.runner.run(completed)).status).toBe('completed');
        failed = await world.place({ user_id: user });
        world.market.priceService.failNext('unavailable', { times: 10 });
        expect((await world.runner.run(failed)).status).toBe('failed');
        world.market.priceService.restore();
        // Placed, never run: their OrderAccepted was never delivered (as if the message was lost).
        open = [];
        for (let i = 0; i < 3; i++) open.push(await world.place({ user_id: user }));
      });

      const list = async (app: Hono, query: string) => {
        const res = await app.request(`/admin/sagas?${query}`);
        expect(res.status).toBe(200);
        return (await res.json()) as Page;
      };

      it('lists open sagas with no progress for STUCK_AFTER_MS as stuck, with state and pending step', async () => {
        const page = await list(adminApp({ stuckAfterMs: 0 }), `stuck=true&user=${user}`);
        expect(page.sagas.map((s) => s.order_id).sort()).toEqual([...open].sort());
        for (const saga of page.sagas) {
          expect(saga).toMatchObject({
            user_id: user,
            status: 'pending',
            state: 'quotingPrice',
            pending_step: 'quotingPrice',
            machine_version: 1,
            stuck: true,
            failure_reason: null,
          });
          expect(saga.age_ms).toBeGreaterThanOrEqual(0);
        }
        expect(page.next_cursor).toBeNull();
      });

      it('lists the others with stuck=false, and none as stuck before the threshold', async () => {
        const others = await list(adminApp({ stuckAfterMs: 0 }), `stuck=false&user=${user}`);
        expect(others.sagas.map((s) => s.order_id).sort()).toEqual([completed, failed].sort());
        const patient = adminApp({ stuckAfterMs: 3_600_000 });
        expect((await list(patient, `stuck=true&user=${user}`)).sagas).toEqual([]);
        const all = await list(patient, `user=${user}`);
        expect(all.sagas).toHaveLength(5);
        expect(all.sagas.every((s) => !s.stuck)).toBe(true);
      });

      it('filters by status, showing the failure reason and the final state', async () => {
        const app = adminApp();
        const failedPage = await list(app, `status=failed&user=${user}`);
        expect(failedPage.sagas).toEqual([
          expect.objectContaining({
            order_id: failed,
            state: 'failed',
            pending_step: null,
            failure_reason: 'price_unavailable',
          }),
        ]);
        const completedPage = await list(app, `status=completed&user=${user}`);
        expect(completedPage.sagas.map((s) => [s.order_id, s.state])).toEqual([[completed, 'completed']]);
      });

      it('pages most recently updated first, each saga once', async () => {
        const app = adminApp();
        const seen: Summary[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page: Page = await list(app, `user=${user}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
          expect(page.sagas.length).toBeLessThanOrEqual(2);
          seen.push(...page.sagas);
          cursor = page.next_cursor;
          pages += 1;
        } while (cursor);
        expect(pages).toBe(3);
        expect(new Set(seen.map((s) => s.order_id)).size).toBe(5);
        const times = seen.map((s) => s.updated_at);
        expect(times).toEqual([...times].sort().reverse());
      });

      it('refuses bad parameters with 400, naming each', async () => {
        const res = await adminApp().request(
          '/admin/sagas?stuck=maybe&status=lost&limit=0&cursor=nope&colour=red',
        );
        const problem = await expectProblem(res, 400, 'invalid_query');
        expect(problem.errors?.map((e) => e.field).sort()).toEqual(
          ['colour', 'cursor', 'limit', 'status', 'stuck'].sort(),
        );
        await expectProblem(await adminApp().request('/admin/sagas?limit=1&limit=2'), 400, 'invalid_query');
      });
    });

    describe('showing a saga', () => {
      it('shows an open saga with its deadline, history and pending step', async () => {
        const orderId = await stoppedAfterSwapExecuting();
        const res = await adminApp().request(`/admin/sagas/${orderId}`);
        expect(res.status).toBe(200);
        const saga = (await res.json()) as Summary & {
          deadline: string | null;
          history: { stream: string; version: number; event_type: string }[];
        };
        expect(saga).toMatchObject({
          order_id: orderId,
          status: 'processing',
          state: 'awaitingOutcome',
          pending_step: 'awaitingOutcome',
          machine_version: 1,
        });
        const [accepted] = await world.events(orderId);
        const acceptedAt = (accepted?.event_data as { accepted_at: string }).accepted_at;
        expect(saga.deadline).toBe(new Date(Date.parse(acceptedAt) + FAST_SETTINGS.deadlineMs).toISOString());
        expect(saga.history.map((h) => [h.stream, h.version, h.event_type])).toEqual([
          ['order', 1, 'OrderAccepted'],
          ['order', 2, 'PriceQuoted'],
          ['position', 1, 'PositionCreated'],
          ['order', 3, 'SwapExecuting'],
        ]);
      });

      it('answers 404 for an unknown order and for an id that is not one', async () => {
        await expectProblem(await adminApp().request(`/admin/sagas/${randomUUID()}`), 404, 'not_found');
        await expectProblem(await adminApp().request('/admin/sagas/nope'), 404, 'not_found');
      });
    });

    describe('retrying a saga', () => {
      it('runs a stuck saga’s pending step now, to its end', async () => {
        const orderId = await world.place();
        const app = adminApp({ stuckAfterMs: 0 });
        const before = (await (await app.request(`/admin/sagas/${orderId}`)).json()) as Summary;
        expect(before.stuck).toBe(true);
        const res = await app.request(`/admin/sagas/${orderId}/retry`, post());
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ order_id: orderId, outcome: 'completed' });
        const after = (await (await app.request(`/admin/sagas/${orderId}`)).json()) as Summary;
        expect(after).toMatchObject({ status: 'completed', state: 'completed', stuck: false });
        assertSagaGuarantees(orderId, await world.events(orderId), world.market);
      });

      it('answers suspended while the venue cannot say what became of the swap, then completes it', async () => {
        const orderId = await stoppedAfterSwapExecuting();
        world.market.venue.startOutage();
        try {
          const res = await adminApp().request(`/admin/sagas/${orderId}/retry`, post());
          expect(res.status).toBe(200);
          const body = (await res.json()) as { outcome: string; detail: string };
          expect(body.outcome).toBe('suspended');
          expect(body.detail).toMatch(/outage/);
          expect((await eventTypes(orderId)).order.at(-1)).toBe('SwapExecuting');
        } finally {
          world.market.venue.restore();
        }
        const res = await adminApp().request(`/admin/sagas/${orderId}/retry`, post());
        expect(await res.json()).toEqual({ order_id: orderId, outcome: 'completed' });
      });

      it('refuses a finished saga with 409 saga_finished, and an unknown one with 404', async () => {
        const orderId = await world.place();
        await world.runner.run(orderId);
        await expectProblem(
          await adminApp().request(`/admin/sagas/${orderId}/retry`, post()),
          409,
          'saga_finished',
        );
        await expectProblem(
          await adminApp().request(`/admin/sagas/${randomUUID()}/retry`, post()),
          404,
          'not_found',
        );
      });
    });

    describe('cancelling a saga', () => {
      it('compensates a saga that has not sent its swap, with reason cancelled and the text in detail', async () => {
        const orderId = await world.place();
        const res = await cancel(orderId);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { outcome: string; detail: string };
        expect(body).toMatchObject({ order_id: orderId, outcome: 'cancelled' });
        expect(body.detail).toContain('customer called');
        const events = await world.events(orderId);
        expect(streams(events).order).toEqual(['OrderAccepted', 'OrderFailed']);
        expect(events.at(-1)?.event_data).toMatchObject({
          reason: 'cancelled',
          failed_step: 'quote_price',
          detail: 'cancelled by an operator: customer called',
        });
        const view = (await (await adminApp().request(`/orders/${orderId}`)).json()) as Record<
          string,
          unknown
        >;
        expect(view).toMatchObject({ status: 'failed', failure_reason: 'cancelled' });
        expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(0);
      });

      it('voids a swap of unknown outcome first, and compensates once the venue voided it', async () => {
        const orderId = await stoppedAfterSwapExecuting();
        const res = await cancel(orderId);
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ order_id: orderId, outcome: 'cancelled' });
        expect(world.market.venue.recorded(idempotencyKeyFor(orderId))).toMatchObject({ status: 'voided' });
        const events = await world.events(orderId);
        expect(streams(events)).toEqual({
          order: ['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'OrderFailed'],
          position: ['PositionCreated', 'PositionClosed'],
        });
        expect(events.find((e) => e.event_type === 'OrderFailed')?.event_data).toMatchObject({
          reason: 'cancelled',
          failed_step: 'execute_swap',
        });
        assertSagaGuarantees(orderId, events, world.market);
      });

      it('completes the order when voiding finds the swap executed', async () => {
        const orderId = await executedButUnrecorded();
        const res = await cancel(orderId);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { outcome: string; detail: string };
        expect(body.outcome).toBe('completed');
        expect(body.detail).toMatch(/executed the swap/);
        const events = await world.events(orderId);
        expect(streams(events).order.at(-1)).toBe('OrderCompleted');
        assertSagaGuarantees(orderId, events, world.market);
      });

      it('refuses with 409 swap_outcome_unknown, changing nothing, while the venue cannot be reached', async () => {
        const orderId = await stoppedAfterSwapExecuting();
        const before = await world.events(orderId);
        world.market.venue.startOutage();
        try {
          const problem = await expectProblem(await cancel(orderId), 409, 'swap_outcome_unknown');
          expect(problem.detail).toMatch(/nothing was changed/);
        } finally {
          world.market.venue.restore();
        }
        expect(await world.events(orderId)).toEqual(before);
        expect(world.market.venue.recorded(idempotencyKeyFor(orderId))).toBeUndefined();
      });

      it('refuses a finished saga with 409 saga_finished, and an unknown one with 404', async () => {
        const orderId = await world.place();
        await world.runner.run(orderId);
        const before = await world.events(orderId);
        await expectProblem(await cancel(orderId), 409, 'saga_finished');
        expect(await world.events(orderId)).toEqual(before);
        await expectProblem(await cancel(randomUUID()), 404, 'not_found');
      });

      it.each([
        ['no reason', {}],
        ['a blank reason', { reason: '   ' }],
        ['a reason over 200 characters', { reason: 'x'.repeat(201) }],
        ['a reason that is not a string', { reason: 7 }],
      ])('refuses %s with 400 naming reason, changing nothing', async (_, body) => {
        const orderId = await world.place();
        const problem = await expectProblem(await cancel(orderId, body), 400, 'invalid_body');
        expect(problem.errors?.map((e) => e.field)).toEqual(['reason']);
        expect((await eventTypes(orderId)).order).toEqual(['OrderAccepted']);
      });

      it('refuses an unknown field and a body that is not JSON', async () => {
        const orderId = await world.place();
        const problem = await expectProblem(
          await cancel(orderId, { reason: 'x', force: true }),
          400,
          'invalid_body',
        );
        expect(problem.errors?.map((e) => e.field)).toEqual(['force']);
        await expectProblem(await cancel(orderId, '{"reason":'), 400, 'malformed_json');
        expect((await eventTypes(orderId)).order).toEqual(['OrderAccepted']);
      });

      it('refuses a reason that is not UTF-8 (a lone surrogate) rather than store U+FFFD in its place', async () => {
        const orderId = await world.place();
        const bytes = new Uint8Array([
          ...new TextEncoder().encode('{"reason":"x'),
          0xed,
          0xa0,
          0x80,
          ...new TextEncoder().encode('"}'),
        ]);
        const res = await adminApp().request(`/admin/sagas/${orderId}/cancel`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: bytes,
        });
        await expectProblem(res, 400, 'malformed_json');
        expect((await eventTypes(orderId)).order).toEqual(['OrderAccepted']);
      });
    });

    describe('when a cancel races a worker driving the saga', () => {
      it('lets the worker’s executed swap win: the cancel finds it executed and the order completes once', async () => {
        const orderId = await world.place();
        let answer: { status: number; body: unknown } | undefined;
        const worker = world.newRunner({
          // The venue has executed the swap; before the worker stores it, an operator cancels.
          beforeAppend: async (_, step) => {
            if (step !== 'awaitingOutcome' || answer) return;
            const res = await cancel(orderId);
            answer = { status: res.status, body: await res.json() };
          },
        });
        const result = await worker.run(orderId);
        expect(answer?.status).toBe(200);
        expect(answer?.body).toMatchObject({ outcome: 'completed' });
        // The worker lost the race on the version, reloaded and found the order completed.
        expect(result).toEqual({ status: 'completed', orderId });
        const events = await world.events(orderId);
        expect(events.filter((e) => e.event_type === 'OrderCompleted')).toHaveLength(1);
        assertSagaGuarantees(orderId, events, world.market);
      });

      it('compensates once when the cancel lands while the worker is quoting', async () => {
        const orderId = await world.place();
        let status: number | undefined;
        const worker = world.newRunner({
          beforeAppend: async (_, step) => {
            if (step !== 'quotingPrice' || status) return;
            status = (await cancel(orderId)).status;
          },
        });
        const result = await worker.run(orderId);
        expect(status).toBe(200);
        expect(result).toEqual({ status: 'failed', orderId });
        const events = await world.events(orderId);
        expect(streams(events).order).toEqual(['OrderAccepted', 'OrderFailed']);
        expect(events.at(-1)?.event_data).toMatchObject({ reason: 'cancelled' });
        expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(0);
      });

      it('answers saga_finished when the worker finishes the saga first', async () => {
        const orderId = await world.place();
        let workerResult: unknown;
        // The cancel has decided to compensate; before it stores that, a worker completes the order.
        const app = adminApp({
          runner: {
            beforeAppend: async () => {
              workerResult ??= await world.newRunner().run(orderId);
            },
          },
        });
        const res = await app.request(`/admin/sagas/${orderId}/cancel`, post({ reason: 'too late' }));
        expect(workerResult).toMatchObject({ status: 'completed', finishedHere: true });
        await expectProblem(res, 409, 'saga_finished');
        const events = await world.events(orderId);
        expect(streams(events).order.at(-1)).toBe('OrderCompleted');
        assertSagaGuarantees(orderId, events, world.market);
      });
    });

    describe('dead letters (in-process bus)', () => {
      const app = () => adminApp();
      let broken = true;
      const consumer: Consumer = {
        name: `admin-dlq-${randomUUID().slice(0, 8)}`,
        eventTypes: ['OrderCompleted'],
        async handle(message) {
          if (broken) throw new PoisonMessageError('the notifier cannot handle it (yet)');
          await db.transaction((tx) => createInbox(tx).mark(consumer.name, message));
        },
      };
      let delivery: ReturnType<typeof createInProcessDelivery>;
      const messages = [aMessage('OrderCompleted'), aMessage('OrderCompleted')];

      interface Listed {
        messages: {
          id: string;
          queue: string;
          event_id: string;
          event_type: string;
          order_id: string | null;
          reason: string;
          deaths: number;
          dead_at: string;
        }[];
      }
      const listed = async () => (await (await app().request('/admin/dlq')).json()) as Listed;
      const handled = async (eventId: string) =>
        (
          await db.query('SELECT 1 FROM processed_events WHERE event_id = $1 AND processed_by = $2', [
            eventId,
            consumer.name,
          ])
        ).length === 1;

      beforeAll(async () => {
        // This database's own: the sagas above left their events in the outbox, none for this consumer.
        await db.query('DELETE FROM dead_letters');
        await db.query('UPDATE outbox SET published = TRUE WHERE NOT published');
        delivery = createInProcessDelivery({
          db,
          logger: silentLogger,
          consumers: [consumer],
          pollIntervalMs: 20,
        });
        for (const message of messages) {
          await db.query(
            `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
             VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)`,
            [
              message.event_id,
              message.aggregate_id,
              message.aggregate_type,
              message.event_type,
              message.version,
              JSON.stringify(message.event_data),
              JSON.stringify(message.metadata),
            ],
          );
        }
        delivery.start();
        await eventually(async () => (await listed()).messages.length === 2, 'both dead letters');
      });
      afterAll(async () => {
        await delivery?.stop();
      });

      it('lists them newest first, with queue, event, order, reason and deaths', async () => {
        const { messages: rows } = await listed();
        expect(rows.map((r) => r.event_id).sort()).toEqual(messages.map((m) => m.event_id).sort());
        for (const row of rows) {
          const message = messages.find((m) => m.event_id === row.event_id);
          expect(row).toMatchObject({
            queue: consumer.name,
            event_type: 'OrderCompleted',
            order_id: message?.aggregate_id,
            reason: 'poison',
            deaths: 1,
          });
        }
        expect(rows.map((r) => r.dead_at)).toEqual(
          rows
            .map((r) => r.dead_at)
            .sort()
            .reverse(),
        );
        const limited = (await (await app().request('/admin/dlq?limit=1')).json()) as Listed;
        expect(limited.messages).toHaveLength(1);
        await expectProblem(await app().request('/admin/dlq?limit=201'), 400, 'invalid_query');
      });

      it('replays the one asked for to its consumer, and drops the rest', async () => {
        broken = false;
        const [first, second] = (await listed()).messages;
        if (!first || !second) throw new Error('two dead letters expected');
        const replay = await app().request('/admin/dlq/replay', post({ ids: [first.id] }));
        expect(await replay.json()).toEqual({ replayed: 1 });
        delivery.wake();
        await eventually(() => handled(first.event_id), 'the replayed message handled');
        expect((await listed()).messages.map((m) => m.id)).toEqual([second.id]);

        await expectProblem(await app().request('/admin/dlq/drop', post({})), 400, 'invalid_body');
        await expectProblem(
          await app().request('/admin/dlq/drop', post({ ids: ['x'] })),
          400,
          'invalid_body',
        );
        const drop = await app().request('/admin/dlq/drop', post({ all: true }));
        expect(await drop.json()).toEqual({ dropped: 1 });
        expect((await listed()).messages).toEqual([]);
        expect(await handled(second.event_id)).toBe(false);
      });

      it('replays every dead letter when no ids are given', async () => {
        broken = true;
        const message = aMessage('OrderCompleted');
        await db.query(
          `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
           VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)`,
          [
            message.event_id,
            message.aggregate_id,
            message.aggregate_type,
            message.event_type,
            message.version,
            JSON.stringify(message.event_data),
            JSON.stringify(message.metadata),
          ],
        );
        delivery.wake();
        await eventually(async () => (await listed()).messages.length === 1, 'the dead letter');
        broken = false;
        const replay = await app().request('/admin/dlq/replay', post());
        expect(await replay.json()).toEqual({ replayed: 1 });
        delivery.wake();
        await eventually(() => handled(message.event_id), 'the replayed message handled');
        expect((await listed()).messages).toEqual([]);
      });
    });
  });
}
