import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { createOrderService } from '../../src/app/orders.ts';
import { createPositionService } from '../../src/app/positions.ts';
import { createReadModelQueries } from '../../src/app/readModels.ts';
import { createSagaViews } from '../../src/app/sagaView.ts';
import { currencies } from '../../src/domain/money.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createHealthProbe } from '../../src/infra/health.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';
import { createReadModels } from '../../src/infra/readModels.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createApp } from '../../src/http/app.ts';
import type { AppDeps } from '../../src/http/app.ts';

/** The HTTP app on `db` with the real order intake and the default currencies; `extra` adds or replaces deps. */
export function testApp(db: Database, extra: Partial<AppDeps> = {}): Hono {
  const store = createEventStore(db);
  const orders = createOrderService({
    store,
    now: () => new Date(),
    newId: randomUUID,
    keys: createIdempotencyKeys(db),
  });
  return createApp({
    orders,
    positions: createPositionService(store),
    sagas: createSagaViews(store),
    readModels: createReadModelQueries(createReadModels(db)),
    health: createHealthProbe(db),
    currencies: currencies(),
    logger: silentLogger,
    ...extra,
  });
}
