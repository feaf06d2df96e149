import { orderSaga } from './orderSaga.ts';
import type { OrderSagaMachine } from './orderSaga.ts';

/**
 * The released versions of the order saga machine, by number. A saga records the version it started
 * on (`saga_version` in its OrderAccepted's metadata) and is replayed with that version's machine
 * until it ends, so a change to the machine never reinterprets the history of a saga in flight.
 *
 * A change that replays every released history to the same states and pending commands (the golden
 * histories of `test/fixtures/golden/` and `npm run replay-check` say so) may keep the version.
 * Anything else gets a new one: keep the machine as it was under its number (e.g. move it to
 * `orderSagaV1.ts`), register the new machine under the next number, make it current and record
 * its golden histories (`npm run golden:update`). A version stays registered while `replay-check`
 * finds sagas of it open.
 */
export const SAGA_VERSIONS: Readonly<Record<number, OrderSagaMachine>> = { 1: orderSaga };

/** The version new sagas start on. */
export const CURRENT_SAGA_VERSION = 1;

/** Sagas accepted before versions were recorded ran on the first machine. */
export const UNRECORDED_SAGA_VERSION = 1;

/** The machine a saga of `version` is replayed and driven with; throws for a version not registered. */
export function machineFor(version: number): OrderSagaMachine {
  const machine = SAGA_VERSIONS[version];
  if (!machine) {
    // Most likely a saga started by a newer release, met by a process of an older one: it must not
    // guess with a machine that does not know the saga's history.
    throw new Error(
      `Saga version ${version} is not registered here (registered: ${Object.keys(SAGA_VERSIONS).join(', ')})`,
    );
  }
  return machine;
}

/**
 * The machine version a saga started on, from its OrderAccepted's metadata (`saga_version`).
 * Events stored before versions were recorded carry none: version 1.
 */
export function sagaVersionOf(metadata: { readonly saga_version?: unknown } | undefined): number {
  const recorded = metadata?.saga_version;
  if (recorded === undefined || recorded === null) return UNRECORDED_SAGA_VERSION;
  if (typeof recorded !== 'number' || !Number.isInteger(recorded) || recorded < 1)
    throw new Error(`Malformed saga_version in OrderAccepted metadata: ${JSON.stringify(recorded)}`);
  return recorded;
}
