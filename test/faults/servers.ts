import { execFile } from 'node:child_process';
import { appendFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { until } from '../helpers/wait.ts';

/**
 * Restarts of the real PostgreSQL and RabbitMQ on this machine, for the fault suite. They disrupt
 * everything that uses the servers, so each is logged (to SERVER_RESTART_LOG when set) before it
 * happens, and every scenario that restarts one ensures it is up again in its `finally`.
 */

const run = promisify(execFile);

function announce(what: string): void {
  const line = `${new Date().toISOString()} fault suite (pid ${process.pid}): ${what}\n`;
  const log = process.env.SERVER_RESTART_LOG;
  if (log) appendFileSync(log, line);
  process.stdout.write(line);
}

/** The local cluster's version, as .ci/run finds it (`ls /etc/postgresql`). */
const pgVersion = () => readdirSync('/etc/postgresql')[0] ?? '15';
const pgctl = (...args: string[]) =>
  run('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', ...args]);
const pgReady = () =>
  run('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-t', '1']).then(
    () => true,
    () => false,
  );

/**
 * PostgreSQL crashes and comes back: `stop -m immediate` (every backend killed without a
 * checkpoint, as a power cut would leave it; the next start runs crash recovery), `downMs` of
 * nothing, then `start`. Resolves once it accepts connections again.
 */
export async function crashRestartPostgres(downMs: number): Promise<void> {
  announce(`PostgreSQL stop -m immediate, ${downMs} ms down, start`);
  try {
    await pgctl('stop', '-m', 'immediate');
    await sleep(downMs);
  } finally {
    await ensurePostgresUp();
  }
}

/** Starts PostgreSQL if it is not running and waits until it accepts connections. */
export async function ensurePostgresUp(): Promise<void> {
  if (await pgReady()) return;
  await pgctl('start').catch(() => {}); // "already running" fails too; readiness decides
  await until(pgReady, 'PostgreSQL to accept connections', 60_000, 200);
}

const rabbitctl = (...args: string[]) => run('rabbitmqctl', args, { timeout: 120_000 });

/**
 * RabbitMQ's application stops and starts again on its running Erlang node (`stop_app`,
 * `downMs`, `start_app`): every connection is closed by the broker, and the durable queues are
 * recovered from disk at the start, as after a full restart. Chosen over stopping the node
 * because it does not depend on how the node was started here (a service, or
 * `rabbitmq-server -detached` in .ci/run), and `rabbitmqctl` keeps a node to talk to, so the
 * broker is certain to be brought back.
 */
export async function restartRabbit(downMs: number): Promise<void> {
  announce(`RabbitMQ stop_app, ${downMs} ms down, start_app`);
  try {
    await rabbitctl('stop_app');
    await sleep(downMs);
  } finally {
    await ensureRabbitUp();
  }
}

/** Starts RabbitMQ's application (and the node, if it is down) and waits until it serves. */
export async function ensureRabbitUp(): Promise<void> {
  const started = await rabbitctl('start_app').then(
    () => true,
    () => false,
  );
  if (!started) await run('rabbitmq-server', ['-detached']).catch(() => {});
  await rabbitctl('await_startup');
}
