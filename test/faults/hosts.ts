import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { connect } from 'amqplib';
import type { Database } from '../../src/app/ports/database.ts';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { migrate } from '../../src/infra/migrations.ts';
import { serveSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import type { SimulatedMarketOptions } from '../../src/infra/venues/simulatedMarket.ts';
import { queueStates } from '../../src/ops/checkCommand.ts';
import { orderTimes, percentiles } from '../../bench/e2e/measure.ts';
import type { Percentiles } from '../../bench/e2e/measure.ts';
import { ordersEnded, submitRetrying } from '../helpers/clients.ts';
import type { RetryingClients } from '../helpers/clients.ts';
import { clusterOrder, drained, serving, startProcess, until } from '../helpers/cluster.ts';
import type { ClusterProcess } from '../helpers/cluster.ts';
import { startTcpProxy } from '../helpers/tcpProxy.ts';
import type { HostNetwork, TestHost } from './hostNetwork.ts';
import { verifyRun } from './verify.ts';
import type { Verdict } from './verify.ts';

const run = promisify(execFile);

/** A service process on a host of its own. */
export interface HostProcess extends ClusterProcess {
  readonly host: TestHost;
  readonly roles: readonly string[];
}

export interface HostSystemOptions {
  /** PostgreSQL and RabbitMQ as the test reaches them (127.0.0.1); the hosts go through proxies. */
  readonly databaseUrl: string;
  readonly amqpUrl: string;
  readonly network: HostNetwork;
  /** More environment for every service process. */
  readonly env?: Record<string, string>;
  /** The simulated market's knobs (latency, faults); default: it answers at once. */
  readonly market?: SimulatedMarketOptions;
}

/**
 * The service as separate hosts: an `api` host (api, relay, sweeper, notifier) and saga hosts,
 * each a network namespace, against one scratch PostgreSQL database and one RabbitMQ prefix. The
 * test process serves, on the network's gateways, a TCP proxy to PostgreSQL, one to RabbitMQ and
 * the simulated market (its ledger is the outside world's record of every swap).
 */
export interface HostSystem {
  /** The scratch database, reached directly (127.0.0.1) by the test. */
  readonly db: Database;
  readonly dbName: string;
  /** RabbitMQ as the test reaches it (127.0.0.1), and the system's name prefix there. */
  readonly amqpUrl: string;
  readonly prefix: string;
  readonly apiUrl: string;
  readonly market: ServedSimulatedMarket;
  readonly services: HostProcess[];
  readonly sagaHosts: HostProcess[];
  /** Starts a saga host more and waits until it consumes. */
  addSagaHost(): Promise<HostProcess>;
  /** Waits until `count` saga hosts consume the orchestrator's queue. */
  sagaConsumers(count: number): Promise<void>;
  /**
   * Messages the broker has handed to `host` and not had acked, from `rabbitmqctl list_channels`:
   * the channels are traced to the host through the RabbitMQ proxy's connections.
   */
  unackedAt(host: TestHost): Promise<number>;
  /** What unackedAt reads, for a failure message: the host's proxy ports and RabbitMQ's channels. */
  describeChannels(host: TestHost): Promise<string>;
  /** Stops the processes (draining), the proxies and the market; drops the database and topology. */
  close(): Promise<void>;
}

export async function startHostSystem(options: HostSystemOptions): Promise<HostSystem> {
  const { network } = options;
  const id = randomUUID().slice(0, 8);
  const dbName = `hst_${id}`;
  const prefix = `hst-${id}.`;
  const admin = postgresDatabase(options.databaseUrl, { max: 1 });
  await admin.exec(`CREATE DATABASE ${dbName}`);
  const direct = new URL(options.databaseUrl);
  direct.pathname = `/${dbName}`;
  const db = postgresDatabase(direct.toString(), { max: 4 });
  const services: HostProcess[] = [];
  const sagaHosts: HostProcess[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  const close = async () => {
    for (const service of services) await service.stop();
    for (const closer of closers.splice(0).reverse()) await closer().catch(() => {});
    await db.close();
    await admin.exec(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.close();
    const connection = await connect(options.amqpUrl);
    await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
    await connection.close().catch(() => {});
  };

  try {
    await migrate(db);
    const target = (url: string, port: number) => ({
      host: new URL(url).hostname,
      port: Number(new URL(url).port) || port,
    });
    const pgProxy = await startTcpProxy(target(options.databaseUrl, 5432), { host: network.databaseGateway });
    closers.push(() => pgProxy.close());
    const amqpProxy = await startTcpProxy(target(options.amqpUrl, 5672), { host: network.serviceGateway });
    closers.push(() => amqpProxy.close());
    const market = await serveSimulatedMarket({ ...options.market, host: network.serviceGateway });
    closers.push(() => market.server.close());

    const databaseUrl = new URL(direct);
    databaseUrl.host = `${pgProxy.host}:${pgProxy.port}`;
    const amqpUrl = new URL(options.amqpUrl);
    amqpUrl.host = `${amqpProxy.host}:${amqpProxy.port}`;
    // A cut host's connections stay open on the proxies' side: the broker learns of the loss only
    // through heartbeats, so they are short here (RabbitMQ's default is 60 s).
    amqpUrl.searchParams.set('heartbeat', '5');
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl.toString(),
      AMQP_URL: amqpUrl.toString(),
      AMQP_PREFIX: prefix,
      PRICE_SERVICE_URL: market.url,
      TRADE_WORKER_URL: market.url,
      DATABASE_POOL_SIZE: '8',
      ...options.env,
    };

    const startHost = async (name: string, roles: readonly string[]): Promise<HostProcess> => {
      const host = await network.addHost(name);
      const child = startProcess(
        name,
        ['serve'],
        { ...env, ROLES: roles.join(','), HOST: host.address, PORT: '8080' },
        [],
        host.wrapper,
      );
      const service = { ...child, host, roles };
      services.push(service);
      return service;
    };

    const api = await startHost('api', ['api', 'relay', 'sweeper', 'notifier']);
    const apiUrl = `http://${api.host.address}:8080`;
    await serving(api, apiUrl);

    const sagaConsumers = async (count: number): Promise<void> => {
      await until(async () => {
        for (const s of services)
          if (s.child.exitCode !== null) throw new Error(`${s.name} exited:\n${s.output()}`);
        const states = await queueStates(options.amqpUrl, prefix).catch(() => undefined);
        const consumers = new Map(states?.map((q) => [q.queue, q.consumers]));
        const [saga, notifications] = topology({ prefix }).queues;
        return (
          consumers.get(saga?.name ?? '') === count && (consumers.get(notifications?.name ?? '') ?? 0) >= 1
        );
      }, `${count} saga hosts to consume`);
    };

    /** The host's channels as RabbitMQ lists them, traced through the proxy's connections. */
    const channelsOf = async (host: TestHost) => {
      const ports = new Set(
        amqpProxy
          .links()
          .filter((link) => link.client === host.address)
          .map((link) => link.upstreamPort),
      );
      const { stdout } = await run('rabbitmqctl', [
        'list_channels',
        '--quiet',
        '--no-table-headers',
        'name',
        'messages_unacknowledged',
      ]);
      let unacked = 0;
      for (const line of stdout.split('\n')) {
        const [, port, count] = /^\S+:(\d+) -> .*\t(\d+)$/.exec(line.trim()) ?? [];
        if (ports.has(Number(port))) unacked += Number(count);
      }
      return { ports, unacked, listing: stdout };
    };
    return {
      db,
      dbName,
      amqpUrl: options.amqpUrl,
      prefix,
      apiUrl,
      market,
      services,
      sagaHosts,
      async addSagaHost() {
        const saga = await startHost(`saga${sagaHosts.length + 1}`, ['saga']);
        sagaHosts.push(saga);
        await sagaConsumers(sagaHosts.length);
        return saga;
      },
      sagaConsumers,
      async unackedAt(host) {
        return (await channelsOf(host)).unacked;
      },
      async describeChannels(host) {
        const { ports, listing } = await channelsOf(host);
        return `${host.name}'s connections through the RabbitMQ proxy leave from ports ${[...ports].join(', ') || '(none)'}; rabbitmqctl list_channels:\n${listing}`;
      },
      close,
    };
  } catch (error) {
    for (const service of services) await service.kill();
    await close().catch(() => {});
    throw error;
  }
}

/** A process's JSON log lines with message `msg` (pino: `time` in ms, `err` serialized). */
export function logged(
  service: ClusterProcess,
  msg: string,
): { readonly time: number; readonly err?: { readonly message?: string } }[] {
  return service
    .output()
    .split('\n')
    .filter((line) => line.includes(msg))
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as { time: number; err?: { message?: string } }];
      } catch {
        return [];
      }
    });
}

/** Orders on their way: the clients' answers and the users they were placed for. */
export interface Load {
  readonly users: readonly string[];
  readonly clients: RetryingClients;
  readonly count: number;
}

/**
 * `count` orders (clusterOrder: 1 in 20 above the market's liquidity) from `clients` careful
 * clients, each with an Idempotency-Key, for 20 users of their own.
 */
export function placeOrders(system: HostSystem, count: number, clients = 32): Load {
  const users = Array.from({ length: 20 }, () => randomUUID());
  return {
    users,
    count,
    clients: submitRetrying(system.apiUrl, {
      count,
      clients,
      order: (i) => clusterOrder(i, users[i % users.length] ?? ''),
    }),
  };
}

/** Orders of `load` with their terminal event so far. */
export async function endedCount(system: HostSystem, load: Load): Promise<number> {
  const [row] = await system.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM events
     WHERE event_type IN ('OrderCompleted', 'OrderFailed') AND aggregate_id = ANY($1::uuid[])`,
    [[...load.clients.ids]],
  );
  return row?.n ?? 0;
}

/** Waits until every order of `load` was accepted and has its terminal event. */
export async function allEnded(system: HostSystem, load: Load, timeoutMs = 120_000): Promise<void> {
  await load.clients.done;
  await ordersEnded(system.db, load.clients.ids, timeoutMs);
}

/**
 * Waits until the outbox, the sagas and the notifications have drained and no message is left in
 * the consumer queues (retry copies included).
 */
export async function drain(system: HostSystem): Promise<void> {
  // drained() tells the roles a process runs from its name, as startCluster names them.
  await drained({ db: system.db, services: system.services.map((s) => ({ ...s, name: s.roles.join('+') })) });
  await until(async () => {
    const states = await queueStates(system.amqpUrl, system.prefix).catch(() => undefined);
    return states?.every((q) => q.queue.endsWith('.dead') || q.messages === 0);
  }, 'the consumer queues to empty');
}

/** What the clients, the venue's ledger and the broker say of the run, checked by verifyRun. */
export async function verifyLoad(system: HostSystem, load: Load): Promise<Verdict> {
  return verifyRun({
    db: system.db,
    answers: load.clients.answers,
    users: load.users,
    ledger: system.market.market.venue.ledger(),
    queues: await queueStates(system.amqpUrl, system.prefix),
  });
}

/** Orders completed per second and accept → terminal latency, from the stored events. */
export async function throughputOf(
  system: HostSystem,
  load: Load,
): Promise<{ perSecond: number; seconds: number; latency: Percentiles }> {
  const times = await orderTimes(system.db, [...load.clients.ids]);
  const first = Math.min(...times.map((t) => t.accepted));
  const last = Math.max(...times.map((t) => t.terminal ?? -Infinity));
  const seconds = (last - first) / 1000;
  return {
    perSecond: Math.round((times.length / seconds) * 10) / 10,
    seconds: Math.round(seconds * 10) / 10,
    latency: percentiles(times.flatMap((t) => (t.terminal === null ? [] : [t.terminal - t.accepted]))),
  };
}

/** The sagas the sweeper found stalled and resumed, watched while a scenario runs. */
export function watchSweeps(db: Database): { readonly resumed: Set<string>; stop(): Promise<void> } {
  const resumed = new Set<string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const rows = await db
        .query<{ order_id: string }>(`SELECT order_id::text FROM open_sagas WHERE resumes > 0`)
        .catch(() => []);
      for (const row of rows) resumed.add(row.order_id);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    resumed,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** The machine's busy CPU (every core, every process, other work included) over a window. */
export function machineCpu(): { close(): { cores: number } } {
  const read = () => {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: fields.reduce((a, b) => a + b, 0) - idle, at: Date.now() };
  };
  const start = read();
  return {
    close() {
      const end = read();
      // /proc/stat counts USER_HZ ticks, 100 a second on Linux.
      return {
        cores: Math.round(((end.busy - start.busy) / 100 / ((end.at - start.at) / 1000)) * 100) / 100,
      };
    },
  };
}
