import process from 'node:process';
import { ROLES } from '../config.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../infra/logger.ts';
import { migrate } from '../infra/migrations.ts';
import { startStatelyInspector } from '../infra/inspector.ts';
import { startTracing } from '../infra/tracing.ts';
import { assertCanSupervise, superviseWorkers } from '../infra/supervisor.ts';
import { serveSimulatedMarket } from '../infra/venues/simulatedHttpServer.ts';
import { startService } from '../service.ts';
import { openDatabase } from './database.ts';
import { CliError, EXIT } from './exitCodes.ts';

/** Fails with exit code 2 for a configuration that cannot run, before anything is opened. */
function assertRunnable(config: Config): void {
  if (!config.amqpUrl && config.roles.size !== ROLES.length)
    throw new CliError(
      EXIT.usage,
      `ROLES=${[...config.roles].join(',')} needs AMQP_URL: without a broker, events travel on the ` +
        'in-process bus, so one process runs every role',
    );
  if (config.workers <= 1) return;
  try {
    assertCanSupervise(config);
  } catch (error) {
    throw new CliError(EXIT.usage, (error as Error).message, { cause: error });
  }
}

/**
 * `start` (alias `serve`): the service with its ROLES, on this process, or WORKERS processes under
 * a supervisor. Resolves once it serves; SIGINT/SIGTERM stop it gracefully, even one that arrives
 * while it starts (a worker the supervisor stops as it comes up): it is remembered and acted on
 * once the service has started; a second one during start-up exits at once.
 */
export async function serve(config: Config, logger: Logger): Promise<void> {
  /** Set once the service runs. */
  const running: { stop?: (signal: string) => Promise<void> } = {};
  let stopRequested: string | undefined;

  assertRunnable(config);
  if (config.workers === 1) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (running.stop) return void running.stop(signal);
        // Still starting (it may be waiting for the database or the broker): a second signal
        // does not wait for that.
        if (stopRequested) process.exit(1);
        stopRequested = signal;
        logger.info({ signal }, 'stopping once started; signal again to exit now');
      });
    }
  }
  const opened = await openDatabase(config, logger);
  await migrate(opened.db, { logger });

  if (config.workers > 1) {
    // Migrated once above, before any worker starts; the workers find nothing left to apply.
    await opened.close();
    const supervision = await superviseWorkers(config, logger);
    process.exit(await supervision.done);
  }

  // One bridge per port: under WORKERS, the first worker's sagas are the ones shown.
  const inspectHere = config.sagaInspect !== undefined && (process.env.WORKER_SLOT ?? '0') === '0';
  const inspector = inspectHere
    ? await startStatelyInspector({ port: config.inspectPort, host: config.inspectHost })
    : undefined;
  if (inspector) logger.info({ url: inspector.url }, 'Stately inspector bridge: open this URL in a browser');

  const tracing = await startTracing(process.env, logger);
  const service = await startService({ config, logger, db: opened.db, inspector });

  let stopping = false;
  running.stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now, without finishing the stop');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down; signal again to exit now');
    // Past the bound, exit anyway: what was left undone is redone after a restart (unacked
    // messages come again, stale sagas are swept), so nothing accepted is lost.
    setTimeout(() => {
      logger.error(
        { timeoutMs: config.shutdownTimeoutMs },
        'shutdown did not finish within SHUTDOWN_TIMEOUT_MS; exiting anyway (unfinished work resumes after a restart)',
      );
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    return (async () => {
      await service.stop();
      inspector?.stop();
      await opened.close();
      await tracing
        ?.shutdown()
        .catch((error: unknown) => logger.warn({ err: error }, 'flushing spans failed'));
      logger.info('stopped');
      process.exit(0);
    })().catch((error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    });
  };
  if (stopRequested) await running.stop(stopRequested);
}

/**
 * `market`: the simulated price service and trade venue as a server of their own, for several
 * service processes to share one market (PRICE_SERVICE_URL = TRADE_WORKER_URL = its URL).
 */
export async function serveMarket(config: Config, logger: Logger): Promise<void> {
  const served = await serveSimulatedMarket({
    seed: config.simulationSeed,
    currencies: config.currencies,
    host: config.host,
    port: config.marketPort,
  });
  logger.info({ url: served.url }, 'simulated market serving; GET /simulation shows its ledger');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void served.server.close().then(() => process.exit(0)));
  }
}
