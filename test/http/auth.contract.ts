import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyRing, hashSecret, parseApiKeyList } from '../../src/app/apiKeys.ts';
import type { KeyRing } from '../../src/app/apiKeys.ts';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import { createOrderFeed } from '../../src/app/orderFeed.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import { createApiKeyStore } from '../../src/infra/apiKeys.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createOrderFeedRows } from '../../src/infra/orderFeed.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';
import { runKeysCommand } from '../../src/cli/keys.ts';
import { testApp } from '../helpers/app.ts';
import { anEvent } from '../helpers/events.ts';

/**
 * The databases of one run: `db` serves the API (and its key ring listens on it); `commandDb` is
 * what the `keys` command uses, a connection of its own where the database allows it (PostgreSQL:
 * as another process would; PGlite has one process, so it is the same instance).
 */
export interface AuthDatabases {
  readonly db: Database;
  readonly commandDb: Database;
  close(): Promise<void>;
}

interface Problem {
  type: string;
  status: number;
  detail: string;
}

type Headers = Record<string, string>;
const bearer = (key: string): Headers => ({ authorization: `Bearer ${key}` });

/** The people of the matrix: the owner of every resource, another user, and the keys' texts. */
interface Fixture {
  readonly owner: string;
  readonly orderId: string;
  readonly positionId: string;
}

/**
 * A route of the API as the matrix calls it, for the owner's resource; `changed` reads what a
 * refused call must leave as it was. A new route is one more row.
 */
interface Route {
  readonly name: string;
  readonly ok: number;
  send(app: ReturnType<typeof testApp>, f: Fixture, headers: Headers): Response | Promise<Response>;
}

const json = (method: string, body: unknown, headers: Headers) => ({
  method,
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...headers },
});

const ROUTES: readonly Route[] = [
  {
    name: 'POST /orders',
    ok: 202,
    send: (app, f, headers) =>
      app.request(
        '/orders',
        json(
          'POST',
          {
            user_id: f.owner,
            from_amount: '100',
            from_currency: 'USDT',
            to_currency: 'BTC',
            order_type: 'market',
          },
          headers,
        ),
      ),
  },
  {
    name: 'GET /orders/:id',
    ok: 200,
    send: (app, f, h) => app.request(`/orders/${f.orderId}`, { headers: h }),
  },
  {
    name: 'GET /orders/:id/events',
    ok: 200,
    send: (app, f, h) => app.request(`/orders/${f.orderId}/events`, { headers: h }),
  },
  {
    name: 'GET /orders/:id/saga',
    ok: 200,
    send: (app, f, h) => app.request(`/orders/${f.orderId}/saga`, { headers: h }),
  },
  {
    name: 'GET /orders/:id/notifications',
    ok: 200,
    send: (app, f, h) => app.request(`/orders/${f.orderId}/notifications`, { headers: h }),
  },
  {
    name: 'GET /positions/:id/events',
    ok: 200,
    send: (app, f, h) => app.request(`/positions/${f.positionId}/events`, { headers: h }),
  },
  {
    name: 'GET /positions/:id',
    ok: 200,
    send: (app, f, h) => app.request(`/positions/${f.positionId}`, { headers: h }),
  },
  {
    name: 'GET /users/:userId/orders',
    ok: 200,
    send: (app, f, h) => app.request(`/users/${encodeURIComponent(f.owner)}/orders`, { headers: h }),
  },
  {
    name: 'GET /users/:userId/positions',
    ok: 200,
    send: (app, f, h) => app.request(`/users/${encodeURIComponent(f.owner)}/positions`, { headers: h }),
  },
  {
    name: 'GET /users/:userId/channels',
    ok: 200,
    send: (app, f, h) => app.request(`/users/${encodeURIComponent(f.owner)}/channels`, { headers: h }),
  },
  {
    // The dashboard's live feed of one user's orders; the stream is let go once its status is read.
    name: 'GET /ui/stream/orders?user=',
    ok: 200,
    send: async (app, f, h) => {
      const res = await app.request(`/ui/stream/orders?user=${encodeURIComponent(f.owner)}`, { headers: h });
      if (res.headers.get('content-type') === 'text/event-stream') await res.body?.cancel();
      return res;
    },
  },
  {
    name: 'PUT /users/:userId/channels',
    ok: 200,
    send: (app, f, h) =>
      app.request(
        `/users/${encodeURIComponent(f.owner)}/channels`,
        json('PUT', { telegram_chat_id: '666' }, h),
      ),
  },
];

/** The secret of an issued key (`mos_<16 hex>_<secret>`), or the whole text of an API_KEYS secret. */
const secretOf = (key: string) => (key.startsWith('mos_') ? key.slice(21) : key);

/** A key of the issued form that was never issued, and texts that are not keys at all. */
const NEVER_ISSUED = `mos_0123456789abcdef_${'A'.repeat(43)}`;

/**
 * The auth matrix (issue 11): every route × every kind of caller, on one database. With keys
 * configured every route but /health needs a valid key (401 otherwise, nothing changed); a user's
 * key reaches that user's resources only (403 otherwise, nothing changed); admins reach all.
 */
export function authContract(database: string, open: () => Promise<AuthDatabases>): void {
  describe(`access control on ${database}`, () => {
    let dbs: AuthDatabases;
    let db: Database;
    const logLines: string[] = [];
    const logger = createLogger('trace', { write: (line: string) => void logLines.push(line) });
    /** Every secret the test hands out: none may show in the logs or the table. */
    const secrets: string[] = [];
    const rings: KeyRing[] = [];

    const owner = `owner-${randomUUID()}`;
    const other = `other-${randomUUID()}`;
    const victim = `victim-${randomUUID()}`;
    const ownerSecret = `owner-${randomUUID()}`;
    const adminSecret = `admin-${randomUUID()}`;
    let fixture: Fixture;

    /** The `keys` command as an operator runs it; what it printed on stdout and stderr. */
    async function keys(...args: string[]) {
      const out: string[] = [];
      const err: string[] = [];
      await runKeysCommand(args, createApiKeyStore(dbs.commandDb), {
        out: (line) => void out.push(line),
        err: (line) => void err.push(line),
      });
      return { out, err };
    }

    /** Runs a `keys` command and waits for `ring` to reload on its announcement (no sleep). */
    async function keysSeenBy(ring: KeyRing, ...args: string[]) {
      const reloaded = ring.nextReload();
      const printed = await keys(...args);
      await reloaded;
      return printed;
    }

    async function startedRing(configured: string) {
      const ring = createKeyRing({
        store: createApiKeyStore(db),
        configured: parseApiKeyList(configured, () => undefined),
        logger,
        // Only announcements reload in these tests, so each wait is for the one it expects.
        refreshMs: 3_600_000,
      });
      await ring.start();
      rings.push(ring);
      return ring;
    }

    const appWith = (ring: KeyRing) => {
      const rows = createOrderFeedRows(db);
      return testApp(db, {
        channels: createChannelsService(createUserChannelStore(db)),
        auth: ring,
        logger,
        dashboard: { rows, feed: createOrderFeed({ rows, logger }) },
      });
    };

    async function expectProblem(res: Response, status: number, code: string) {
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as Problem;
      expect(problem.type).toBe(`urn:market-order-saga:problem:${code}`);
      return problem;
    }

    /** What any call could change: the owner's and the victim's orders and channels. */
    async function observable() {
      const users = [owner, victim];
      const orders = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM events WHERE event_type = 'OrderAccepted' AND event_data->>'user_id' = ANY($1)",
        [users],
      );
      const channels = await db.query(
        'SELECT user_id, channel, address, updated_at::text FROM user_channels WHERE user_id = ANY($1) ORDER BY 1, 2',
        [users],
      );
      return { orders: orders[0]?.n, channels };
    }

    beforeAll(async () => {
      dbs = await open();
      db = dbs.db;
      secrets.push(ownerSecret, adminSecret);
      const orderId = randomUUID();
      const positionId = positionIdFor(orderId);
      await createEventStore(db).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: [anEvent(orderId, 'OrderAccepted', { user_id: owner })],
        },
        {
          aggregate_id: positionId,
          aggregate_type: 'position',
          expected_version: 0,
          events: [anEvent(orderId, 'PositionCreated', { user_id: owner })],
        },
      ]);
      await createUserChannelStore(db).update(victim, [{ channel: 'telegram', address: '111' }]);
      fixture = { owner, orderId, positionId };
    });
    afterAll(async () => {
      for (const ring of rings) await ring.stop();
      await dbs?.close();
    });

    describe('without any key configured', () => {
      let ring: KeyRing;
      let app: ReturnType<typeof appWith>;
      beforeAll(async () => {
        ring = await startedRing('');
        app = appWith(ring);
      });

      it('is open, and says so in a warning at start', async () => {
        expect(ring.isOpen()).toBe(true);
        const warnings = logLines.map((line) => JSON.parse(line) as { level: number; msg: string });
        expect(warnings).toContainEqual(
          expect.objectContaining({ level: 40, msg: expect.stringContaining('the API is OPEN') as unknown }),
        );
        for (const route of ROUTES) {
          expect((await route.send(app, fixture, {})).status, route.name).toBe(route.ok);
        }
      });

      it('closes as soon as the first key is created, in another process too', async () => {
        const { out } = await keysSeenBy(ring, 'create', '--user', other, '--label', 'first');
        secrets.push(...out);

        expect(ring.isOpen()).toBe(false);
        await expectProblem(await app.request(`/orders/${fixture.orderId}`), 401, 'unauthorized');
        expect(
          (
            await app.request(`/users/${encodeURIComponent(other)}/channels`, {
              headers: bearer(out[0] ?? ''),
            })
          ).status,
        ).toBe(200);
      });
    });

    describe('with keys from API_KEYS and from the keys command', () => {
      let ring: KeyRing;
      let app: ReturnType<typeof appWith>;
      let otherKey: string;
      let tableAdminKey: string;

      beforeAll(async () => {
        ring = await startedRing(`${encodeURIComponent(owner)}:${ownerSecret},*:${adminSecret}`);
        app = appWith(ring);
        otherKey = (await keysSeenBy(ring, 'create', '--user', other)).out[0] ?? '';
        tableAdminKey = (await keysSeenBy(ring, 'create', '--admin', '--label', 'ops')).out[0] ?? '';
        secrets.push(otherKey, tableAdminKey);
      });

      const CALLERS: ReadonlyArray<[string, () => Headers, number | 'ok', string?]> = [
        ['no key', () => ({}), 401, 'unauthorized'],
        ['a key never issued', () => bearer(NEVER_ISSUED), 401, 'unauthorized'],
        ['a secret nobody configured', () => bearer('not-a-configured-secret'), 401, 'unauthorized'],
        [
          'a Basic header',
          () => ({ authorization: `Basic ${btoa(`${owner}:${ownerSecret}`)}` }),
          401,
          'unauthorized',
        ],
        ['"Bearer" without a key', () => ({ authorization: 'Bearer ' }), 401, 'unauthorized'],
        [
          'a key with a space in it',
          () => ({ authorization: `Bearer ${ownerSecret} x` }),
          401,
          'unauthorized',
        ],
        ["another user's key", () => bearer(otherKey), 403, 'forbidden'],
        ["the owner's key (API_KEYS)", () => bearer(ownerSecret), 'ok'],
        ["the owner's key, scheme in lower case", () => ({ authorization: `bearer ${ownerSecret}` }), 'ok'],
        ['an admin key (API_KEYS)', () => bearer(adminSecret), 'ok'],
        ['an admin key (keys command)', () => bearer(tableAdminKey), 'ok'],
      ];

      describe.each(ROUTES)('$name', (route) => {
        it.each(CALLERS)('with %s', async (_, headers, status, code) => {
          const before = await observable();
          const res = await route.send(app, fixture, headers());
          if (status === 'ok') {
            expect(res.status).toBe(route.ok);
            return;
          }
          await expectProblem(res, status, code ?? '');
          if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
          expect(await observable()).toEqual(before);
        });
      });

      it("refuses another user's key on a victim's channels, and the victim's channels stay as they were", async () => {
        const path = `/users/${encodeURIComponent(victim)}/channels`;
        const before = await (await app.request(path, { headers: bearer(adminSecret) })).json();

        const res = await app.request(path, json('PUT', { telegram_chat_id: '666' }, bearer(otherKey)));

        await expectProblem(res, 403, 'forbidden');
        expect(await (await app.request(path, { headers: bearer(adminSecret) })).json()).toEqual(before);
        expect(before).toMatchObject({ telegram_chat_id: '111' });
      });

      it("refuses an order placed in another user's name, and places nothing", async () => {
        const before = await observable();
        const res = await ROUTES[0]?.send(app, fixture, bearer(otherKey));
        await expectProblem(res as Response, 403, 'forbidden');
        expect(await observable()).toEqual(before);
      });

      it("answers 404 for a user's own unknown order (the check does not hide what does not exist)", async () => {
        const res = await app.request(`/orders/${randomUUID()}`, { headers: bearer(ownerSecret) });
        await expectProblem(res, 404, 'not_found');
      });

      it('keeps /health open, and the documentation routes need no key', async () => {
        expect((await app.request('/health')).status).toBe(200);
        expect((await app.request('/health', { headers: bearer('wrong') })).status).toBe(200);
        for (const path of ['/openapi.json', '/docs']) {
          expect((await app.request(path)).status, path).not.toBe(401);
        }
      });

      it('answers 401 for routes that do not exist, so the key check hides the route map', async () => {
        await expectProblem(await app.request('/admin/secrets'), 401, 'unauthorized');
      });

      it('stops accepting a key revoked by the keys command, as soon as the announcement arrives', async () => {
        const { out, err } = await keysSeenBy(ring, 'create', '--user', owner, '--label', 'to revoke');
        const key = out[0] ?? '';
        secrets.push(key);
        expect(out).toEqual([expect.stringMatching(/^mos_[0-9a-f]{16}_[\w-]{43}$/)]);
        expect(err.join('\n')).not.toContain(key);
        for (const route of ROUTES) {
          expect((await route.send(app, fixture, bearer(key))).status, route.name).toBe(route.ok);
        }

        const keyId = key.split('_')[1] ?? '';
        const revoked = await keysSeenBy(ring, 'revoke', keyId);
        expect(revoked.err).toEqual([expect.stringContaining(`Revoked key ${keyId}`)]);

        for (const route of ROUTES) {
          const before = await observable();
          const res = await route.send(app, fixture, bearer(key));
          await expectProblem(res, 401, 'unauthorized');
          expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
          expect(await observable()).toEqual(before);
        }
        // The owner's other key is untouched.
        expect((await ROUTES[1]?.send(app, fixture, bearer(ownerSecret)))?.status).toBe(200);
        // Revoking every key does not reopen the API.
        expect(ring.isOpen()).toBe(false);
      });

      it('lists keys without their secrets', async () => {
        const { out } = await keys('list');
        const listing = out.join('\n');
        expect(listing).toContain('admin');
        expect(listing).toContain(other);
        for (const secret of secrets) expect(listing).not.toContain(secretOf(secret));
        const mine = await keys('list', '--user', other);
        expect(mine.out.slice(1).every((line) => line.includes(other))).toBe(true);
      });

      it('stores only SHA-256 hashes of the secrets', async () => {
        const rows = await db.query<{ key_id: string; hash: string }>('SELECT * FROM api_keys');
        const table = JSON.stringify(rows);
        const issued = secrets.filter((s) => s.startsWith('mos_'));
        expect(issued.length).toBeGreaterThanOrEqual(3);
        for (const key of issued) {
          const keyId = key.slice(4, 20);
          const secret = secretOf(key);
          expect(table).not.toContain(secret);
          expect(rows.find((row) => row.key_id === keyId)?.hash).toBe(hashSecret(secret).toString('hex'));
        }
      });
    });

    it('never writes a key or a secret to the log, even an Authorization header logged whole', () => {
      logger.info({ req: { headers: { authorization: `Bearer ${ownerSecret}` } } }, 'a request');
      logger.info({ headers: { authorization: `Bearer ${adminSecret}` } }, 'headers');
      logger.error({ err: new Error('x'), request: { headers: { Authorization: `Bearer ${adminSecret}` } } });
      const log = logLines.join('');
      expect(log).toContain('[redacted]');
      for (const secret of secrets) expect(log).not.toContain(secret);
    });
  });
}
