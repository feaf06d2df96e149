import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { lockDataDir } from '../../src/infra/db/dataDirLock.ts';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { serveSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import { sagaWorld } from '../helpers/saga.ts';
import { freePort } from '../helpers/server.ts';
import { recordVersion, storeSagas } from '../ops/storedSagas.ts';
import type { StoredSagas } from '../ops/storedSagas.ts';
import { cli, jsonOf } from './run.ts';

/*
 * The commands that work on the database, run as processes on an embedded database of their own
 * (the same commands on PostgreSQL: database.postgres.integration.test.ts). The test writes its
 * sagas with the real runner while no command runs: PGlite is one process's database.
 */

let dataDir: string;
const env = () => ({ DATA_DIR: dataDir });

/** Opens the data directory in this process for `work`, then closes it for the commands. */
async function withDb<T>(work: (db: Database) => Promise<T>): Promise<T> {
  const db = await pgliteDatabase(dataDir);
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/** A failed order that had sent its swap (the venue lacked liquidity): one for the reconciler. */
async function failedAfterSwap(db: Database): Promise<{ orderId: string; key: string }> {
  const world = sagaWorld(db);
  const orderId = await world.place({ from_amount: '2000000' });
  expect((await world.runner.run(orderId)).status).toBe('failed');
  const [row] = await db.query<{ idempotency_key: string }>(
    'SELECT idempotency_key FROM swap_reconciliations WHERE order_id = $1',
    [orderId],
  );
  if (!row) throw new Error('the failed order has no reconciliation row');
  return { orderId, key: row.idempotency_key };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'mos-cli-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('on a new embedded database', () => {
  it('migrate applies the migrations (logging JSON lines on stderr), then has nothing to apply', async () => {
    const first = await cli(['migrate'], { ...env(), LOG_LEVEL: 'info' });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\): 001_events\.sql, 002_outbox\.sql, /);
    const lines = first.stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({ migration: '001_events.sql', msg: 'migration applied' }),
    );

    const again = await cli(['migrate'], env());
    expect(again).toMatchObject({ code: 0, stdout: 'database already up to date\n' });
  }, 60_000);

  it('check finds nothing violated (exit 0), as a report or --json', async () => {
    const report = await cli(['check'], env());
    expect(report.code).toBe(0);
    expect(report.stdout).toMatch(/^# +guarantee +status +checked +violations +example\n/);
    expect(report.stdout).toMatch(
      /\n1 +every accepted order reaches exactly one terminal event[^\n]* +ok +0 orders +0\n/,
    );
    expect(report.stdout).toMatch(/zero violations\n$/);
    const json = jsonOf<{ violated: number; results: { guarantee: number; status: string }[] }>(
      await cli(['check', '--json'], env()),
    );
    expect(json.violated).toBe(0);
    expect(json.results.map((r) => r.guarantee)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }, 60_000);

  it('exits 3 while another process holds the data directory, saying so', async () => {
    const release = await lockDataDir(dataDir, silentLogger);
    try {
      const run = await cli(['check'], env());
      expect(run.code).toBe(3);
      expect(run.stderr).toContain(
        `The data directory ${dataDir} is in use by another process (pid ${process.pid})`,
      );
      expect(run.stdout).toBe('');
    } finally {
      await release();
    }
  }, 60_000);
});

describe('keys', () => {
  it('create prints the key alone on stdout; list shows it (never the secret); revoke revokes it', async () => {
    const created = await cli(['keys', 'create', '--user', 'alice', '--label', 'cli test'], env());
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^mos_[0-9a-f]{16}_[\w-]{43}\n$/);
    const key = created.stdout.trim();
    const keyId = key.slice(4, 20);
    expect(created.stderr).toContain(`Created a key for user "alice" with id ${keyId} (cli test).`);

    const admin = await cli(['keys', 'create', '--admin'], env());
    expect(admin.code).toBe(0);

    const table = await cli(['keys', 'list', '--user', 'alice'], env());
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^KEY ID\s+ROLE\s+USER\s+LABEL\s+CREATED\s+REVOKED\n/);
    expect(table.stdout).toMatch(
      new RegExp(`^${keyId}\\s+user\\s+alice\\s+cli test\\s+\\d{4}-\\d\\d-\\d\\dT\\S+\\s+-$`, 'm'),
    );
    expect(table.stdout).not.toContain(key.slice(21));

    expect(await cli(['keys', 'revoke', keyId], env())).toMatchObject({ code: 0, stdout: '' });
    const listed = jsonOf<{ keys: { key_id: string; role: string; revoked_at: string | null }[] }>(
      await cli(['keys', 'list', '--json'], env()),
    );
    expect(listed.keys).toHaveLength(2);
    expect(listed.keys.find((k) => k.key_id === keyId)?.revoked_at).toEqual(expect.any(String));
    expect(listed.keys.find((k) => k.key_id !== keyId)).toMatchObject({ role: 'admin', revoked_at: null });
  }, 120_000);

  it('revoke exits 4 for a key id that does not exist', async () => {
    const run = await cli(['keys', 'revoke', '0123456789abcdef'], env());
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('There is no key with id 0123456789abcdef');
  }, 60_000);
});

describe('with sagas stored', () => {
  let stored: StoredSagas;
  let market: ServedSimulatedMarket;

  beforeAll(async () => {
    stored = await withDb(storeSagas);
    market = await serveSimulatedMarket({ port: await freePort() });
  }, 120_000);
  afterAll(() => market.server.close());

  it('replay-check finds no saga at risk (exit 0); --json gives the report', async () => {
    const run = await cli(['replay-check', '--json'], env());
    expect(run.code).toBe(0);
    const report = jsonOf<{ problems: number; open: { checked: number }; closed: { checked: number } }>(run);
    expect(report).toMatchObject({ problems: 0, open: { checked: 4 }, closed: { checked: 4 } });
    // The progress goes to stderr, so that stdout is the document alone.
    expect(run.stderr).toContain('open sagas: 4 checked, 0 at risk');
  }, 60_000);

  it('replay-check exits 1 when a saga records a machine version that is not registered', async () => {
    const [orderId = ''] = stored.accepted;
    await withDb((db) => recordVersion(db, orderId, 99));
    const run = await cli(['replay-check'], env());
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`open saga ${orderId} (version 99): its version 99 is not registered`);
    expect(run.stdout).toMatch(/problems: 1\n$/);
  }, 120_000);

  it('check exits 1 when a guarantee is violated: sagas left open', async () => {
    const run = await cli(['check', '--json'], env());
    expect(run.code).toBe(1);
    const report = jsonOf<{ violated: number; results: { guarantee: number; status: string }[] }>(run);
    expect(report.violated).toBeGreaterThan(0);
    expect(report.results.find((r) => r.guarantee === 1)?.status).toBe('violated');
  }, 60_000);

  it('rebuild-projections rebuilds the read models', async () => {
    const run = await cli(['rebuild-projections'], env());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^events read: {4}\d+/m);
    expect(run.stdout).toMatch(/^rows differed: {2}0/m);
  }, 60_000);

  it('reconcile needs TRADE_WORKER_URL (exit 2)', async () => {
    const run = await cli(['reconcile'], env());
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('reconcile needs TRADE_WORKER_URL');
  }, 60_000);

  it("reconcile asks the venue about failed orders' swaps: unreachable (3), voided (0), executed (1)", async () => {
    const venue = { ...env(), TRADE_WORKER_URL: market.url };
    const [liquidityFailure = ''] = stored.failed;

    market.market.venue.startOutage();
    const unreachable = await cli(['reconcile', '--json'], venue);
    market.market.restore();
    expect(unreachable.code).toBe(3);
    expect(jsonOf(unreachable)).toEqual({
      examined: 1,
      findings: [],
      unreachable: [liquidityFailure],
      anomalies: 0,
    });

    // Asked again after 30 s: a new failed order is what the next pass finds.
    const voided = await withDb(failedAfterSwap);
    const settled = await cli(['reconcile'], venue);
    expect(settled.code).toBe(0);
    expect(settled.stdout).toMatch(new RegExp(`^${voided.orderId}\\s+voided\\s+-$`, 'm'));
    expect(settled.stderr).toContain('1 failed order(s) examined: 1 answered, 0 anomalies, 0 unreachable.');

    // The venue executed this one's swap after all: money moved for an order recorded as failed.
    const executed = await withDb(failedAfterSwap);
    const quote = await market.market.priceService.getMarketPrice('USDT', 'BTC');
    const swap = await market.market.venue.executeSwap({
      idempotency_key: executed.key,
      from_currency: 'USDT',
      to_currency: 'BTC',
      from_amount: '100',
      quoted_price: quote.price,
      min_to_amount: '0',
      execute_before: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(swap.status).toBe('executed');
    const anomaly = await cli(['reconcile', '--json'], venue);
    expect(anomaly.code).toBe(1);
    expect(jsonOf(anomaly)).toMatchObject({
      examined: 1,
      anomalies: 1,
      findings: [{ order_id: executed.orderId, outcome: 'executed', tx_hash: expect.any(String) as string }],
    });
  }, 180_000);
});

describe('when the database cannot be reached', () => {
  it('exits 3 naming what failed', async () => {
    const port = await freePort();
    const run = await cli(['check'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nowhere` });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('Cannot reach the database');
    expect(run.stderr).toContain('ECONNREFUSED');
  }, 60_000);

  it('exits 2 naming a malformed DATABASE_URL', async () => {
    const run = await cli(['migrate'], { DATABASE_URL: 'mysql://localhost/db' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Invalid configuration:\n  DATABASE_URL: must be a postgres:// URL');
  });
});
