import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/infra/logger.ts';
import { freePort } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';
import { cli } from './run.ts';

/** A destination that keeps the lines written to it, as a terminal (isTTY) or not. */
function sink(isTTY: boolean) {
  const lines: string[] = [];
  return { lines, destination: { isTTY, write: (line: string) => void lines.push(line) } };
}

const ESC = '\u001b[';
const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: /;

describe('log lines', () => {
  it('are JSON when the destination is not a terminal', () => {
    const { lines, destination } = sink(false);
    createLogger('info', destination).info({ orderId: 'o-1' }, 'saga completed');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 30, orderId: 'o-1', msg: 'saga completed' });
  });

  it('are pretty and colourful on a terminal', () => {
    const { lines, destination } = sink(true);
    createLogger('info', destination).info({ orderId: 'o-1' }, 'saga completed');
    expect(lines[0]).toContain(ESC);
    const plain = (lines[0] ?? '').replaceAll(new RegExp(`${ESC.replace('[', '\\[')}\\d+m`, 'g'), '');
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: saga completed \{"orderId":"o-1"\}\n$/);
  });

  it('follow LOG_FORMAT over the terminal: json on a terminal, pretty (without colour) elsewhere', () => {
    const json = sink(true);
    createLogger('info', json.destination, 'json').warn('w');
    expect(JSON.parse(json.lines[0] ?? '')).toMatchObject({ level: 40, msg: 'w' });
    const pretty = sink(false);
    createLogger('info', pretty.destination, 'pretty').warn('w');
    expect(pretty.lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: w\n$/);
  });

  it('keep the redaction when pretty', () => {
    const { lines, destination } = sink(false);
    const logger = createLogger('info', destination, 'pretty');
    logger.info({ req: { headers: { authorization: 'Bearer mos_secret' } } }, 'request');
    logger.info({ authorization: 'Bearer mos_secret' }, 'call');
    expect(lines.join('')).toContain('[redacted]');
    expect(lines.join('')).not.toContain('mos_secret');
  });
});

/** `market` (no database: quick to start) as a process; its stdout once it serves, then stopped. */
async function marketOutput(env: Record<string, string>): Promise<{ stdout: string; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'market'], {
    env: { ...process.env, LOG_LEVEL: 'info', MARKET_PORT: String(await freePort()), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await until(() => stdout.includes('simulated market serving'), 'the market to serve', 30_000, 20);
  } finally {
    child.kill('SIGTERM');
  }
  return { stdout, code: await exited };
}

describe('the log format of a command', () => {
  it('is JSON on stdout when stdout is not a terminal', async () => {
    const { stdout, code } = await marketOutput({});
    expect(code).toBe(0);
    const line = JSON.parse(stdout.trim().split('\n')[0] ?? '') as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, service: 'market-order-saga' });
    expect(line.msg).toMatch(/simulated market serving/);
  });

  it('is pretty with LOG_FORMAT=pretty', async () => {
    const { stdout, code } = await marketOutput({ LOG_FORMAT: 'pretty' });
    expect(code).toBe(0);
    expect(stdout).toMatch(PRETTY_LINE);
    expect(stdout).toMatch(
      /INFO: simulated market serving; GET \/simulation shows its ledger \{"url":"http:\/\/127\.0\.0\.1:\d+"\}/,
    );
    expect(stdout).not.toContain(ESC);
  });

  it('refuses an unknown LOG_FORMAT, naming it, with exit code 2', async () => {
    const run = await cli(['migrate'], { LOG_FORMAT: 'yaml' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Invalid configuration:\n  LOG_FORMAT: must be pretty or json');
  });
});
