import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sagaView } from '../../src/app/sagaView.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { CURRENT_SAGA_VERSION } from '../../src/machines/registry.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { sagaWorld, streams } from '../helpers/saga.ts';
import { recordVersion } from '../ops/storedSagas.ts';

describe('when sagas record the machine version they started on', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('records the current version on the OrderAccepted that starts the saga', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    const [accepted] = await world.events(orderId);
    expect(accepted?.metadata.saga_version).toBe(CURRENT_SAGA_VERSION);
    expect((await sagaView(createEventStore(db), orderId)).saga_version).toBe(CURRENT_SAGA_VERSION);
  });

  it('runs a saga stored before versions were recorded to its end, as version 1', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await db.query(`UPDATE events SET metadata = metadata - 'saga_version' WHERE aggregate_id = $1`, [
      orderId,
    ]);

    expect(await world.runner.run(orderId)).toMatchObject({ status: 'completed' });
    expect((await sagaView(createEventStore(db), orderId)).saga_version).toBe(1);
  });

  it('refuses to drive a saga of a version this process does not have, and stores nothing', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await recordVersion(db, orderId, 99);

    await expect(world.runner.run(orderId)).rejects.toThrow(/Saga version 99 is not registered/);
    expect(streams(await world.events(orderId))).toEqual({ order: ['OrderAccepted'], position: [] });
    expect(world.market.calls().quotes).toBe(0);
  });

  it('reads the version from a delivered OrderAccepted too', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    const [stored] = await world.events(orderId);
    if (stored?.event_type !== 'OrderAccepted') throw new Error('no OrderAccepted');
    const delivered = { ...stored, metadata: { ...stored.metadata, saga_version: 99 } };

    await expect(world.runner.run(orderId, { accepted: delivered })).rejects.toThrow(/Saga version 99/);
    expect(streams(await world.events(orderId)).order).toEqual(['OrderAccepted']);
  });

  it('refuses a malformed version rather than guess one', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await db.query(
      `UPDATE events SET metadata = jsonb_set(metadata, '{saga_version}', '"one"') WHERE aggregate_id = $1`,
      [orderId],
    );
    await expect(world.runner.run(orderId)).rejects.toThrow(/Malformed saga_version/);
    expect(streams(await world.events(orderId)).order).toEqual(['OrderAccepted']);
  });
});
