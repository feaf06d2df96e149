import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { armFailpoints, FAILPOINTS_GRAMMAR, formatFailpoint } from '../app/failpoints.ts';
import type { Database } from '../app/ports/database.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../infra/logger.ts';
import { scrubSecrets, secretList, secretsFromEnv } from '../infra/logger.ts';
import { addAdminCommands } from './adminProgram.ts';
import * as parse from './arguments.ts';
import { CliError, EXIT, EXIT_CODES_HELP, exitCodeOf, isUnreachable } from './exitCodes.ts';
import type { ExitCode } from './exitCodes.ts';
import { addKeysCommands } from './keys.ts';
import { json, processOutput, table } from './output.ts';
import type { Output } from './output.ts';

/**
 * `market-order-saga`: every command of the service, parsed by commander. Commands that work on
 * the database (migrate, check, keys, …) open it themselves; `sagas` and `dlq` are clients of the
 * running service's admin API. The database drivers and the service are loaded only by the
 * commands that use them, so `--help` and the HTTP clients start quickly.
 */

export interface CliDeps {
  /** The environment the configuration is read from. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly output: Output;
}

const ENVIRONMENT_HELP = `
Configuration is read from environment variables (README "Configuration"): DATABASE_URL
(PostgreSQL; unset: the embedded PGlite under DATA_DIR), AMQP_URL (RabbitMQ; unset: the
in-process bus), PORT, LOG_LEVEL, LOG_FORMAT (pretty|json; unset: pretty on a terminal), …
A bad variable is named, with why, and exits 2.`;

/** Commands whose result is on stdout: their logs go to stderr. `start` and `market` log on stdout. */
async function setUp(deps: CliDeps, logTo: 'stdout' | 'stderr'): Promise<{ config: Config; logger: Logger }> {
  const [{ loadConfig }, { createLogger, secretsFromEnv }, { activeTraceIds }] = await Promise.all([
    import('../config.ts'),
    import('../infra/logger.ts'),
    import('../infra/tracing.ts'),
  ]);
  let config: Config;
  try {
    config = loadConfig(deps.env);
  } catch (error) {
    throw new CliError(EXIT.usage, (error as Error).message, { cause: error });
  }
  const created = createLogger(config.logLevel, {
    ...(logTo === 'stderr' ? { destination: process.stderr } : {}),
    format: config.logFormat,
    // No secret reaches a line: configured ones (keys, tokens, passwords) are scrubbed.
    secrets: secretsFromEnv(deps.env),
    ...(config.tracing ? { traceIds: activeTraceIds } : {}),
  });
  // A worker of `start` with WORKERS > 1 names its slot on every line.
  const slot = deps.env.WORKER_SLOT;
  const logger = slot === undefined ? created : created.child({ worker: Number(slot) });
  if (config.failpoints.length > 0) {
    armFailpoints(config.failpoints);
    logger.warn(
      { failpoints: config.failpoints.map(formatFailpoint) },
      'FAILPOINTS armed: this process crashes or freezes on purpose at these points (a fault-testing tool)',
    );
  }
  return { config, logger };
}

/** Opens and migrates the configured database around `work`. */
async function withDatabase<T>(
  deps: CliDeps,
  work: (db: Database, config: Config, logger: Logger, applied: readonly string[]) => Promise<T>,
): Promise<T> {
  const { config, logger } = await setUp(deps, 'stderr');
  const { withMigratedDatabase } = await import('./database.ts');
  return withMigratedDatabase(config, logger, (db, applied) => work(db, config, logger, applied));
}

/** Builds the program; each action hands its exit code to `done` (undefined: it keeps running). */
export function buildProgram(deps: CliDeps, done: (code: ExitCode | undefined) => void): Command {
  const { output } = deps;
  const program = new Command('market-order-saga')
    .description(
      'Market orders carried through an orchestrated, event-sourced saga: the service and its operations.',
    )
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n${ENVIRONMENT_HELP}`);

  program
    .command('start')
    .alias('serve')
    .description('start the service (every role on the embedded database by default); Ctrl-C stops it')
    .option(
      '--roles <roles>',
      'roles of this process, comma-separated: api, relay, saga, notifier, sweeper (ROLES)',
      parse.roles,
    )
    .option('--port <port>', 'HTTP port of the api role (PORT, default 8080)', parse.port)
    .option(
      '--workers <n>',
      'service processes on this machine, or auto: one per core (WORKERS; Node only)',
      parse.workers,
    )
    .option(
      '--failpoints <spec>',
      `crash or freeze this process on purpose at named points, for fault tests (FAILPOINTS): ${FAILPOINTS_GRAMMAR}`,
      parse.failpoints,
    )
    .addHelpText(
      'after',
      `
Options override the environment variables named. Roles other than all of them, and --workers
above 1, need DATABASE_URL and AMQP_URL. SIGINT/SIGTERM stop it gracefully (exit 0); a second
signal exits at once. Exit codes: 2 bad option or configuration, 3 database or broker unreachable
(or the data directory held by another process).`,
    )
    .action(async (options: { roles?: string; port?: number; workers?: string; failpoints?: string }) => {
      const env = { ...deps.env };
      if (options.roles !== undefined) env.ROLES = options.roles;
      if (options.port !== undefined) env.PORT = String(options.port);
      if (options.failpoints !== undefined) env.FAILPOINTS = options.failpoints;
      // A worker forked by the supervisor sees the same arguments: it is one process, not a supervisor.
      if (options.workers !== undefined && env.WORKER_SLOT === undefined) env.WORKERS = options.workers;
      const { config, logger } = await setUp({ ...deps, env }, 'stdout');
      const { serve } = await import('./serve.ts');
      await serve(config, logger);
      done(undefined);
    });

  program
    .command('migrate')
    .description('apply the database migrations not applied yet, then exit')
    .addHelpText(
      'after',
      '\nExit codes: 0 up to date, 2 configuration, 3 database unreachable or held by the service.',
    )
    .action(async () => {
      const applied = await withDatabase(deps, (_db, _config, _logger, names) => Promise.resolve(names));
      output.out(
        applied.length > 0
          ? `applied ${applied.length} migration(s): ${applied.join(', ')}`
          : 'database already up to date',
      );
      done(EXIT.ok);
    });

  program
    .command('check')
    .description(
      "check every guarantee of the architecture against the stored state, the queues and the venue's ledger",
    )
    .option('--json', 'print JSON instead of the report')
    .addHelpText(
      'after',
      `
Run it on a drained system (no order in flight). AMQP_URL adds the queues, TRADE_WORKER_URL the
venue's ledger. Exit codes: 0 nothing violated, 1 a guarantee violated, 2 configuration,
3 database or broker unreachable.`,
    )
    .action(async (options: { json?: boolean }) => {
      const [{ runCheck }, { formatReport }] = await Promise.all([
        import('../ops/checkCommand.ts'),
        import('../ops/guarantees.ts'),
      ]);
      const results = await withDatabase(deps, (db, config) => runCheck(config, db));
      const violated = results.filter((r) => r.status === 'violated').length;
      output.out(options.json ? json({ violated, results }) : formatReport(results));
      done(violated > 0 ? EXIT.problems : EXIT.ok);
    });

  program
    .command('reconcile')
    .description(
      "one pass of the swap reconciliation now: ask the venue about every failed order's swap not yet settled",
    )
    .option('--json', 'print JSON instead of a table')
    .addHelpText(
      'after',
      `
Needs TRADE_WORKER_URL: the venue the service trades with (the simulated market of the embedded
default lives inside the service, whose sweeper reconciles there every few seconds).
Exit codes: 0 nothing wrong, 1 the venue executed the swap of an order recorded as failed (an
operator must settle it), 2 configuration, 3 database or venue unreachable.`,
    )
    .action(async (options: { json?: boolean }) => {
      const pass = await withDatabase(deps, async (db, config, logger) => {
        if (!config.tradeWorkerUrl)
          throw new CliError(
            EXIT.usage,
            'reconcile needs TRADE_WORKER_URL (the venue to ask); without it the simulated market is inside the running service, whose sweeper reconciles',
          );
        const [{ createHttpTradeWorker }, { reconcileOnce }] = await Promise.all([
          import('../infra/venues/httpTradeWorker.ts'),
          import('../ops/reconcileCommand.ts'),
        ]);
        const venue = createHttpTradeWorker({
          baseUrl: config.tradeWorkerUrl,
          timeoutMs: config.saga.callTimeoutMs,
        });
        return reconcileOnce(db, venue, logger, { callTimeoutMs: config.saga.callTimeoutMs });
      });
      if (options.json) {
        output.out(json(pass));
      } else {
        output.out(
          table(
            ['ORDER ID', 'VENUE SAYS', 'TX HASH'],
            [
              ...pass.findings.map((f) => [
                f.order_id,
                f.outcome === 'executed' ? 'EXECUTED (anomaly)' : f.outcome,
                f.tx_hash ?? '-',
              ]),
              ...pass.unreachable.map((id) => [id, 'unreachable: asked again in 30 s', '-']),
            ],
          ),
        );
        output.err(
          `${pass.examined} failed order(s) examined: ${pass.findings.length} answered, ` +
            `${pass.anomalies} anomal${pass.anomalies === 1 ? 'y' : 'ies'}, ${pass.unreachable.length} unreachable.`,
        );
      }
      done(pass.anomalies > 0 ? EXIT.problems : pass.unreachable.length > 0 ? EXIT.unreachable : EXIT.ok);
    });

  program
    .command('replay-check')
    .description(
      'replay every stored saga through its recorded machine version and the current one; report sagas at risk',
    )
    .option('--json', 'print the report as JSON (progress still on stderr)')
    .addHelpText(
      'after',
      '\nExit codes: 0 no saga at risk, 1 sagas at risk, 2 configuration, 3 database unreachable.',
    )
    .action(async (options: { json?: boolean }) => {
      const { runReplayCheck } = await import('../ops/replayCheck.ts');
      const report = await withDatabase(deps, (db) =>
        runReplayCheck(db, { print: options.json ? output.err : output.out }),
      );
      if (options.json) output.out(json(report));
      done(report.problems > 0 ? EXIT.problems : EXIT.ok);
    });

  program
    .command('rebuild-projections')
    .description(
      'rebuild the read models (orders_view, positions_view) from the events, swapping them in while the service runs',
    )
    .addHelpText(
      'after',
      '\nOn the embedded database, stop the service first. Exit codes: 0 rebuilt, 1 an event the catalogue refuses, 2 configuration, 3 database unreachable.',
    )
    .action(async () => {
      const { runRebuildProjections } = await import('../ops/rebuildProjections.ts');
      await withDatabase(deps, (db) => runRebuildProjections(db, output.out));
      done(EXIT.ok);
    });

  addKeysCommands(
    program,
    (work) =>
      withDatabase(deps, async (db) => {
        const { createApiKeyStore } = await import('../infra/apiKeys.ts');
        return work(createApiKeyStore(db));
      }),
    output,
    done,
  );

  addAdminCommands(program, deps, done);

  const machine = program
    .command('machine')
    .description('the saga machine as documents: JSON and a Mermaid diagram under docs/');
  machine
    .command('export')
    .description(
      'write every registered machine version to docs/saga-machine.json, the current one to docs/saga-machine.mmd (and README.md), older ones to docs/saga-machine-v<n>.mmd',
    )
    .option('--check', 'write nothing: exit 1 if the committed export differs from the machine')
    .option('--root <dir>', 'the repository to write into (default: the one this program runs from)')
    .addHelpText('after', '\nExit codes: 0 written (or up to date with --check), 1 stale (--check).')
    .action(async (options: { check?: boolean; root?: string }) => {
      const { staleMachineExport, writeMachineExport } = await import('../ops/machineExport.ts');
      const root = options.root ?? fileURLToPath(new URL('../..', import.meta.url));
      if (options.check) {
        const stale = await staleMachineExport(root);
        for (const file of stale) output.out(`${file.path}: ${file.problem}`);
        if (stale.length > 0) output.err('The machine export is stale: run `npm run machine:export`.');
        done(stale.length > 0 ? EXIT.problems : EXIT.ok);
        return;
      }
      const changed = await writeMachineExport(root);
      output.out(changed.length > 0 ? `updated: ${changed.join(', ')}` : 'machine export already up to date');
      done(EXIT.ok);
    });

  program
    .command('market')
    .description('serve the simulated price service and trade venue on their own (MARKET_PORT, default 8090)')
    .addHelpText(
      'after',
      `
For several service processes to share one market: set PRICE_SERVICE_URL and TRADE_WORKER_URL
to its URL. GET /simulation shows its ledger. Exit codes: 2 configuration.`,
    )
    .action(async () => {
      const { config, logger } = await setUp(deps, 'stdout');
      const { serveMarket } = await import('./serve.ts');
      await serveMarket(config, logger);
      done(undefined);
    });

  return program;
}

/** An error as the operator reads it: the message, and for a connection, what could not be reached. */
function errorText(error: unknown, env: CliDeps['env']): string {
  // A driver's error may quote a URL with its password: scrubbed like every log line.
  const message = scrubSecrets(
    error instanceof Error ? error.message : String(error),
    secretList(secretsFromEnv(env)),
  );
  // A held data directory says so itself ("… is in use by another process (pid …)").
  if (error instanceof CliError || !isUnreachable(error) || /in use by another process/.test(message))
    return message;
  return `Cannot reach the database, the broker or the venue: ${message}`;
}

/**
 * Runs the command line `argv` (without the program's name).
 * @returns the exit code, or undefined for a command that keeps running (`start`, `market`).
 */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<ExitCode | undefined> {
  let exitCode: ExitCode | undefined = EXIT.ok;
  const program = buildProgram(deps, (code) => (exitCode = code));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    // commander's own: help shown (0), or a usage error it has already printed.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    deps.output.err(errorText(error, deps.env));
    return exitCodeOf(error);
  }
}

/** The process entry: runs `argv` and exits with its code, unless the command keeps running. */
export async function main(argv: readonly string[]): Promise<void> {
  const code = await runCli(argv, { env: process.env, output: processOutput });
  if (code !== undefined) process.exit(code);
}
