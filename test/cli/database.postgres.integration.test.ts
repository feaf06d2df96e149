import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { DATABASE_URL } from '../helpers/databases.ts';
import { cli, jsonOf } from './run.ts';

/*
 * The database commands on PostgreSQL, in a new database of their own (created empty, so that
 * `migrate` has everything to apply; dropped at the end).
 */
describe.runIf(DATABASE_URL)('on PostgreSQL', () => {
  const name = `cli_${randomUUID().replaceAll('-', '')}`;
  const admin = postgresDatabase(DATABASE_URL ?? '', { max: 1 });
  let env: Record<string, string>;

  beforeAll(async () => {
    await admin.exec(`CREATE DATABASE ${name}`);
    const url = new URL(DATABASE_URL ?? '');
    url.pathname = `/${name}`;
    env = { DATABASE_URL: url.toString() };
  });
  afterAll(async () => {
    await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  });

  it('migrate applies the migrations to a new database, then has nothing to apply', async () => {
    const first = await cli(['migrate'], env);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\): 001_events\.sql, /);
    expect(await cli(['migrate'], env)).toMatchObject({ code: 0, stdout: 'database already up to date\n' });
  }, 60_000);

  it('check and replay-check find nothing wrong (exit 0)', async () => {
    const check = await cli(['check', '--json'], env);
    expect(check.code).toBe(0);
    expect(jsonOf(check)).toMatchObject({ violated: 0 });
    const replay = await cli(['replay-check', '--json'], env);
    expect(replay.code).toBe(0);
    expect(jsonOf(replay)).toMatchObject({ problems: 0 });
  }, 60_000);

  it('keys: create, list and revoke', async () => {
    const created = await cli(['keys', 'create', '--admin', '--label', 'ops'], env);
    expect(created.code).toBe(0);
    const keyId = created.stdout.trim().slice(4, 20);
    expect(jsonOf(await cli(['keys', 'list', '--json'], env))).toMatchObject({
      keys: [{ key_id: keyId, role: 'admin', user_id: null, label: 'ops', revoked_at: null }],
    });
    expect((await cli(['keys', 'revoke', keyId], env)).code).toBe(0);
    expect((await cli(['keys', 'revoke', 'ffffffffffffffff'], env)).code).toBe(4);
  }, 60_000);

  it('exits 3 for a database that does not exist', async () => {
    const url = new URL(env.DATABASE_URL ?? '');
    url.pathname = `/${name}_missing`;
    const run = await cli(['check'], { DATABASE_URL: url.toString() });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('does not exist');
  }, 60_000);
});
