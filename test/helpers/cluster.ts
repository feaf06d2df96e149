import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { queueStates } from '../../src/ops/checkCommand.ts';
import { ROLES } from '../../src/config.ts';
import type { Database, Queryable } from '../../src/app/ports/database.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { freePort } from './server.ts';
import { until } from './wait.ts';

export { until };

/** The service's entry point, run the way `npm start` runs it. */
const MAIN = ['--import', 'tsx', 'src/main.ts'];

/** One service process of the cluster, with its output kept for failure reports. */
export interface ClusterProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  output(): string;
  /** SIGTERM (drain) and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, nothing drained. */
  kill(): Promise<number | null>;
}

/**
 * Runs `src/main.ts <args>` as a child process, its output kept (last 100-200 kB). `wrapper` is a
 * command that runs it, e.g. `['ip', 'netns', 'exec', ns]` to run it in a network namespace: it
 * must exec node in its place, so that the child's pid (and its signals) are node's.
 */
export function startProcess(
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
  wrapper: readonly string[] = [],
): ClusterProcess {
  const [command = process.execPath, ...before] = [...wrapper, process.execPath];
  const child = spawn(command, [...before, ...nodeArgs, ...MAIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    return exited;
  };
  return {
    name,
    child,
    exited,
    output: () => output,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
  };
}

/** Waits until the process answers `GET {url}/health`; fails at once if it exits first. */
export async function serving(service: ClusterProcess, url: string): Promise<void> {
  await until(
    () =>
      service.child.exitCode === null
        ? fetch(`${url}/health`).then(
            (r) => r.ok,
            () => false,
          )
        : Promise.reject(new Error(`${service.name} exited:\n${service.output()}`)),
    `${service.name} to serve`,
  );
}

/** The simulated market (`npm run market`) in a process of its own, once it serves. */
export async function startMarket(
  nodeArgs: readonly string[] = [],
): Promise<ClusterProcess & { url: string }> {
  const port = await freePort();
  const market = startProcess('market', ['market'], { MARKET_PORT: String(port) }, nodeArgs);
  const url = `http://127.0.0.1:${port}`;
  try {
    await until(() => {
      if (market.child.exitCode !== null) throw new Error(`the market exited:\n${market.output()}`);
      return fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      );
    }, 'the market to serve');
  } catch (error) {
    await market.kill();
    throw error;
  }
  return { ...market, url };
}

/**
 * One service process: its ROLES (an empty list leaves ROLES unset: every role, as `npm start`
 * runs), or its ROLES with environment of its own (e.g. a worker whose clock is off).
 */
export type ServiceSpec =
  readonly string[] | { readonly roles: readonly string[]; readonly env?: Record<string, string> };

/** The roles of a service spec. */
export const rolesOf = (spec: ServiceSpec): readonly string[] => ('roles' in spec ? spec.roles : spec);

export interface ClusterOptions {
  readonly databaseUrl: string;
  readonly amqpUrl: string;
  /** Each service process, e.g. [['api', 'relay'], ['saga'], ['saga', 'notifier']]. */
  readonly processes: readonly ServiceSpec[];
  /**
   * Serve the simulated market from a process of its own (the default), shared by every service
   * process; false: no PRICE_SERVICE_URL, so each process has the simulated market in its memory
   * (right for one process, or for a supervisor that serves it to its workers).
   */
  readonly market?: boolean;
  /**
   * A simulated market served elsewhere (e.g. by the test process, which scripts its faults and
   * reads its ledger): PRICE_SERVICE_URL and TRADE_WORKER_URL of every process and of `check`.
   */
  readonly marketUrl?: string;
  /** More environment for every service process (notification settings, saga settings…). */
  readonly env?: Record<string, string>;
  /** Node options for the service processes, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  readonly nodeArgs?: readonly string[];
  /** A Bot API (the emulator) for the notifier: TELEGRAM_API_ROOT and TELEGRAM_BOT_TOKEN. */
  readonly telegram?: { readonly apiRoot: string; readonly token: string };
  /**
   * `host:port` through which the processes reach PostgreSQL instead (a proxy the test can cut);
   * the harness's own connection and `check` keep `databaseUrl`.
   */
  readonly databaseHost?: string;
  /** Names the scratch database and the AMQP prefix: `<label>_<random>` (default `cluster`). */
  readonly label?: string;
  /** The same for RabbitMQ: `host:port` of a proxy the processes reach the broker through. */
  readonly amqpHost?: string;
}

/** A service process of the cluster: how it was started, to start it again the same way. */
export interface ClusterService extends ClusterProcess {
  readonly spec: ServiceSpec;
  /** The HTTP port it serves on (its PORT). */
  readonly port: number;
}

/** Whether `process` was started by startService (and so can be started again the same way). */
export const isService = (process: ClusterProcess): process is ClusterService => 'spec' in process;

export interface Cluster {
  /** The scratch database the processes share. */
  readonly db: Database;
  readonly databaseUrl: string;
  /** The api process's URL. */
  readonly apiUrl: string;
  /** The shared simulated market (price service and trade worker); none with `market: false`. */
  readonly marketUrl: string | undefined;
  readonly market: ClusterProcess | undefined;
  /** Exchange and queue name prefix of this cluster. */
  readonly prefix: string;
  readonly env: Record<string, string>;
  /** Its service processes (those startService started are ClusterServices: see isService). */
  readonly services: ClusterProcess[];
  /**
   * Starts another service process (e.g. to replace a killed one); `port` keeps a replaced api's
   * address, so its clients need not learn a new one.
   */
  startService(spec: ServiceSpec, options?: { readonly port?: number }): Promise<ClusterService>;
  /** Runs `src/main.ts check` with the cluster's settings; resolves with its exit code and report. */
  check(): Promise<{ code: number | null; report: string }>;
  /** Stops every process (draining), drops the database and the topology. */
  close(options?: { keep?: boolean }): Promise<void>;
}

/**
 * Several service processes against one scratch PostgreSQL database, one RabbitMQ (under a name
 * prefix of their own) and one simulated market served over HTTP, so that a swap executed by one
 * process is known to the others, as with a real venue.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const id = randomUUID().slice(0, 8);
  const admin = postgresDatabase(options.databaseUrl, { max: 1 });
  const dbName = `${options.label ?? 'cluster'}_${id}`;
  await admin.exec(`CREATE DATABASE ${dbName}`);
  const target = new URL(options.databaseUrl);
  target.pathname = `/${dbName}`;
  const databaseUrl = target.toString();
  if (options.databaseHost) target.host = options.databaseHost;
  const servicesDatabaseUrl = target.toString();
  const servicesAmqpUrl = new URL(options.amqpUrl);
  if (options.amqpHost) servicesAmqpUrl.host = options.amqpHost;
  const prefix = `${options.label ?? 'cluster'}-${id}.`;
  const market =
    options.market === false || options.marketUrl ? undefined : await startMarket(options.nodeArgs);
  const marketUrl = options.marketUrl ?? market?.url;
  const env: Record<string, string> = {
    DATABASE_URL: servicesDatabaseUrl,
    AMQP_URL: servicesAmqpUrl.toString(),
    AMQP_PREFIX: prefix,
    ...(marketUrl ? { PRICE_SERVICE_URL: marketUrl, TRADE_WORKER_URL: marketUrl } : {}),
    // Several processes and parallel test files share PostgreSQL's 100 connections.
    DATABASE_POOL_SIZE: '8',
    ...(options.telegram
      ? { TELEGRAM_API_ROOT: options.telegram.apiRoot, TELEGRAM_BOT_TOKEN: options.telegram.token }
      : {}),
    ...options.env,
  };
  const services: ClusterProcess[] = [];
  const db = postgresDatabase(databaseUrl, { max: 4 });

  const close = async (closeOptions: { keep?: boolean } = {}) => {
    for (const service of services) await service.stop();
    await market?.stop();
    await db.close();
    if (closeOptions.keep) return;
    await admin.exec(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.close();
    const connection = await connect(options.amqpUrl);
    await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
    await connection.close().catch(() => {});
  };

  try {
    // Migrate once before the services start, as a deployment would.
    const migrator = startProcess('migrate', ['migrate'], env);
    if ((await migrator.exited) !== 0) throw new Error(`migrate failed:\n${migrator.output()}`);

    let apiUrl = '';
    const startService = async (
      spec: ServiceSpec,
      serviceOptions: { readonly port?: number } = {},
    ): Promise<ClusterService> => {
      const roles = rolesOf(spec);
      const port = serviceOptions.port ?? (await freePort());
      const started = startProcess(
        (roles.length > 0 ? roles : ROLES).join('+'),
        ['serve'],
        {
          ...env,
          ...(roles.length > 0 ? { ROLES: roles.join(',') } : {}),
          PORT: String(port),
          ...('roles' in spec ? spec.env : {}),
        },
        options.nodeArgs,
      );
      const service: ClusterService = { ...started, spec, port };
      services.push(service);
      if (roles.length === 0 || roles.includes('api')) {
        apiUrl = `http://127.0.0.1:${port}`;
        await serving(service, apiUrl);
      }
      return service;
    };
    for (const spec of options.processes) await startService(spec);

    // Consumers are up once every queue has as many consumers as processes that consume it.
    const topo = topology({ prefix });
    const expected = topo.queues.map(
      (q) =>
        options.processes
          .map(rolesOf)
          .filter(
            (roles) =>
              roles.length === 0 || roles.includes(q.name.endsWith('notifications') ? 'notifier' : 'saga'),
          ).length,
    );
    await until(async () => {
      for (const s of services)
        if (s.child.exitCode !== null) throw new Error(`${s.name} exited:\n${s.output()}`);
      // Until the first consumer declares them, the queues do not exist: not ready yet.
      const states = await queueStates(options.amqpUrl, prefix).catch(() => undefined);
      const consumers = new Map(states?.map((q) => [q.queue, q.consumers]));
      return topo.queues.every((q, i) => (consumers.get(q.name) ?? 0) >= (expected[i] ?? 0));
    }, 'every consumer to attach');

    return {
      db,
      databaseUrl,
      apiUrl,
      marketUrl,
      market,
      prefix,
      env,
      services,
      startService,
      async check() {
        const checker = startProcess('check', ['check'], {
          ...env,
          DATABASE_URL: databaseUrl,
          AMQP_URL: options.amqpUrl,
        });
        return { code: await checker.exited, report: checker.output() };
      },
      close,
    };
  } catch (error) {
    for (const p of [...(market ? [market] : []), ...services]) await p.kill();
    await close().catch(() => {});
    throw error;
  }
}

/** What is still under way in a cluster's database (all zero once it has drained). */
export interface DrainState {
  /** Accepted orders with no terminal event. */
  readonly open: number;
  /** Outbox rows not yet published. */
  readonly unpublished: number;
  /** OrderAccepted events the orchestrator has not recorded as processed. */
  readonly untaken: number;
  /** Terminal events the notifier has not recorded as processed. */
  readonly unnotified: number;
  /** Notifications still being sent (or waiting for a retry). */
  readonly sending: number;
}

/** Counts what is still under way, in one statement. */
export async function drainState(db: Queryable): Promise<DrainState> {
  const [row] = await db.query<DrainState>(`
    SELECT (SELECT count(*) FROM events a WHERE a.event_type = 'OrderAccepted'
              AND NOT EXISTS (SELECT 1 FROM events t WHERE t.aggregate_id = a.aggregate_id
                              AND t.event_type IN ('OrderCompleted', 'OrderFailed')))::int AS open,
           (SELECT count(*) FROM outbox WHERE NOT published)::int AS unpublished,
           (SELECT count(*) FROM events e WHERE e.event_type = 'OrderAccepted'
              AND NOT EXISTS (SELECT 1 FROM processed_events p
                              WHERE p.event_id = e.event_id AND p.processed_by = 'saga-orchestrator'))::int AS untaken,
           (SELECT count(*) FROM events e WHERE e.event_type IN ('OrderCompleted', 'OrderFailed')
              AND NOT EXISTS (SELECT 1 FROM processed_events p
                              WHERE p.event_id = e.event_id AND p.processed_by = 'notifier'))::int AS unnotified,
           (SELECT count(*) FROM notifications WHERE status = 'sending')::int AS sending`);
  if (!row) throw new Error('drainState: no row');
  return row;
}

/**
 * Waits until the outbox is published, every OrderAccepted was taken by the orchestrator and every
 * terminal order seen by the notifier (for the roles that run). A message the orchestrator was
 * told to retry later (the database was down) waits out its backoff unacked: stopping then would
 * put it back on the queue, and `check` would find the queue not drained.
 */
export async function drained(cluster: Pick<Cluster, 'db' | 'services'>): Promise<void> {
  const runs = (role: string) => cluster.services.some((s) => s.name.split('+').includes(role));
  const [orchestrating, notifying] = [runs('saga'), runs('notifier')];
  await until(async () => {
    const state = await drainState(cluster.db);
    return (
      state.unpublished === 0 &&
      (!orchestrating || state.untaken === 0) &&
      (!notifying || state.unnotified === 0)
    );
  }, 'the outbox, the sagas and the notifications to drain');
}

export interface ClusterRun {
  readonly orders: number;
  readonly completed: number;
  readonly failed: number;
  /** First submission → last terminal event. */
  readonly ms: number;
  /** OrderAccepted → terminal event, from the events' recording times. */
  readonly latency: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly orderIds: readonly string[];
  /** OrderFailed reasons and how many orders failed with each. */
  readonly failures: Readonly<Record<string, number>>;
}

/** Gives `userId` a Telegram chat through the API. */
export async function setTelegramChat(apiUrl: string, userId: string, chatId: string): Promise<void> {
  const response = await fetch(`${apiUrl}/users/${encodeURIComponent(userId)}/channels`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ telegram_chat_id: chatId }),
  });
  if (response.status !== 200) throw new Error(`PUT channels → ${response.status}: ${await response.text()}`);
}

/** Every 20th order is above the simulated market's liquidity (1M USD per pair by default). */
export function clusterOrder(i: number, userId: string) {
  const large = i % 20 === 19;
  return {
    user_id: userId,
    from_amount: large ? '5000000' : String(10 + (i % 990)),
    from_currency: 'USDT',
    to_currency: i % 2 === 0 ? 'BTC' : 'ETH',
    order_type: 'market',
  };
}

/**
 * Submits `orders` orders over HTTP from `clients` concurrent clients, then waits until every one
 * has its terminal event.
 */
export async function runClusterOrders(
  cluster: Cluster,
  options: { readonly orders: number; readonly clients: number; readonly users?: readonly string[] },
): Promise<ClusterRun> {
  const users = options.users ?? Array.from({ length: 50 }, () => randomUUID());
  // Every user has a Telegram chat (chat id = position in the list + 1000).
  for (const [i, user] of users.entries()) await setTelegramChat(cluster.apiUrl, user, String(1000 + i));
  const orderIds: string[] = [];
  const started = Date.now();
  let next = 0;
  const client = async () => {
    while (next < options.orders) {
      const i = next++;
      const response = await fetch(`${cluster.apiUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(clusterOrder(i, users[i % users.length] ?? randomUUID())),
      });
      if (response.status !== 202) {
        const api = cluster.services.find((s) => s.name.startsWith('api'));
        throw new Error(
          `POST /orders → ${response.status}: ${await response.text()}\n${api?.output().slice(-3000) ?? ''}`,
        );
      }
      orderIds.push(((await response.json()) as { order_id: string }).order_id);
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  const terminal = `SELECT count(*)::int AS n FROM events WHERE event_type IN ('OrderCompleted', 'OrderFailed')`;
  await until(
    async () => {
      for (const s of cluster.services)
        if (s.child.exitCode !== null) throw new Error(`${s.name} exited:\n${s.output()}`);
      const [row] = await cluster.db.query<{ n: number }>(terminal);
      return (row?.n ?? 0) >= options.orders;
    },
    `${options.orders} terminal events`,
    Math.max(60_000, options.orders * 50),
    200,
  );
  const ms = Date.now() - started;
  await drained(cluster);
  const [stats] = await cluster.db.query<{
    completed: number;
    failed: number;
    p50: number;
    p99: number;
    max: number;
  }>(`
    SELECT count(*) FILTER (WHERE t.event_type = 'OrderCompleted')::int AS completed,
           count(*) FILTER (WHERE t.event_type = 'OrderFailed')::int AS failed,
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.created_at - a.created_at)) * 1000)::int AS p50,
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM t.created_at - a.created_at)) * 1000)::int AS p99,
           round(max(extract(epoch FROM t.created_at - a.created_at)) * 1000)::int AS max
    FROM events a JOIN events t ON t.aggregate_id = a.aggregate_id
    WHERE a.event_type = 'OrderAccepted' AND t.event_type IN ('OrderCompleted', 'OrderFailed')`);
  const reasons = await cluster.db.query<{ reason: string; n: number }>(
    `SELECT event_data->>'reason' AS reason, count(*)::int AS n FROM events
     WHERE event_type = 'OrderFailed' GROUP BY 1 ORDER BY 1`,
  );
  return {
    failures: Object.fromEntries(reasons.map((r) => [r.reason, r.n])),
    orders: options.orders,
    completed: stats?.completed ?? 0,
    failed: stats?.failed ?? 0,
    ms,
    latency: { p50: stats?.p50 ?? 0, p99: stats?.p99 ?? 0, max: stats?.max ?? 0 },
    orderIds,
  };
}
