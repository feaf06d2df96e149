import process from 'node:process';
import v8 from 'node:v8';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { lockDataDir } from './infra/db/dataDirLock.ts';
import { pgliteDatabase } from './infra/db/pglite.ts';
import type { Database } from './app/ports/database.ts';
import { postgresDatabase } from './infra/db/postgres.ts';
import { createLogger, scrubSecrets, secretList, secretsFromEnv } from './infra/logger.ts';
import { activeTraceIds, startTracing } from './infra/tracing.ts';
import type { Logger } from './infra/logger.ts';
import { migrate } from './infra/migrations.ts';
import { startStatelyInspector } from './infra/inspector.ts';
import { startService } from './service.ts';
import { runCheck } from './ops/checkCommand.ts';
import { runReplayCheck } from './ops/replayCheck.ts';
import { runRebuildProjections } from './ops/rebuildProjections.ts';
import { redriveDeadLetters, redriveQueues } from './ops/redrive.ts';
import { topology } from './infra/bus/rabbit/topology.ts';
import { serveSimulatedMarket } from './infra/venues/simulatedHttpServer.ts';
import { runKeysCommand } from './ops/keysCommand.ts';
import { createApiKeyStore } from './infra/apiKeys.ts';
import { assertCanSupervise, superviseWorkers } from './infra/supervisor.ts';

interface Opened {
  readonly db: Database;
  /** Closes the database and releases what guards it. */
  close(): Promise<void>;
}

async function openDatabase(config: Config, logger: Logger): Promise<Opened> {
  if (config.databaseUrl) {
    logger.info({ database: 'postgres' }, 'using PostgreSQL from DATABASE_URL');
    const db = postgresDatabase(config.databaseUrl, { max: config.databasePoolSize });
    return { db, close: () => db.close() };
  }
  // The embedded database shares this process's memory: keep the JS heap small. Without it V8 let
  // the young generation take 32 MB and the old one grow to ~85 MB (a quarter of it live) under
  // load, and the service stood at ~360 MB after 2,000 orders; with it ~290 MB, at no CPU cost we
  // could measure (bench:embedded). Set at run time, as `npm start` serves PostgreSQL too.
  v8.setFlagsFromString('--optimize-for-size');
  const release = await lockDataDir(config.dataDir, logger);
  logger.info(
    { database: 'pglite', dataDir: config.dataDir, sharedBuffers: config.pgliteSharedBuffers },
    'using embedded PGlite',
  );
  const db = await pgliteDatabase(config.dataDir, {
    settings: { shared_buffers: config.pgliteSharedBuffers },
  });
  return {
    db,
    async close() {
      await db.close();
      await release();
    },
  };
}

/**
 * `market`: the simulated price service and trade venue as a server of their own, for several
 * service processes to share one market (PRICE_SERVICE_URL = TRADE_WORKER_URL = its URL).
 */
async function serveMarket(config: Config, logger: Logger): Promise<void> {
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

async function main(args: readonly string[]): Promise<void> {
  const command = args[0] ?? 'serve';
  const config = loadConfig(process.env);
  // `keys` prints the key it creates on stdout, alone: its logs go to stderr.
  const created = createLogger(config.logLevel, {
    ...(command === 'keys' ? { destination: process.stderr } : {}),
    secrets: secretsFromEnv(process.env),
    ...(config.tracing ? { traceIds: activeTraceIds } : {}),
  });
  // A worker of `serve` with WORKERS > 1 names its slot on every line.
  const slot = process.env.WORKER_SLOT;
  const logger = slot === undefined ? created : created.child({ worker: Number(slot) });
  if (command === 'market') return serveMarket(config, logger);
  if (
    !['serve', 'migrate', 'check', 'replay-check', 'redrive', 'keys', 'rebuild-projections'].includes(command)
  ) {
    throw new Error(
      `Unknown command "${command}"; use "serve" (default), "migrate", "check", "replay-check", "redrive", "keys", "rebuild-projections" or "market"`,
    );
  }

  if (command === 'serve' && config.workers > 1) assertCanSupervise(config);
  if (command === 'serve' && config.workers === 1) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (stopService) return stopService(signal);
        // Still starting (it may be waiting for the database or the broker): a second signal
        // does not wait for that.
        if (stopRequested) process.exit(1);
        stopRequested = signal;
        logger.info({ signal }, 'stopping once started; signal again to exit now');
      });
    }
  }
  const opened = await openDatabase(config, logger);
  const { db } = opened;
  const applied = await migrate(db, { logger });
  if (command === 'migrate') {
    logger.info({ applied }, applied.length ? 'migrations applied' : 'database already up to date');
    await opened.close();
    return;
  }
  if (command === 'keys') {
    const print = (stream: NodeJS.WriteStream) => (line: string) => stream.write(`${line}\n`);
    try {
      await runKeysCommand(args.slice(1), createApiKeyStore(db), {
        out: print(process.stdout),
        err: print(process.stderr),
      });
    } finally {
      await opened.close();
    }
    return;
  }
  if (command === 'redrive') {
    const redriven = config.amqpUrl
      ? await redriveQueues(config.amqpUrl, topology({ prefix: config.amqpPrefix }))
      : await redriveDeadLetters(db);
    logger.info({ redriven }, 'dead letters sent back to their consumers');
    await opened.close();
    return;
  }
  if (command === 'check') {
    const ok = await runCheck(config, db, (text) => process.stdout.write(`${text}\n`));
    await opened.close();
    process.exit(ok ? 0 : 1);
  }

  if (command === 'rebuild-projections') {
    await runRebuildProjections(db, (text) => process.stdout.write(`${text}\n`));
    await opened.close();
    return;
  }

  if (command === 'replay-check') {
    const report = await runReplayCheck(db, { print: (text) => process.stdout.write(`${text}\n`) });
    await opened.close();
    process.exit(report.problems > 0 ? 1 : 0);
  }

  if (config.workers > 1) {
    // Migrated once above, before any worker starts; the workers find nothing left to apply.
    await opened.close();
    const supervision = await superviseWorkers(config, logger);
    process.exit(await supervision.done);
  }

  const inspector = config.sagaInspect
    ? await startStatelyInspector(config.inspectPort, config.host)
    : undefined;
  if (inspector) logger.info({ url: inspector.url }, 'Stately inspector bridge: open this URL in a browser');

  const tracing = await startTracing(process.env, logger);
  const service = await startService({ config, logger, db, inspector });

  let stopping = false;
  stopService = (signal: string) => {
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
    void (async () => {
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
  if (stopRequested) stopService(stopRequested);
}

/**
 * SIGINT/SIGTERM stop `serve` gracefully, even one that arrives while it starts (a worker the
 * supervisor stops as it comes up): it is remembered and acted on once the service has started;
 * a second one during start-up exits at once.
 */
let stopService: ((signal: string) => void) | undefined;
let stopRequested: string | undefined;

main(process.argv.slice(2)).catch((error: unknown) => {
  // A driver's error may quote a URL with its password: scrubbed like every log line.
  const text = error instanceof Error ? error.message : String(error);
  console.error(scrubSecrets(text, secretList(secretsFromEnv(process.env))));
  process.exit(1);
});
