import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { recordVersion, storeSagas } from './storedSagas.ts';
import type { StoredSagas } from './storedSagas.ts';

/** Runs `npm run replay-check` as an operator would, against `url`: its exit code and output. */
function replayCheck(url: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'replay-check'], {
      env: { ...process.env, DATABASE_URL: url, AMQP_URL: '', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

// Needs a PostgreSQL server: DATABASE_URL. A database of its own: the command reads every saga.
describe.runIf(DATABASE_URL)('when replay-check runs against PostgreSQL', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let sagas: StoredSagas;
  beforeAll(async () => {
    scratch = await scratchPostgres();
    sagas = await storeSagas(scratch.db);
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  it('exits 0 when every saga replays on its version', async () => {
    const { code, output } = await replayCheck(scratch.url);
    expect(output).toContain('open: 4 sagas (version 1: 4); 0 at risk');
    expect(output).toContain('finished: 4 sagas (version 1: 4); 0 at risk');
    expect(output.trim().split('\n').at(-1)).toBe('problems: 0');
    expect(code).toBe(0);
  });

  it('exits 1 naming the open saga that no registered machine can drive', async () => {
    const [orderId = ''] = sagas.accepted;
    await recordVersion(scratch.db, orderId, 2);
    const { code, output } = await replayCheck(scratch.url);
    expect(output).toContain(`open saga ${orderId} (version 2): its version 2 is not registered`);
    expect(code).toBe(1);
  });
});
