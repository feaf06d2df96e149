import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import process from 'node:process';
import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import type { Database, Queryable } from '../../app/ports/database.ts';
import { preparedQueries } from './pglitePrepared.ts';

/**
 * PostgreSQL settings the embedded database starts with, over PGlite's own. PGlite's data
 * directory comes with PostgreSQL's `shared_buffers` of 128MB, and in WASM the buffer pool is part
 * of the instance's linear memory, which is touched as it is set up and never handed back to the
 * system: 128MB alone made a bare instance ~290 MB resident. 16MB holds the tables' hot pages
 * (the tails of the append-only tables and their indexes); pages read past it come from the
 * operating system's file cache (`bench:embedded` measures both; README "Benchmarks").
 */
export const DEFAULT_PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '16MB',
};

export interface PgliteOptions {
  /** PostgreSQL settings (`name: value`), passed at start as `-c name=value`; over the defaults. */
  readonly settings?: Readonly<Record<string, string>>;
}

function startParams(settings: Readonly<Record<string, string>>): string[] {
  return [
    ...PGlite.defaultStartParams,
    ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
}

/**
 * Creates the database files of a new data directory in a short-lived process. PGlite runs initdb
 * in a second PGlite instance and copies its result over, and that instance's memory (two WASM
 * heaps, the files as a tarball) stays resident in the process long after it is garbage: a first
 * start was ~490 MB resident after 2,000 orders, a restart on the same directory ~300 MB. A process
 * that exits gives all of it back. Node only: on Deno (no run permission in `deno task start`) the
 * first start initialises in process.
 */
async function initialiseInChild(dataDir: string, params: readonly string[]): Promise<void> {
  // The CommonJS entry by absolute path: the child needs neither tsx nor our working directory.
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const script = `
    const { PGlite } = require(process.argv[1]);
    PGlite.create({ dataDir: process.argv[2], startParams: JSON.parse(process.argv[3]) })
      .then((db) => db.close())
      .catch((error) => { console.error(error); process.exitCode = 1; });`;
  const child = spawn(process.execPath, ['-e', script, entry, dataDir, JSON.stringify(params)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`initialising the PGlite data directory ${dataDir} failed:\n${stderr}`);
}

function queryable(db: PGlite | Transaction): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      const result = await db.query<Row>(text, params as unknown[]);
      return result.rows;
    },
    async exec(script: string) {
      await db.exec(script);
    },
  };
}

/**
 * A Database on an embedded PGlite instance: file-backed under `dataDir`, or in memory when
 * `dataDir` is undefined (tests). PGlite has a single backend; it queues concurrent queries and
 * holds the queue for the length of a transaction.
 */
export async function pgliteDatabase(dataDir?: string, options: PgliteOptions = {}): Promise<Database> {
  const params = startParams({ ...DEFAULT_PGLITE_SETTINGS, ...options.settings });
  const isDeno = 'Deno' in globalThis;
  if (dataDir !== undefined && !isDeno && !existsSync(join(dataDir, 'PG_VERSION'))) {
    await initialiseInChild(dataDir, params);
  }
  const db = await PGlite.create({ ...(dataDir === undefined ? {} : { dataDir }), startParams: params });
  const prepared = preparedQueries(db);
  return {
    kind: 'pglite',
    ...queryable(db),
    // Outside transactions (PGlite's transaction holds the query lock the prepared path takes).
    query: <Row>(text: string, params: readonly unknown[] = []) =>
      prepared.query<Row>(text, params) ?? db.query<Row>(text, params as unknown[]).then((r) => r.rows),
    transaction: (work) => db.transaction((tx) => work(queryable(tx))),
    async listen(channel, onNotify) {
      const unsubscribe = await db.listen(channel, onNotify);
      return () => unsubscribe();
    },
    close: () => db.close(),
  };
}
