import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { createOrderService } from '../../src/app/orders.ts';
import { currencies } from '../../src/domain/money.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createApp } from '../../src/http/app.ts';
import type { AppDeps } from '../../src/http/app.ts';

/** The HTTP app on `db` with the real order intake and the default currencies; `extra` adds or replaces deps. */
export function testApp(db: Database, extra: Partial<AppDeps> = {}): Hono {
  const store = createEventStore(db);
  const orders = createOrderService({ store, now: () => new Date(), newId: randomUUID });
  return createApp({ orders, store, currencies: currencies(), db, logger: silentLogger, ...extra });
}
