import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

async function call(url: string, path: string, key?: string, body?: unknown) {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  if (body === undefined) return fetch(`${url}${path}`, { headers });
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

// The service as an operator runs it: the admin routes are wired, behind the admin key.
describe('the admin API of a running service', () => {
  it('lists a finished saga, refuses to retry or cancel it, and lists the dead letters', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-admin-'));
    const adminSecret = `admin-${randomUUID()}`;
    const userSecret = `user-${randomUUID()}`;
    const user = `trader-${randomUUID().slice(0, 8)}`;
    try {
      const service = await startService(NODE, {
        DATA_DIR: dataDir,
        DATABASE_URL: '',
        API_KEYS: `${user}:${userSecret},*:${adminSecret}`,
        STUCK_AFTER_MS: '1',
      });
      try {
        const placed = await call(service.url, '/orders', userSecret, {
          user_id: user,
          from_amount: '100',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        });
        expect(placed.status).toBe(202);
        const { order_id } = (await placed.json()) as { order_id: string };
        await until(async () => {
          const res = await call(service.url, `/orders/${order_id}`, userSecret);
          return ((await res.json()) as { status: string }).status === 'completed';
        }, 'the order completed');

        expect((await call(service.url, '/admin/sagas')).status).toBe(401);
        expect((await call(service.url, '/admin/sagas', userSecret)).status).toBe(403);
        const listed = await call(service.url, `/admin/sagas?user=${user}`, adminSecret);
        expect(await listed.json()).toEqual({
          sagas: [
            expect.objectContaining({
              order_id,
              status: 'completed',
              state: 'completed',
              pending_step: null,
              machine_version: 1,
              stuck: false,
            }),
          ],
          next_cursor: null,
        });
        const retried = await call(service.url, `/admin/sagas/${order_id}/retry`, adminSecret, {});
        expect(retried.status).toBe(409);
        const cancelled = await call(service.url, `/admin/sagas/${order_id}/cancel`, adminSecret, {
          reason: 'too late',
        });
        expect(cancelled.status).toBe(409);
        expect(((await cancelled.json()) as { type: string }).type).toMatch(/saga_finished$/);
        const dlq = await call(service.url, '/admin/dlq', adminSecret);
        expect(await dlq.json()).toEqual({ messages: [] });
      } finally {
        expect(await service.stop()).toBe(0);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
