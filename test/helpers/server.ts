import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { until } from './wait.ts';

/** A free TCP port on 127.0.0.1, so parallel test files never collide. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface ServiceProcess {
  readonly url: string;
  /** The service's own process id (the command is run directly, not through npm). */
  readonly pid: number;
  readonly output: () => string;
  /** Sends SIGTERM and resolves with the exit code once the process has exited. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, nothing drained, no lock released. Resolves once the process is gone. */
  kill(): Promise<void>;
}

/**
 * Starts the service as a user would (a real process on a real port) and resolves once
 * /health answers. Rejects with the process output if it exits or never becomes healthy.
 */
export async function startService(
  command: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
): Promise<ServiceProcess> {
  const port = await freePort();
  const [bin = process.execPath, ...args] = command;
  const child: ChildProcess = spawn(bin, args, {
    // The in-process bus unless the caller says otherwise: with CI's AMQP_URL inherited, these
    // services would share the broker's unprefixed queues (see cluster.ts for RabbitMQ runs).
    env: { ...process.env, LOG_LEVEL: 'info', AMQP_URL: '', ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + timeoutMs;
  let healthy = false;
  while (!healthy) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service not healthy after ${timeoutMs} ms:\n${output}`);
    }
    healthy = await fetch(`${url}/health`).then(
      (res) => res.ok,
      () => false,
    );
    // Polling a process we do not control: there is no event to await for "port is open".
    if (!healthy) await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    pid: child.pid ?? 0,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Waits until the service at `url` has no unpublished outbox row (GET /health): on the embedded
 * default, every consumer (the notifier too) has handled every row, so `check` sees no backlog.
 */
export async function outboxDrained(url: string): Promise<void> {
  await until(async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as { outbox_unpublished: number };
    return health.outbox_unpublished === 0;
  }, 'the outbox to drain');
}

/** `npm run check` as an operator runs it, with `env` over this process's; its exit code and report. */
export function runCheckCommand(env: Record<string, string>): { status: number | null; stdout: string } {
  const check = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check'], {
    env: { ...process.env, LOG_LEVEL: 'warn', AMQP_URL: '', ...env },
    encoding: 'utf8',
  });
  return { status: check.status, stdout: check.stdout };
}
