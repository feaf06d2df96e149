import { mkdir } from 'node:fs/promises';
import process from 'node:process';
import lockfile from 'proper-lockfile';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { createApp } from './http/app.ts';
import { pgliteDatabase } from './infra/db/pglite.ts';
import type { Database } from './infra/db/port.ts';
import { postgresDatabase } from './infra/db/postgres.ts';
import { createLogger } from './infra/logger.ts';
import type { Logger } from './infra/logger.ts';
import { migrate } from './infra/migrations.ts';
import { serveHttp } from './infra/server.ts';
import { wireOrderFlow } from './wiring.ts';
import type { PriceService, TradeVenue } from './app/ports.ts';
import { startStatelyInspector } from './infra/inspector.ts';
import { createHttpPriceService } from './infra/venues/httpPriceService.ts';
import { createHttpTradeWorker } from './infra/venues/httpTradeWorker.ts';
import { createSimulatedMarket } from './infra/venues/simulatedMarket.ts';

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
  await mkdir(config.dataDir, { recursive: true });
  // PGlite is one process's database: a second process on the same files would corrupt them.
  const release = await lockfile
    .lock(config.dataDir, {
      stale: 15_000,
      update: 5_000,
      onCompromised: (error) => logger.error({ err: error }, 'lost the lock on the data directory'),
    })
    .catch((error: unknown) => {
      throw new Error(
        `The data directory ${config.dataDir} is in use by another process (${(error as Error).message}); ` +
          'stop it, or set DATA_DIR to another directory',
      );
    });
  logger.info({ database: 'pglite', dataDir: config.dataDir }, 'using embedded PGlite');
  const db = await pgliteDatabase(config.dataDir);
  return {
    db,
    async close() {
      await db.close();
      await release();
    },
  };
}

/** The price service and venue: HTTP adapters when their URLs are set, else the simulated market. */
function outsideWorld(config: Config, logger: Logger): { prices: PriceService; venue: TradeVenue } {
  const market = createSimulatedMarket({ seed: config.simulationSeed, currencies: config.currencies });
  const prices = config.priceServiceUrl
    ? createHttpPriceService({ baseUrl: config.priceServiceUrl, timeoutMs: config.saga.callTimeoutMs })
    : market.priceService;
  const venue = config.tradeWorkerUrl
    ? createHttpTradeWorker({ baseUrl: config.tradeWorkerUrl, timeoutMs: config.saga.callTimeoutMs })
    : market.venue;
  logger.info(
    { prices: config.priceServiceUrl ?? 'simulated', venue: config.tradeWorkerUrl ?? 'simulated' },
    'outside world',
  );
  return { prices, venue };
}

async function main(args: readonly string[]): Promise<void> {
  const command = args[0] ?? 'serve';
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  if (command !== 'serve' && command !== 'migrate') {
    throw new Error(`Unknown command "${command}"; use "serve" (default) or "migrate"`);
  }

  const opened = await openDatabase(config, logger);
  const { db } = opened;
  const applied = await migrate(db, { logger });
  if (command === 'migrate') {
    logger.info({ applied }, applied.length ? 'migrations applied' : 'database already up to date');
    await opened.close();
    return;
  }

  const inspector = config.sagaInspect
    ? await startStatelyInspector(config.inspectPort, config.host)
    : undefined;
  if (inspector) logger.info({ url: inspector.url }, 'Stately inspector bridge: open this URL in a browser');

  const { prices, venue } = outsideWorld(config, logger);
  const { store, orders, delivery } = wireOrderFlow({
    db,
    logger,
    prices,
    venue,
    currencies: config.currencies,
    settings: config.saga,
    ...(inspector ? { inspect: inspector.inspect } : {}),
  });
  delivery.start();

  const app = createApp({
    orders,
    store,
    currencies: config.currencies,
    db,
    logger,
    maxBodyBytes: config.maxBodyBytes,
  });
  const server = await serveHttp(app.fetch, { host: config.host, port: config.port });
  logger.info({ url: `http://${config.host}:${server.port}` }, 'serving');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await server.close();
    await delivery.stop();
    inspector?.stop();
    await opened.close();
    logger.info('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void stop(signal));
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
