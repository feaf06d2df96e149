import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { orderSaga } from '../../src/machines/orderSaga.ts';
import { runReplayCheck } from '../../src/ops/replayCheck.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { withQuoteConfirmation, withRenamedQuoting } from '../machines/changedMachines.ts';
import { recordVersion, storeSagas } from './storedSagas.ts';
import type { StoredSagas } from './storedSagas.ts';

/*
 * `replay-check` over a store of its own (it reads every saga): finished and open sagas run by
 * the real runner, some stored before versions were recorded.
 */
describe('when replay-check replays the stored sagas', () => {
  let db: Database;
  let sagas: StoredSagas;
  beforeAll(async () => {
    db = await migratedPglite();
    sagas = await storeSagas(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('reports no problem for sagas of the registered version, recorded or not, in batches with progress', async () => {
    const lines: string[] = [];
    const report = await runReplayCheck(db, { batchSize: 3, print: (line) => lines.push(line) });

    expect(report.problems).toBe(0);
    expect(report.open).toMatchObject({ checked: 4, problems: 0, byVersion: { 1: 4 }, findings: {} });
    expect(report.closed).toMatchObject({ checked: 4, problems: 0, byVersion: { 1: 4 }, findings: {} });
    expect(lines).toContain('open sagas: 4 checked, 0 at risk');
    expect(lines.filter((l) => l.startsWith('all sagas: '))).toEqual([
      'all sagas: 3 of 8 read, 0 at risk',
      'all sagas: 6 of 8 read, 0 at risk',
      'all sagas: 8 of 8 read, 0 at risk',
    ]);
    expect(lines.at(-1)).toBe('problems: 0');
  });

  it('finds the sagas a deliberately incompatible change would strand when it keeps the version', async () => {
    const report = await runReplayCheck(db, { versions: { 1: withQuoteConfirmation } });

    // Waiting on the swap, they stored PositionCreated, which the changed machine refuses; so did
    // every finished saga that got past its quote.
    expect(report.open).toMatchObject({ checked: 4, problems: 2, findings: { stuck: 2 } });
    expect(report.closed).toMatchObject({ checked: 4, problems: 3, findings: { stuck: 3 } });
    const atRisk = report.examples.map((e) => e.orderId);
    expect(atRisk).toEqual(expect.arrayContaining([...sagas.awaitingSwap, ...sagas.completed]));
    expect(atRisk).not.toContain(sagas.accepted[0]);
  });

  it('finds the sagas in flight a new version would take elsewhere, and only reports the finished ones', async () => {
    const report = await runReplayCheck(db, {
      versions: { 1: orderSaga, 2: withRenamedQuoting },
      currentVersion: 2,
    });

    expect(report.open).toMatchObject({ checked: 4, problems: 2, findings: { diverges: 2 } });
    expect(report.closed).toMatchObject({ checked: 4, problems: 0, findings: {} });
    expect(report.examples.map((e) => e.orderId).sort()).toEqual([...sagas.accepted].sort());
  });

  it('finds an open saga of a version that is not registered', async () => {
    const [orderId = ''] = sagas.awaitingSwap;
    await recordVersion(db, orderId, 2);
    const lines: string[] = [];
    const report = await runReplayCheck(db, { print: (line) => lines.push(line) });

    expect(report.problems).toBe(1);
    expect(report.open.byVersion).toEqual({ 1: 3, 2: 1 });
    expect(lines).toContain(`  open saga ${orderId} (version 2): its version 2 is not registered`);
    expect(lines.at(-1)).toBe('problems: 1');
  });
});
