import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];

/** `npm run keys -- …` as an operator runs it: exit code, stdout and stderr apart. */
function keys(env: Record<string, string>, ...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'keys', ...args], {
    env: { ...process.env, LOG_LEVEL: 'debug', AMQP_URL: '', ...env },
    encoding: 'utf8',
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const order = (userId: string) => ({
  user_id: userId,
  from_amount: '100',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
});

async function call(url: string, path: string, key?: string, body?: unknown) {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  if (body === undefined) return fetch(`${url}${path}`, { headers });
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

// Real processes, as an operator uses them: the service and `npm run keys`.
describe('API keys across processes', () => {
  it('on the embedded database: open with a warning, then keys from the command and API_KEYS, never logged', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-keys-'));
    const env = { DATA_DIR: dataDir, DATABASE_URL: '' };
    try {
      const open = await startService(NODE, env);
      expect(open.output()).toMatch(/"level":40.*the API is OPEN/);
      expect((await call(open.url, '/orders/00000000-0000-4000-8000-000000000000')).status).toBe(404);
      expect(await open.stop()).toBe(0);

      const created = keys(env, 'create', '--user', 'alice', '--label', 'e2e');
      expect(created.status).toBe(0);
      expect(created.stdout).toMatch(/^mos_[0-9a-f]{16}_[\w-]{43}\n$/);
      expect(created.stderr).toContain('Created a key for user "alice"');
      const aliceKey = created.stdout.trim();
      expect(created.stderr).not.toContain(aliceKey.slice(21));

      const bobSecret = `bob-${randomUUID()}`;
      const adminSecret = `admin-${randomUUID()}`;
      const service = await startService(NODE, {
        ...env,
        LOG_LEVEL: 'debug',
        API_KEYS: `bob:${bobSecret},*:${adminSecret}`,
      });
      try {
        expect(service.output()).not.toContain('the API is OPEN');
        const placed = await call(service.url, '/orders', aliceKey, order('alice'));
        expect(placed.status).toBe(202);
        const { order_id } = (await placed.json()) as { order_id: string };

        expect((await call(service.url, `/orders/${order_id}`)).status).toBe(401);
        expect((await call(service.url, `/orders/${order_id}`, bobSecret)).status).toBe(403);
        expect((await call(service.url, '/orders', bobSecret, order('alice'))).status).toBe(403);
        expect((await call(service.url, `/orders/${order_id}`, aliceKey)).status).toBe(200);
        expect((await call(service.url, `/orders/${order_id}/saga`, adminSecret)).status).toBe(200);
        expect((await call(service.url, '/health')).status).toBe(200);
      } finally {
        expect(await service.stop()).toBe(0);
      }
      for (const secret of [aliceKey.slice(21), bobSecret, adminSecret]) {
        expect(service.output()).not.toContain(secret);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  it.runIf(DATABASE_URL)(
    'on PostgreSQL: a key revoked by the command stops working in a running service at once',
    async () => {
      const scratch = await scratchPostgres({ max: 1 });
      const env = { DATABASE_URL: scratch.url };
      try {
        const created = keys(env, 'create', '--user', 'alice');
        expect(created.status).toBe(0);
        const key = created.stdout.trim();
        const service = await startService(NODE, env);
        try {
          expect((await call(service.url, '/orders', key, order('alice'))).status).toBe(202);

          const revoked = keys(env, 'revoke', key.slice(4, 20));
          expect(revoked.status).toBe(0);
          const after = Date.now();
          // Another process: nothing to await but its answers.
          await until(
            async () => (await call(service.url, '/orders', key, order('alice'))).status === 401,
            'the revoked key to be refused',
            5_000,
            5,
          );
          console.log(`revoked key refused ${Date.now() - after} ms after the keys command exited`);
        } finally {
          await service.stop();
        }
      } finally {
        await scratch.drop();
      }
    },
    120_000,
  );
});
