import { spawn } from 'node:child_process';

/** What a run of the command line left: its exit code and its two streams apart. */
export interface CliRun {
  readonly code: number | null;
  /** The signal that ended it, if one did (a failpoint's SIGKILL). */
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `market-order-saga <args>` as an operator does, as a process (`node --import tsx src/cli.ts`,
 * what the package's bin runs), with `env` over this process's. DATABASE_URL and AMQP_URL are
 * cleared unless given (the embedded database, the in-process bus), so that CI's servers serve
 * only the tests that ask for them. `command` runs it otherwise (e.g. `deno task cli`).
 */
export function cli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  command: readonly string[] = [process.execPath, '--import', 'tsx', 'src/cli.ts'],
): Promise<CliRun> {
  const [bin = process.execPath, ...start] = command;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...start, ...args], {
      env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: '', AMQP_URL: '', MOS_API_KEY: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The JSON document a `--json` run printed on stdout. */
export const jsonOf = <T = Record<string, unknown>>(run: CliRun): T => JSON.parse(run.stdout) as T;
