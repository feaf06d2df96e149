import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';
import { cli } from './run.ts';

describe('start', () => {
  it('serve (its alias) --port serves on that port, over PORT, and stops with exit 0 on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-cli-start-'));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', String(port)],
      {
        env: {
          ...process.env,
          DATA_DIR: dataDir,
          DATABASE_URL: '',
          AMQP_URL: '',
          PORT: '1',
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const health = await until(
        () =>
          fetch(`http://127.0.0.1:${port}/health`).then(
            (response) => response.ok && response,
            () => child.exitCode !== null && Promise.reject(new Error(`exited:\n${output}`)),
          ),
        'the service to be healthy',
        90_000,
      );
      expect(await health.json()).toMatchObject({ status: 'ok', database: 'pglite' });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('"msg":"stopped"');
    } finally {
      child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it.each([
    [['start', '--roles', 'api,saga'], {}, 'ROLES=api,saga needs AMQP_URL'],
    [['start', '--workers', '2'], {}, 'WORKERS > 1 needs DATABASE_URL and AMQP_URL'],
    [
      ['start'],
      { ROLES: 'api,cashier' },
      'Invalid configuration:\n  ROLES.1: each role must be one of api, relay, saga, notifier, sweeper',
    ],
    [['start'], { MAX_SLIPPAGE: '5' }, 'Invalid configuration:\n  MAX_SLIPPAGE: must be a fraction below 1'],
  ])('%j with %j exits 2 before opening anything, saying why', async (args, env, message) => {
    const run = await cli(args, env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});
