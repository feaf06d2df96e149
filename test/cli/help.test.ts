import { describe, expect, it } from 'vitest';
import { cli } from './run.ts';

const COMMANDS = [
  'start',
  'serve',
  'migrate',
  'check',
  'reconcile',
  'replay-check',
  'rebuild-projections',
  'keys',
  'keys create',
  'keys revoke',
  'keys list',
  'sagas',
  'sagas list',
  'sagas show',
  'sagas retry',
  'sagas cancel',
  'dlq',
  'dlq list',
  'dlq replay',
  'dlq drop',
  'redrive',
  'market',
  'machine',
  'machine export',
];

/** The options that print a table (or a report) and so take --json. */
const JSON_COMMANDS = [
  'check',
  'reconcile',
  'replay-check',
  'keys list',
  'sagas list',
  'sagas show',
  'dlq list',
];

describe('market-order-saga --help', () => {
  it('lists every command and the exit codes, on stdout, exiting 0', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: market-order-saga \[options\] \[command\]/);
    for (const command of COMMANDS.filter((c) => !c.includes(' ') && c !== 'serve')) {
      expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(run.stdout).toContain('start|serve');
    for (const code of [
      '0  success',
      '1  the command ran and found problems',
      '2  usage',
      '3  cannot reach',
      '4  not found',
      '5  refused as a conflict',
      '6  the service refused the key',
    ])
      expect(run.stdout).toContain(code);
  });

  it.concurrent.each(COMMANDS)('%s --help describes it and exits 0', async (command) => {
    const run = await cli([...command.split(' '), '--help']);
    expect(run.code).toBe(0);
    const name = command === 'serve' ? 'start\\|serve' : command;
    expect(run.stdout).toMatch(new RegExp(`^Usage: market-order-saga ${name}`));
    expect(run.stderr).toBe('');
    if (JSON_COMMANDS.includes(command)) expect(run.stdout).toContain('--json');
    // A command that runs says what its exit codes mean; a group lists its commands.
    expect(run.stdout).toMatch(
      ['keys', 'sagas', 'dlq', 'machine'].includes(command) ? /Commands:/ : /Exit codes/,
    );
  });

  it('runs as npx market-order-saga, the package bin (through tsx), with the exit codes passed on', async () => {
    const help = await cli(['--help'], {}, ['npx', 'market-order-saga']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: market-order-saga \[options\] \[command\]/);
    const wrong = await cli(['sagas', 'show', 'x'], {}, ['npx', 'market-order-saga']);
    expect(wrong.code).toBe(2);
  });

  it('help <command> is --help of that command', async () => {
    const run = await cli(['help', 'migrate']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: market-order-saga migrate/);
  });
});

describe('when the command line is wrong', () => {
  it.concurrent.each([
    [['deploy'], "error: unknown command 'deploy'"],
    [['check', '--verbose'], "error: unknown option '--verbose'"],
    [['sagas', 'show'], "error: missing required argument 'order_id'"],
    [['sagas', 'show', 'not-an-id'], 'must be an order id (a UUID'],
    [['sagas', 'list', '--limit', '500'], 'must be a whole number from 1 to 200'],
    [['sagas', 'list', '--status', 'lost'], 'Allowed choices are pending, completed, failed'],
    [
      ['sagas', 'cancel', '00000000-0000-4000-8000-000000000000'],
      "error: required option '--reason <text>' not specified",
    ],
    [['dlq', 'drop'], 'name the messages to drop, or give --all'],
    [['dlq', 'drop', 'm1', '--all'], 'name the messages to drop, or give --all'],
    [['start', '--port', '70000'], 'must be a whole number from 0 to 65535'],
    [
      ['start', '--roles', 'api,cashier'],
      'must be a comma-separated list of api, relay, saga, notifier, sweeper',
    ],
    [['start', '--workers', '0'], 'must be a number from 1 to 64, or auto'],
  ])('%j is refused with exit code 2, saying why', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain('(add --help for usage)');
    expect(run.stdout).toBe('');
  });

  it('without a command, prints the usage on stderr and exits 2', async () => {
    const run = await cli([]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^Usage: market-order-saga/);
  });
});
