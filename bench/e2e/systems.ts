/**
 * The systems `npm run bench` compares, each started from scratch and torn down after:
 *
 * - `embedded`: `serve` with no DATABASE_URL and no AMQP_URL on a scratch DATA_DIR: PGlite, the
 *   in-process bus and the simulated market in one process (the default a user gets);
 * - `one`: PostgreSQL + RabbitMQ, one process with every role, the simulated market in it;
 * - `cores`: the same command with WORKERS (a supervisor forking a worker per core, sharing the
 *   HTTP port; it serves the simulated market to its workers). Its whole process tree is measured;
 * - `split`: `api+relay+sweeper`, `saga`, `saga+notifier` and the simulated market as a process
 *   of its own (as `bench:cluster`).
 *
 * The PostgreSQL modes get a scratch database and RabbitMQ prefix (startCluster) that are dropped
 * at the end. Every mode sends Telegram notifications to the emulator.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from '../../src/app/ports/database.ts';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { drained, startCluster, startProcess, until } from '../../test/helpers/cluster.ts';
import type { ClusterProcess } from '../../test/helpers/cluster.ts';
import { freePort } from '../../test/helpers/server.ts';

export const MODES = ['embedded', 'one', 'cores', 'split'] as const;
export type Mode = (typeof MODES)[number];

export const MODE_TITLES: Record<Mode, string> = {
  embedded: 'embedded (PGlite, in-process bus), one process',
  one: 'PostgreSQL + RabbitMQ, one process, all roles',
  cores: 'PostgreSQL + RabbitMQ, all cores (WORKERS)',
  split: 'PostgreSQL + RabbitMQ, 3 processes + market',
};

export interface System {
  readonly mode: Mode;
  readonly apiUrl: string;
  /** The processes to measure, each with its descendants. */
  readonly roots: () => readonly { readonly pid: number; readonly name: string }[];
  /** Name of the scratch PostgreSQL database (none for embedded). */
  readonly database: string | undefined;
  /** Waits until nothing is left in flight (outbox, queues), beyond the notifications. */
  settle(): Promise<void>;
  /** Throws with the process's last output if one of ours has exited. */
  alive(): void;
  /**
   * Runs `work` on the system's database, then tears the system down: PostgreSQL while it runs;
   * PGlite once the service has stopped (it is single-process: the data directory is its own).
   */
  finish<T>(work: (db: Database) => Promise<T>): Promise<T>;
  /** Tears down without measuring (after a failure). */
  abort(): Promise<void>;
}

export interface SystemOptions {
  readonly databaseUrl: string | undefined;
  readonly amqpUrl: string | undefined;
  readonly telegram: { readonly apiRoot: string; readonly token: string };
  /** WORKERS for the `cores` mode (`auto` or a number). */
  readonly workers: string;
  /** Node flags for every service process (e.g. --cpu-prof); none by default. */
  readonly nodeArgs?: readonly string[];
  /** Told, as soon as there is something to clean up, how to tear it down (for Ctrl-C). */
  readonly onCleanUp?: (abort: () => Promise<void>) => void;
}

const pids = (processes: readonly (ClusterProcess | undefined)[]) =>
  processes.flatMap((p) => (p?.child.pid === undefined ? [] : [{ pid: p.child.pid, name: p.name }]));

function alive(processes: readonly ClusterProcess[]): void {
  for (const p of processes)
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(
        `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output().slice(-3000)}`,
      );
}

/** The data directory and the lock proper-lockfile keeps beside it (left by a service that was killed). */
async function removeDataDir(dataDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
  await rm(`${dataDir}.lock`, { recursive: true, force: true });
}

async function startEmbedded(options: SystemOptions): Promise<System> {
  const dataDir = await mkdtemp(join(tmpdir(), 'npm-run-bench-embedded-'));
  const port = await freePort();
  const service = startProcess(
    'embedded',
    ['serve'],
    {
      DATABASE_URL: '',
      AMQP_URL: '',
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      TELEGRAM_API_ROOT: options.telegram.apiRoot,
      TELEGRAM_BOT_TOKEN: options.telegram.token,
    },
    options.nodeArgs,
  );
  const apiUrl = `http://127.0.0.1:${port}`;
  const cleanUp = async () => {
    await service.stop();
    await removeDataDir(dataDir);
  };
  options.onCleanUp?.(cleanUp);
  try {
    await until(() => {
      alive([service]);
      return fetch(`${apiUrl}/health`).then(
        (r) => r.ok,
        () => false,
      );
    }, 'the embedded service to serve');
  } catch (error) {
    await service.kill();
    await cleanUp();
    throw error;
  }
  return {
    mode: 'embedded',
    apiUrl,
    roots: () => pids([service]),
    database: undefined,
    settle: async () => {},
    alive: () => alive([service]),
    async finish(work) {
      const code = await service.stop();
      if (code !== 0)
        throw new Error(`the embedded service exited with ${code}:\n${service.output().slice(-3000)}`);
      const db = await pgliteDatabase(dataDir);
      try {
        return await work(db);
      } finally {
        await db.close();
        await removeDataDir(dataDir);
      }
    },
    abort: cleanUp,
  };
}

const SPLIT = [['api', 'relay', 'sweeper'], ['saga'], ['saga', 'notifier']];

async function startOnPostgres(mode: Exclude<Mode, 'embedded'>, options: SystemOptions): Promise<System> {
  if (!options.databaseUrl || !options.amqpUrl)
    throw new Error(`--mode ${mode} needs DATABASE_URL and AMQP_URL`);
  const cluster = await startCluster({
    databaseUrl: options.databaseUrl,
    amqpUrl: options.amqpUrl,
    // One process with every role (ROLES unset), or the design's three.
    processes: mode === 'split' ? SPLIT : [[]],
    market: mode === 'split',
    telegram: options.telegram,
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    // One process gets the service's default pool; the three of split share PostgreSQL's 100
    // connections with the rest of the machine, as bench:cluster runs them.
    env: {
      ...(mode === 'split' ? {} : { DATABASE_POOL_SIZE: '20' }),
      ...(mode === 'cores' ? { WORKERS: options.workers } : {}),
    },
  });
  options.onCleanUp?.(() => cluster.close());
  const processes = () => [...cluster.services, ...(cluster.market ? [cluster.market] : [])];
  return {
    mode,
    apiUrl: cluster.apiUrl,
    roots: () => pids(processes()),
    database: new URL(cluster.databaseUrl).pathname.slice(1),
    settle: () => drained(cluster),
    alive: () => alive(processes()),
    async finish(work) {
      try {
        return await work(cluster.db);
      } finally {
        await cluster.close();
      }
    },
    abort: () => cluster.close(),
  };
}

export function startSystem(mode: Mode, options: SystemOptions): Promise<System> {
  return mode === 'embedded' ? startEmbedded(options) : startOnPostgres(mode, options);
}
