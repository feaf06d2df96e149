import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { testApp } from '../helpers/app.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';

const NUL = 'must not contain NUL characters (U+0000)';
const LONE_SURROGATE = 'must be valid Unicode (it has a lone surrogate)';
const NOT_UTF8 = 'must be percent-encoded UTF-8 (the path has bytes that are not)';

interface Problem {
  type: string;
  status: number;
  detail: string;
  errors?: { field: string; message: string }[];
}

/**
 * Text PostgreSQL cannot store (U+0000, lone surrogates) and bytes that are not UTF-8, in every
 * place a request can carry them, on each database: the answer names the field, and nothing is
 * written. Run by one test file per database (both used to answer 500 after the database
 * refused the text). JSON.stringify writes U+0000 and a lone surrogate as the escapes "\u0000" and
 * "\ud800", so the bodies below carry the escapes a client would send.
 */
export function textInputContract(database: string, open: () => Promise<Database>): void {
  describe(`text the database cannot store, on ${database}`, () => {
    let db: Database;
    let app: ReturnType<typeof testApp>;

    beforeAll(async () => {
      db = await open();
      app = testApp(db, { channels: createChannelsService(createUserChannelStore(db)) });
    });
    afterAll(async () => {
      await db?.close();
    });

    /** A fresh user id with nothing stored under it; every user id of a test starts with it. */
    const freshUser = () => `user-${randomUUID()}`;

    /** What is stored for the users whose id starts with `prefix`. */
    async function storedFor(prefix: string) {
      const like = `${prefix}%`;
      const [counts] = await db.query<{ events: number; outbox: number }>(
        `SELECT (SELECT count(*)::int FROM events WHERE event_data->>'user_id' LIKE $1) AS events,
                (SELECT count(*)::int FROM outbox WHERE event_data->>'user_id' LIKE $1) AS outbox`,
        [like],
      );
      const channels = await db.query<{ user_id: string; channel: string; address: string }>(
        'SELECT user_id, channel, address, updated_at::text FROM user_channels WHERE user_id LIKE $1 ORDER BY 1, 2',
        [like],
      );
      return { ...counts, channels };
    }

    async function expectProblem(res: Response, status: number, errors?: Problem['errors']) {
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as Problem;
      expect(problem.status).toBe(status);
      if (errors) {
        expect(problem.type).toBe('urn:market-order-saga:problem:validation');
        expect(problem.errors).toEqual(errors);
      }
      return problem;
    }

    const anOrder = (userId: string) => ({
      user_id: userId,
      from_amount: '100',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
    });
    const postOrder = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
      app.request('/orders', {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...headers },
      });
    const channelsPath = (encodedUserId: string) => `/users/${encodedUserId}/channels`;
    const putChannels = (encodedUserId: string, body: unknown) =>
      app.request(channelsPath(encodedUserId), {
        method: 'PUT',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });

    describe('when an order carries U+0000 or a lone surrogate in a string field', () => {
      it.each<[string, (user: string) => Record<string, string>, { field: string; message: string }[]]>([
        ['a NUL in user_id', (user) => ({ user_id: `${user}\u0000` }), [{ field: 'user_id', message: NUL }]],
        [
          'a lone high surrogate in user_id',
          (user) => ({ user_id: `${user}\ud800` }),
          [{ field: 'user_id', message: LONE_SURROGATE }],
        ],
        [
          'a lone low surrogate in user_id',
          (user) => ({ user_id: `${user}\udc00x` }),
          [{ field: 'user_id', message: LONE_SURROGATE }],
        ],
        [
          'a NUL in from_currency',
          () => ({ from_currency: 'US\u0000DT' }),
          [{ field: 'from_currency', message: NUL }],
        ],
        [
          'half an emoji in to_currency',
          () => ({ to_currency: 'BTC\ud83d' }),
          [{ field: 'to_currency', message: LONE_SURROGATE }],
        ],
        [
          'a NUL in from_amount',
          () => ({ from_amount: '100\u0000' }),
          [{ field: 'from_amount', message: NUL }],
        ],
        [
          'a lone surrogate in order_type',
          () => ({ order_type: '\udfffmarket' }),
          [{ field: 'order_type', message: LONE_SURROGATE }],
        ],
        [
          'both in different fields',
          (user) => ({ user_id: `${user}\u0000`, to_currency: '\ud800' }),
          [
            { field: 'user_id', message: NUL },
            { field: 'to_currency', message: LONE_SURROGATE },
          ],
        ],
      ])('answers 422 naming the field for %s, and writes nothing', async (_, change, errors) => {
        const user = freshUser();
        const before = await storedFor(user);

        const res = await postOrder(JSON.stringify({ ...anOrder(user), ...change(user) }));

        await expectProblem(res, 422, errors);
        expect(await storedFor(user)).toEqual(before);
      });

      it('accepts a surrogate pair (an emoji) in user_id and stores it as sent', async () => {
        const user = `${freshUser()}-\ud83d\ude80`;

        const res = await postOrder(JSON.stringify(anOrder(user)));

        expect(res.status).toBe(202);
        const { order_id } = (await res.json()) as { order_id: string };
        const [accepted] = await db.query<{ user_id: string }>(
          `SELECT event_data->>'user_id' AS user_id FROM events WHERE aggregate_id = $1`,
          [order_id],
        );
        expect(accepted?.user_id).toBe(user);
      });
    });

    describe('when the body has bytes that are not UTF-8', () => {
      it.each([
        ['a lone surrogate encoded as UTF-8 (ED A0 80)', [0xed, 0xa0, 0x80]],
        ['a byte that never occurs in UTF-8 (FF)', [0xff]],
        ['an overlong NUL (C0 80)', [0xc0, 0x80]],
      ])('answers 400 for %s, and writes nothing', async (_, bytes) => {
        const user = freshUser();
        const before = await storedFor(user);
        const [head, tail] = JSON.stringify(anOrder(`${user}|`)).split('|');
        const encoder = new TextEncoder();
        const body = new Uint8Array([...encoder.encode(head), ...bytes, ...encoder.encode(tail)]);

        const problem = await expectProblem(await postOrder(body), 400);

        expect(problem.type).toBe('urn:market-order-saga:problem:malformed_json');
        expect(problem.detail).toBe('The body is not valid UTF-8, as JSON must be');
        expect(await storedFor(user)).toEqual(before);
      });
    });

    describe('when a header carries bytes that are not ASCII', () => {
      // A header cannot carry U+0000 at all (fetch's Headers and Node's HTTP parser refuse it),
      // and no header value is UTF-8 decoded: bytes above 0x7F arrive as Latin-1 characters.
      it('answers 422 naming Idempotency-Key, and writes nothing', async () => {
        const user = freshUser();
        const before = await storedFor(user);

        const res = await postOrder(JSON.stringify(anOrder(user)), {
          'idempotency-key': 'key-\u00ed\u00a0\u0080',
        });

        await expectProblem(res, 422, [
          {
            field: 'Idempotency-Key',
            message: 'must be 1 to 255 visible ASCII characters (a UUID is a good choice)',
          },
        ]);
        expect(await storedFor(user)).toEqual(before);
      });

      it('stores a request id of its own instead of such an X-Request-Id', async () => {
        const res = await postOrder(JSON.stringify(anOrder(freshUser())), { 'x-request-id': 'req-\u00ff' });

        expect(res.status).toBe(202);
        const { order_id } = (await res.json()) as { order_id: string };
        const [accepted] = await db.query<{ causation_id: string }>(
          `SELECT metadata->>'causation_id' AS causation_id FROM events WHERE aggregate_id = $1`,
          [order_id],
        );
        expect(accepted?.causation_id).toBe(res.headers.get('x-request-id'));
        expect(accepted?.causation_id).toMatch(/^[0-9a-f-]{36}$/);
      });
    });

    describe('when the user id of a channels path is not storable text', () => {
      it.each([
        ['a percent-encoded NUL (%00)', '%00', NUL],
        ['a lone surrogate encoded as UTF-8 (%ED%A0%80)', '%ED%A0%80', NOT_UTF8],
        ['a byte that never occurs in UTF-8 (%FF)', '%FF', NOT_UTF8],
        ['an overlong NUL (%C0%80)', '%C0%80', NOT_UTF8],
      ])(
        'answers 422 naming user_id to GET and PUT for %s, and writes nothing',
        async (_, suffix, message) => {
          const user = freshUser();
          const before = await storedFor(user);
          const errors = [{ field: 'user_id', message }];

          await expectProblem(await app.request(channelsPath(`${user}${suffix}`)), 422, errors);
          await expectProblem(
            await putChannels(`${user}${suffix}`, { email: 'trader@example.com' }),
            422,
            errors,
          );

          expect(await storedFor(user)).toEqual(before);
        },
      );

      it('names the path and the body fields at once', async () => {
        const user = freshUser();

        const res = await putChannels(`${user}%00`, { email: '\ud800@example.com' });

        await expectProblem(res, 422, [
          { field: 'user_id', message: NUL },
          { field: 'email', message: LONE_SURROGATE },
        ]);
        expect((await storedFor(user)).channels).toEqual([]);
      });

      it('keeps an encoded percent sign (%25ED) and an encoded emoji as the user id they spell', async () => {
        const user = freshUser();
        const percent = `${user}%ED%A0%80`;
        const emoji = `${user}-\ud83d\ude80`;

        for (const id of [percent, emoji]) {
          const res = await putChannels(encodeURIComponent(id), { email: 'trader@example.com' });
          expect(res.status).toBe(200);
          expect(await res.json()).toMatchObject({ user_id: id, email: 'trader@example.com' });
          const got = await app.request(channelsPath(encodeURIComponent(id)));
          expect(await got.json()).toMatchObject({ user_id: id, email: 'trader@example.com' });
        }
      });
    });

    describe('when a channel in the body is not storable text', () => {
      it.each([
        ['a NUL in email', { email: 'trader\u0000@example.com' }, 'email', NUL],
        ['a lone surrogate in email', { email: 'trader@example.com\udbff' }, 'email', LONE_SURROGATE],
        ['a NUL in telegram_chat_id', { telegram_chat_id: '42\u0000' }, 'telegram_chat_id', NUL],
        [
          'a lone surrogate in telegram_chat_id',
          { telegram_chat_id: '\ud80042' },
          'telegram_chat_id',
          LONE_SURROGATE,
        ],
      ])('answers 422 naming the field for %s, and changes nothing', async (_, body, field, message) => {
        const user = freshUser();
        expect((await putChannels(user, { telegram_chat_id: '42', email: 'kept@example.com' })).status).toBe(
          200,
        );
        const before = await storedFor(user);

        await expectProblem(await putChannels(user, body), 422, [{ field, message }]);

        expect(await storedFor(user)).toEqual(before);
      });
    });

    describe('when an order or position path has such text', () => {
      it.each([
        ['/orders/%00'],
        ['/orders/%ED%A0%80/events'],
        ['/orders/%00/saga'],
        ['/orders/%00/notifications'],
        ['/positions/%C0%80/events'],
      ])('answers 404 to %s (ids are UUIDs, checked before any query)', async (path) => {
        await expectProblem(await app.request(path), 404);
      });
    });
  });
}
