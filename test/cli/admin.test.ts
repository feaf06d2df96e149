import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import type { Context } from 'hono';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serveHttp } from '../../src/infra/server.ts';
import type { RunningServer } from '../../src/infra/server.ts';
import { freePort } from '../helpers/server.ts';
import { cli, jsonOf } from './run.ts';

/*
 * `sagas` and `dlq` are clients of the service's admin API (README "The command line"). Here they
 * talk to a stub of that API, answering as the contract says, to pin down what the commands send,
 * print and exit with; the service's own routes are tested with the service.
 */

const ADMIN_KEY = `mos_0123456789abcdef_${randomUUID()}`;
const USER_KEY = `mos_fedcba9876543210_${randomUUID()}`;

const stuckId = randomUUID();
const doneId = randomUUID();
const unknownId = randomUUID();
const finishedId = randomUUID();
const unknownSwapId = randomUUID();
const failingId = randomUUID();
const executedId = randomUUID();

const stuck = {
  order_id: stuckId,
  user_id: 'user-cli',
  status: 'pending',
  state: 'awaitingOutcome',
  pending_step: 'findSwap',
  machine_version: 1,
  created_at: '2026-11-29T10:00:00.000Z',
  updated_at: '2026-11-29T10:00:01.000Z',
  age_ms: 125_000,
  stuck: true,
  failure_reason: null,
};
const done = {
  ...stuck,
  order_id: doneId,
  status: 'completed',
  state: 'completed',
  pending_step: null,
  age_ms: 4_000,
  stuck: false,
};
const history = [
  {
    stream: `order-${stuckId}`,
    version: 1,
    event_type: 'OrderAccepted',
    occurred_at: '2026-11-29T10:00:00.000Z',
    payload: { from_amount: '1000', from_currency: 'USDT', to_currency: 'BTC' },
  },
  {
    stream: `order-${stuckId}`,
    version: 2,
    event_type: 'SwapExecuting',
    occurred_at: '2026-11-29T10:00:01.000Z',
    payload: { idempotency_key: 'k'.repeat(200) },
  },
];
const deadLetter = {
  id: 'dl-1',
  queue: 'saga.order-accepted',
  event_type: 'OrderAccepted',
  event_id: randomUUID(),
  order_id: stuckId,
  reason: 'rejected 5 times',
  dead_at: '2026-11-29T10:05:00.000Z',
  deaths: 5,
};

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly body: unknown;
}

/** Every request the stub was sent, in order. */
let seen: Seen[] = [];

const problem = (c: Context, status: 404 | 409, code: string, title: string, detail: string) =>
  c.json(
    { type: `urn:market-order-saga:problem:${code}`, title, status, detail, instance: c.req.path },
    status,
    {
      'content-type': 'application/problem+json',
    },
  );

function stubAdminApi(): Hono {
  const app = new Hono();
  app.use('/admin/*', async (c, next) => {
    const body = c.req.method === 'POST' ? ((await c.req.json()) as unknown) : undefined;
    seen.push({ method: c.req.method, path: c.req.path, query: c.req.query(), body });
    const auth = c.req.header('authorization');
    if (auth === `Bearer ${USER_KEY}`) return c.json({ title: 'Forbidden', status: 403 }, 403);
    if (auth !== `Bearer ${ADMIN_KEY}`) return c.json({ title: 'Unauthorized', status: 401 }, 401);
    await next();
  });
  app.get('/admin/sagas', (c) => {
    const sagas = c.req.query('stuck') === 'true' ? [stuck] : [stuck, done];
    return c.json({ sagas, next_cursor: c.req.query('limit') === '1' ? 'page-2' : null });
  });
  app.get('/admin/sagas/:id', (c) =>
    c.req.param('id') === stuckId
      ? c.json({ ...stuck, deadline: '2026-11-29T10:00:30.000Z', history })
      : problem(c, 404, 'not_found', 'Not found', `no saga ${c.req.param('id')}`),
  );
  app.post('/admin/sagas/:id/retry', (c) => {
    const id = c.req.param('id');
    if (id === stuckId) return c.json({ order_id: id, outcome: 'completed' });
    if (id === failingId)
      return c.json({ order_id: id, outcome: 'failed', detail: 'insufficient_liquidity' });
    if (id === finishedId) return problem(c, 409, 'saga_finished', 'Conflict', 'the saga has already ended');
    return problem(c, 404, 'not_found', 'Not found', `no saga ${id}`);
  });
  app.post('/admin/sagas/:id/cancel', (c) => {
    const id = c.req.param('id');
    if (id === stuckId)
      return c.json({ order_id: id, outcome: 'cancelled', detail: 'swap voided; order failed' });
    if (id === executedId)
      return c.json({
        order_id: id,
        outcome: 'completed',
        detail: 'the swap had executed: the order completed',
      });
    if (id === unknownSwapId)
      return problem(
        c,
        409,
        'swap_outcome_unknown',
        'Conflict',
        'the venue cannot be reached to void the swap',
      );
    return problem(c, 404, 'not_found', 'Not found', `no saga ${id}`);
  });
  app.get('/admin/dlq', (c) => c.json({ messages: [deadLetter] }));
  app.post('/admin/dlq/replay', async (c) => {
    const body = await c.req.json<{ ids?: string[] }>();
    return c.json({ replayed: body.ids?.length ?? 7 });
  });
  app.post('/admin/dlq/drop', async (c) => {
    const body = await c.req.json<{ ids?: string[]; all?: boolean }>();
    return c.json({ dropped: body.all ? 7 : (body.ids?.length ?? 0) });
  });
  return app;
}

let server: RunningServer;
let url: string;
const asAdmin = { MOS_API_KEY: ADMIN_KEY };

/** The command against the stub, with the admin key from the environment unless `env` says otherwise. */
const run = (args: readonly string[], env: Record<string, string> = asAdmin) =>
  cli([...args, '--url', url], env);

beforeAll(async () => {
  server = await serveHttp(stubAdminApi().fetch, { host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${server.port}`;
});
afterAll(() => server.close());
beforeEach(() => {
  seen = [];
});

describe('sagas list', () => {
  it('prints a table of the sagas, flagging the stuck one', async () => {
    const result = await run(['sagas', 'list']);
    expect(result.code).toBe(0);
    const [header, ...rows] = result.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ORDER ID\s+USER\s+STATUS\s+STATE\s+PENDING STEP\s+IDLE\s+STUCK\s+UPDATED$/);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(
      new RegExp(`^${stuckId}\\s+user-cli\\s+pending\\s+awaitingOutcome\\s+findSwap\\s+2m 5s\\s+STUCK\\s`),
    );
    expect(rows[1]).toMatch(
      new RegExp(`^${doneId}\\s+user-cli\\s+completed\\s+completed\\s+-\\s+4s\\s+-\\s`),
    );
    expect(result.stderr).toContain('2 saga(s), 1 stuck.');
    expect(seen).toEqual([{ method: 'GET', path: '/admin/sagas', query: {}, body: undefined }]);
  });

  it('sends the filters, and --json prints the service answer as JSON', async () => {
    const result = await run([
      'sagas',
      'list',
      '--stuck',
      '--status',
      'pending',
      '--user',
      'user-cli',
      '--json',
    ]);
    expect(result.code).toBe(0);
    expect(jsonOf(result)).toEqual({ sagas: [stuck], next_cursor: null });
    expect(seen[0]?.query).toEqual({ stuck: 'true', status: 'pending', user: 'user-cli' });
  });

  it('says how to get the next page', async () => {
    const result = await run(['sagas', 'list', '--limit', '1']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('More: add --cursor page-2');
    const next = await run(['sagas', 'list', '--limit', '1', '--cursor', 'page-2']);
    expect(next.code).toBe(0);
    expect(seen[1]?.query).toEqual({ limit: '1', cursor: 'page-2' });
  });
});

describe('sagas show', () => {
  it("prints the saga's state, pending step, machine version and history", async () => {
    const result = await run(['sagas', 'show', stuckId]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^order:\\s+${stuckId}$`, 'm'));
    expect(result.stdout).toMatch(/^state:\s+awaitingOutcome$/m);
    expect(result.stdout).toMatch(/^pending step:\s+findSwap$/m);
    expect(result.stdout).toMatch(/^machine version:\s+1$/m);
    expect(result.stdout).toMatch(/^deadline:\s+2026-11-29T10:00:30.000Z$/m);
    expect(result.stdout).toMatch(/^stuck:\s+yes/m);
    expect(result.stdout).toMatch(/^STREAM\s+VERSION\s+EVENT\s+OCCURRED AT\s+PAYLOAD$/m);
    expect(result.stdout).toMatch(
      new RegExp(
        `^order-${stuckId}\\s+1\\s+OrderAccepted\\s+2026-11-29T10:00:00.000Z\\s+\\{"from_amount":"1000"`,
        'm',
      ),
    );
    // A long payload is cut in the table; --json has it whole.
    expect(result.stdout).toContain('…');
  });

  it('--json prints the whole saga', async () => {
    const result = await run(['sagas', 'show', stuckId, '--json']);
    expect(result.code).toBe(0);
    expect(jsonOf(result)).toEqual({ ...stuck, deadline: '2026-11-29T10:00:30.000Z', history });
  });

  it('exits 4 for an unknown order, saying so', async () => {
    const result = await run(['sagas', 'show', unknownId]);
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`Not found (not_found): no saga ${unknownId}`);
    expect(result.stdout).toBe('');
  });
});

describe('sagas retry', () => {
  it('exits 0 when the saga completed', async () => {
    const result = await run(['sagas', 'retry', stuckId]);
    expect(result).toMatchObject({ code: 0, stdout: `${stuckId} completed\n` });
    expect(seen[0]).toMatchObject({ method: 'POST', path: `/admin/sagas/${stuckId}/retry` });
  });

  it('exits 1 when it ended failed, printing why', async () => {
    const result = await run(['sagas', 'retry', failingId, '--json']);
    expect(result.code).toBe(1);
    expect(jsonOf(result)).toEqual({
      order_id: failingId,
      outcome: 'failed',
      detail: 'insufficient_liquidity',
    });
  });

  it('exits 5 when the saga has already finished', async () => {
    const result = await run(['sagas', 'retry', finishedId]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('(saga_finished): the saga has already ended');
  });
});

describe('sagas cancel', () => {
  it('sends the reason and exits 0 when cancelled', async () => {
    const result = await run(['sagas', 'cancel', stuckId, '--reason', 'customer asked']);
    expect(result).toMatchObject({ code: 0, stdout: `${stuckId} cancelled: swap voided; order failed\n` });
    expect(seen[0]).toMatchObject({
      path: `/admin/sagas/${stuckId}/cancel`,
      body: { reason: 'customer asked' },
    });
  });

  it('exits 1 when voiding found the swap executed and the order completed', async () => {
    const result = await run(['sagas', 'cancel', executedId, '--reason', 'stuck']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`${executedId} completed: the swap had executed`);
  });

  it("exits 5 when the swap's outcome is unknown", async () => {
    const result = await run(['sagas', 'cancel', unknownSwapId, '--reason', 'stuck']);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('(swap_outcome_unknown): the venue cannot be reached to void the swap');
  });

  it('refuses a reason over 200 characters before asking the service', async () => {
    const result = await run(['sagas', 'cancel', stuckId, '--reason', 'x'.repeat(201)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('must be 1 to 200 characters');
    expect(seen).toEqual([]);
  });
});

describe('dlq', () => {
  it('list prints a table, and --json the messages', async () => {
    const table = await run(['dlq', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+QUEUE\s+EVENT\s+ORDER ID\s+DEATHS\s+DEAD AT\s+REASON$/m);
    expect(table.stdout).toMatch(
      new RegExp(
        `^dl-1\\s+saga.order-accepted\\s+OrderAccepted\\s+${stuckId}\\s+5\\s+2026-11-29T10:05:00.000Z\\s+rejected 5 times$`,
        'm',
      ),
    );
    expect(table.stderr).toContain('1 dead-lettered message(s).');
    const json = await run(['dlq', 'list', '--limit', '10', '--json']);
    expect(jsonOf(json)).toEqual({ messages: [deadLetter] });
    expect(seen[1]?.query).toEqual({ limit: '10' });
  });

  it('replay sends the ids named, or none for all; redrive is the same', async () => {
    expect(await run(['dlq', 'replay', 'dl-1', 'dl-2'])).toMatchObject({ code: 0, stdout: 'replayed 2\n' });
    expect(await run(['dlq', 'replay', '--json'])).toMatchObject({
      code: 0,
      stdout: '{\n  "replayed": 7\n}\n',
    });
    expect(await run(['redrive'])).toMatchObject({ code: 0, stdout: 'replayed 7\n' });
    expect(seen.map((s) => [s.path, s.body])).toEqual([
      ['/admin/dlq/replay', { ids: ['dl-1', 'dl-2'] }],
      ['/admin/dlq/replay', {}],
      ['/admin/dlq/replay', {}],
    ]);
  });

  it('drop sends the ids named, or all with --all', async () => {
    expect(await run(['dlq', 'drop', 'dl-1'])).toMatchObject({ code: 0, stdout: 'dropped 1\n' });
    expect(await run(['dlq', 'drop', '--all'])).toMatchObject({ code: 0, stdout: 'dropped 7\n' });
    expect(seen.map((s) => s.body)).toEqual([{ ids: ['dl-1'] }, { all: true }]);
  });
});

describe('the admin key', () => {
  it('is taken from MOS_API_KEY or --key, and never printed', async () => {
    const fromOption = await run(['sagas', 'list', '--key', ADMIN_KEY], { MOS_API_KEY: '' });
    expect(fromOption.code).toBe(0);
    for (const result of [fromOption, await run(['sagas', 'show', unknownId])]) {
      expect(result.stdout + result.stderr).not.toContain(ADMIN_KEY.slice(21));
    }
  });

  it('exits 6 without a key, with a wrong one, or with a user key, saying which', async () => {
    const none = await run(['sagas', 'list'], { MOS_API_KEY: '' });
    expect(none.code).toBe(6);
    expect(none.stderr).toContain('the service needs an admin key (401): give --key or set MOS_API_KEY');
    const wrong = await run(['dlq', 'list'], { MOS_API_KEY: 'mos_0000000000000000_wrongwrongwrong' });
    expect(wrong.code).toBe(6);
    expect(wrong.stderr).toContain('the service refused the key (401)');
    expect(wrong.stderr).not.toContain('wrongwrongwrong');
    const user = await run(['sagas', 'retry', stuckId], { MOS_API_KEY: USER_KEY });
    expect(user.code).toBe(6);
    expect(user.stderr).toContain('not an admin key (403)');
    expect(user.stderr).not.toContain(USER_KEY.slice(21));
  });
});

describe('when the service cannot be reached', () => {
  it('exits 3 naming the URL', async () => {
    const port = await freePort();
    const result = await cli(['sagas', 'list', '--url', `http://127.0.0.1:${port}`], asAdmin);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`Cannot reach the service at http://127.0.0.1:${port}`);
    expect(result.stderr).toContain('ECONNREFUSED');
  });

  it('refuses a URL with a password (exit 2) without printing it', async () => {
    const result = await cli(
      ['sagas', 'list', '--url', `http://ops:hunter2@127.0.0.1:${server.port}`],
      asAdmin,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--url must not hold a user name or password');
    expect(result.stderr).not.toContain('hunter2');
    const ftp = await cli(['sagas', 'list', '--url', 'ftp://example.org'], asAdmin);
    expect(ftp.code).toBe(2);
    expect(ftp.stderr).toContain('--url must be an http:// or https:// URL');
  });

  it('defaults to 127.0.0.1 on PORT', async () => {
    const result = await cli(['dlq', 'list', '--json'], { ...asAdmin, PORT: String(server.port) });
    expect(result.code).toBe(0);
    expect(jsonOf(result)).toEqual({ messages: [deadLetter] });
  });

  it('exits 2 naming PORT when it is not a port', async () => {
    const result = await cli(['dlq', 'list'], { ...asAdmin, PORT: 'eighty' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('PORT: must be a port number');
  });
});

describe('on Deno (deno task cli)', () => {
  /** `deno task cli <args>` as a user runs it, against the stub (served by this process: no spawnSync). */
  const deno = (...args: string[]) =>
    cli([...args, '--url', url], asAdmin, ['node_modules/.bin/deno', 'task', '--quiet', 'cli']);

  it('answers as on Node, with the same exit codes', async () => {
    const listed = await deno('sagas', 'list', '--json');
    expect(listed.code).toBe(0);
    expect(jsonOf(listed)).toEqual({ sagas: [stuck, done], next_cursor: null });
    const missing = await deno('sagas', 'show', unknownId);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain(`no saga ${unknownId}`);
    expect((await deno('sagas', 'retry', finishedId)).code).toBe(5);
  }, 120_000);
});
