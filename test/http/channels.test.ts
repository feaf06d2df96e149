import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { testApp } from '../helpers/app.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { field: string; message: string }[];
}

describe('the channels API', () => {
  let db: Database;
  let app: ReturnType<typeof testApp>;

  beforeAll(async () => {
    db = await migratedPglite();
    app = testApp(db, { channels: createChannelsService(createUserChannelStore(db)) });
  });
  afterAll(async () => {
    await db.close();
  });

  const freshUser = () => `user-${randomUUID()}`;
  const path = (userId: string) => `/users/${encodeURIComponent(userId)}/channels`;
  const put = (userId: string, body: string, contentType = 'application/json') =>
    app.request(path(userId), { method: 'PUT', body, headers: { 'content-type': contentType } });
  const putJson = (userId: string, body: unknown) => put(userId, JSON.stringify(body));
  const get = async (userId: string) => (await app.request(path(userId))).json();

  async function expectProblem(res: Response, status: number, errors?: Problem['errors']) {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const problem = (await res.json()) as Problem;
    if (errors) expect(problem.errors).toEqual(errors);
    return problem;
  }

  describe('when a user sets a Telegram chat and an email', () => {
    it('answers 200 with both, and GET shows them', async () => {
      const user = freshUser();
      const res = await putJson(user, { telegram_chat_id: '123456789', email: 'trader@example.com' });

      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toEqual({
        user_id: user,
        telegram_chat_id: '123456789',
        email: 'trader@example.com',
        updated_at: expect.any(String) as unknown,
      });
      expect(await get(user)).toEqual(body);
    });

    it('accepts a chat id given as a JSON number, and a group chat id', async () => {
      const user = freshUser();
      expect(await (await put(user, '{"telegram_chat_id": 123456789}')).json()).toMatchObject({
        telegram_chat_id: '123456789',
      });
      expect(await (await putJson(user, { telegram_chat_id: '-1001234567890' })).json()).toMatchObject({
        telegram_chat_id: '-1001234567890',
        email: null,
      });
    });
  });

  describe('when a user changes one channel', () => {
    it('leaves the other as it was, and null removes a channel', async () => {
      const user = freshUser();
      await putJson(user, { telegram_chat_id: '111', email: 'old@example.com' });

      await putJson(user, { email: 'new@example.com' });
      expect(await get(user)).toMatchObject({ telegram_chat_id: '111', email: 'new@example.com' });

      await putJson(user, { telegram_chat_id: null });
      expect(await get(user)).toMatchObject({ telegram_chat_id: null, email: 'new@example.com' });
    });
  });

  describe('when a user has set nothing', () => {
    it('answers 200 with no channels', async () => {
      const user = freshUser();
      expect(await get(user)).toEqual({
        user_id: user,
        telegram_chat_id: null,
        email: null,
        updated_at: null,
      });
    });
  });

  describe('when the input is bad', () => {
    it('names every failing field and why, and changes nothing', async () => {
      const user = freshUser();
      await putJson(user, { telegram_chat_id: '111', email: 'kept@example.com' });
      const before = await get(user);

      const res = await putJson(user, { telegram_chat_id: 'abc', email: 'not-an-email', phone: '+1' });

      const problem = await expectProblem(res, 422, [
        {
          field: 'telegram_chat_id',
          message:
            'must be a Telegram chat id, an integer such as 123456789 (negative for a group); got "abc"',
        },
        {
          field: 'email',
          message: 'must be an email address, e.g. "trader@example.com"; got "not-an-email"',
        },
        { field: 'phone', message: 'is not a channel' },
      ]);
      expect(problem.type).toBe('urn:market-order-saga:problem:validation');
      expect(await get(user)).toEqual(before);
    });

    it.each([
      [{ telegram_chat_id: true }, 'telegram_chat_id', 'or null, got a boolean'],
      [{ email: 42 }, 'email', 'must be an email address or null, got a number'],
      [{}, '', 'must set telegram_chat_id or email (null removes one)'],
      [[], '', 'must be a JSON object'],
    ])('rejects %j naming "%s"', async (body, field, message) => {
      const res = await putJson(freshUser(), body);
      const problem = await expectProblem(res, 422);
      expect(problem.errors).toEqual([{ field, message: expect.stringContaining(message) as unknown }]);
    });

    it('rejects a user id longer than 128 characters', async () => {
      const user = 'u'.repeat(129);
      await expectProblem(await putJson(user, { email: 'a@example.com' }), 422, [
        { field: 'user_id', message: 'must be at most 128 characters' },
      ]);
      await expectProblem(await app.request(path(user)), 422, [
        { field: 'user_id', message: 'must be at most 128 characters' },
      ]);
    });

    it('rejects malformed JSON and other content types with 400 and 415', async () => {
      const user = freshUser();
      const malformed = await expectProblem(await put(user, '{"email":'), 400);
      expect(malformed.title).toBe('Malformed JSON');
      const text = await expectProblem(await put(user, 'email=a@b.c', 'text/plain'), 415);
      expect(text.detail).toContain('Send the channels as JSON');
      expect(await get(user)).toMatchObject({ telegram_chat_id: null, email: null });
    });
  });
  describe('when the app is created without the channels service', () => {
    it('has no channels routes (404)', async () => {
      const bare = testApp(db);
      expect((await bare.request('/users/u1/channels')).status).toBe(404);
    });
  });
});
