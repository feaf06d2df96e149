import process from 'node:process';
import type { Worker } from 'node:cluster';
import type { Config } from '../config.ts';
import type { Logger } from './logger.ts';
import { serveSimulatedMarket } from './venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from './venues/simulatedHttpServer.ts';

/** A worker that dies this soon after it started counts as a failed start: the next waits longer. */
const STEADY_MS = 30_000;
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** How long past SHUTDOWN_TIMEOUT_MS the supervisor waits for its workers' own timers. */
const GRACE_MS = 2_000;

export interface Supervision {
  /** Resolves with the exit code once every worker has stopped. */
  readonly done: Promise<number>;
}

/** Fails, naming why, when WORKERS > 1 cannot work with this configuration. */
export function assertCanSupervise(config: Config): void {
  if ('Deno' in globalThis)
    throw new Error('WORKERS > 1 needs Node (node:cluster); on Deno, start one process per core');
  if (!config.databaseUrl || !config.amqpUrl)
    throw new Error(
      'WORKERS > 1 needs DATABASE_URL and AMQP_URL: the embedded database and the in-process bus belong to one process',
    );
  if (!config.priceServiceUrl !== !config.tradeWorkerUrl)
    throw new Error('WORKERS > 1: set both PRICE_SERVICE_URL and TRADE_WORKER_URL, or neither');
}

/**
 * `serve` with WORKERS > 1: this process forks that many worker processes (node:cluster), each
 * running `serve` with the configured ROLES. The workers share the HTTP port (the cluster hands
 * connections to them in turn), the database and the broker, so every core works on orders; the
 * guarantees are the same as for separate processes (a relay's claims and the consumers'
 * deliveries are shared through PostgreSQL and RabbitMQ).
 *
 * - Without PRICE_SERVICE_URL and TRADE_WORKER_URL, the supervisor serves the simulated market
 *   itself and hands its URL to the workers: processes that trade must share one venue, as a
 *   swap retried by another process must meet the same idempotency key.
 * - A worker that exits unexpectedly is started again, after a delay that doubles while workers
 *   keep dying young (0.5 s up to 30 s). What it held is redelivered (unacked messages) or
 *   swept (its sagas), as after any crash.
 * - SIGTERM or SIGINT stops every worker gracefully (each drains as a single process does, within
 *   SHUTDOWN_TIMEOUT_MS) and exits 0 once all have; a second signal, or workers still running 2 s
 *   past SHUTDOWN_TIMEOUT_MS, kills them at once and exits 1.
 *
 * Node only: Deno does not implement node:cluster's fork.
 */
export async function superviseWorkers(config: Config, logger: Logger): Promise<Supervision> {
  assertCanSupervise(config);
  const { default: cluster } = await import('node:cluster');

  let market: ServedSimulatedMarket | undefined;
  const env: Record<string, string> = {};
  if (!config.priceServiceUrl && !config.tradeWorkerUrl) {
    market = await serveSimulatedMarket({
      seed: config.simulationSeed,
      currencies: config.currencies,
      host: '127.0.0.1',
      port: 0,
    });
    env.PRICE_SERVICE_URL = market.url;
    env.TRADE_WORKER_URL = market.url;
    logger.info({ url: market.url }, 'supervisor: serving the simulated market the workers share');
  }

  const live = new Map<number, { worker: Worker; slot: number; startedAt: number }>();
  let stopping = false;
  let failures = 0;
  let worstCode = 0;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));

  const fork = (slot: number) => {
    const worker = cluster.fork({ ...env, WORKERS: '1', WORKER_SLOT: String(slot) });
    live.set(worker.id, { worker, slot, startedAt: Date.now() });
  };

  cluster.on('exit', (worker, code, signal) => {
    const entry = live.get(worker.id);
    live.delete(worker.id);
    if (!entry) return;
    if (stopping) {
      if (code !== 0) worstCode = 1;
      logger.info({ slot: entry.slot, pid: worker.process.pid, code, signal }, 'supervisor: worker stopped');
      if (live.size === 0) void closeMarket().then(() => finish(worstCode));
      return;
    }
    failures = Date.now() - entry.startedAt < STEADY_MS ? failures + 1 : 1;
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (failures - 1));
    logger.error(
      { slot: entry.slot, pid: worker.process.pid, code, signal, restartInMs: delay },
      'supervisor: a worker exited unexpectedly; starting another (its unacked messages are redelivered, its sagas swept)',
    );
    setTimeout(() => {
      if (!stopping) fork(entry.slot);
    }, delay).unref();
  });

  const closeMarket = async () => {
    await market?.server.close();
  };

  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'supervisor: second signal; killing the workers');
      for (const { worker } of live.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, workers: live.size }, 'supervisor: stopping the workers');
    if (live.size === 0) void closeMarket().then(() => finish(0));
    for (const { worker } of live.values()) worker.process.kill('SIGTERM');
    // Each worker bounds its own stop by SHUTDOWN_TIMEOUT_MS; one that still runs a little after
    // that is stuck beyond its own timer: killed, as a second signal would.
    setTimeout(() => {
      logger.error(
        { workers: live.size, timeoutMs: config.shutdownTimeoutMs },
        'supervisor: workers still running past SHUTDOWN_TIMEOUT_MS; killing them',
      );
      for (const { worker } of live.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.shutdownTimeoutMs + GRACE_MS).unref();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));

  for (let slot = 0; slot < config.workers; slot++) fork(slot);
  logger.info({ workers: config.workers, roles: [...config.roles] }, 'supervisor: workers started');
  return { done };
}
