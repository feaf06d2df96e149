import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import type { Database, Queryable } from '../../app/ports/database.ts';

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
export async function pgliteDatabase(dataDir?: string): Promise<Database> {
  const db = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  return {
    kind: 'pglite',
    ...queryable(db),
    transaction: (work) => db.transaction((tx) => work(queryable(tx))),
    async listen(channel, onNotify) {
      const unsubscribe = await db.listen(channel, onNotify);
      return () => unsubscribe();
    },
    close: () => db.close(),
  };
}
