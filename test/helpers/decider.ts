import { expect } from 'vitest';

/** The outcomes a test can expect once a command has been given. */
export interface DeciderThen<Event> {
  /** The command produces exactly these events (an empty list for an idempotent no-op). */
  then(expected: readonly Event[]): void;
  /** The command is refused with this error type, and a message matching `message` when given. */
  thenThrows(errorType: abstract new (...args: never[]) => Error, message?: RegExp | string): void;
}

/**
 * Given/when/then for a decider: fold `events` from `initial`, decide `command` on the result,
 * and assert on what comes out.
 *
 * @example given(decideOrder, evolveOrder, initialOrderState)([accepted]).when(quote).then([quoted])
 */
export function given<Command, Event, State>(
  decide: (command: Command, state: State) => readonly Event[],
  evolve: (state: State, event: Event) => State,
  initial: State,
): (events?: readonly Event[]) => { when(command: Command): DeciderThen<Event> } {
  return (events = []) => ({
    when(command) {
      const run = (): readonly Event[] => decide(command, events.reduce(evolve, initial));
      return {
        then(expected) {
          expect(run()).toStrictEqual(expected);
        },
        thenThrows(errorType, message) {
          let thrown: unknown;
          try {
            run();
          } catch (error) {
            thrown = error;
          }
          expect(thrown, 'expected the command to be refused').toBeInstanceOf(errorType);
          if (message !== undefined) expect((thrown as Error).message).toMatch(message);
        },
      };
    },
  });
}
