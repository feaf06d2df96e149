import { describe, expect, it } from 'vitest';
import { CURRENT_SAGA_VERSION, machineFor, SAGA_VERSIONS } from '../../src/machines/registry.ts';
import { checkSagaReplay } from '../../src/machines/replayCheck.ts';
import { committedGoldenHistories, eventsOf, goldenMismatches } from './goldenHistories.ts';

/*
 * Every path of every released machine version, as the events its sagas stored (committed under
 * test/fixtures/golden/), replayed through the machine registered for that version and through
 * the current one. A change that would strand sagas in flight, or send them somewhere the
 * released machine did not, fails here: give it a new version instead (src/machines/registry.ts).
 */

const committed = committedGoldenHistories();
const cases = [...committed].flatMap(([version, histories]) =>
  [...histories].map(([name, history]) => [`v${version}/${name}`, version, history] as const),
);

describe('when the golden histories of every released saga version are replayed', () => {
  it('has golden histories for every registered version', () => {
    expect([...committed.keys()].sort()).toEqual(Object.keys(SAGA_VERSIONS).map(Number).sort());
  });

  it.each(cases)('replays %s as released, on its own version and the current one', (_, version, history) => {
    expect(history.version).toBe(version);
    expect(goldenMismatches(history, machineFor(version))).toEqual([]);
    expect(goldenMismatches(history, machineFor(CURRENT_SAGA_VERSION))).toEqual([]);
  });

  it.each(cases)(
    'leaves %s, and a saga stopped at any of its events, to be driven on',
    (_, version, history) => {
      const events = eventsOf(history);
      for (let stored = 1; stored <= events.length; stored++) {
        const check = checkSagaReplay(events.slice(0, stored), {
          version,
          recorded: machineFor(version),
          current: machineFor(CURRENT_SAGA_VERSION),
        });
        expect(check.findings, `after ${stored} events`).toEqual([]);
      }
    },
  );
});
