/**
 * The one loop behind every write of the event-sourced side: load what the decision needs, decide
 * and append at the expected versions, and when another writer got there first (a version
 * conflict) load again and decide again. Order intake and the saga runner both go through it.
 */
export interface DecideAndAppend<Loaded, Result> {
  /**
   * What the decision needs. `attempt` 1 may assume instead of loading (a new order's stream is
   * empty, a just-accepted saga is its OrderAccepted): a wrong assumption costs a conflict, never
   * a mistake, since the append checks the versions it assumed.
   */
  load(attempt: number): Promise<Loaded> | Loaded;
  /** Decides and appends; throws a conflict when the stored versions are not the ones it expected. */
  decide(loaded: Loaded, attempt: number): Promise<Result>;
  /** True for the error a lost race throws (e.g. ConcurrencyError). */
  isConflict(error: unknown): boolean;
  /** Called before each retry, with the conflict (for a debug log). */
  onConflict?(error: unknown, attempt: number): void;
  /** Gives up after this many conflicts in a row, rethrowing the last (default 20). */
  readonly attempts?: number;
}

export async function decideAndAppend<Loaded, Result>(
  options: DecideAndAppend<Loaded, Result>,
): Promise<Result> {
  const attempts = options.attempts ?? 20;
  for (let attempt = 1; ; attempt++) {
    const loaded = await options.load(attempt);
    try {
      return await options.decide(loaded, attempt);
    } catch (error) {
      if (!options.isConflict(error) || attempt >= attempts) throw error;
      options.onConflict?.(error, attempt);
    }
  }
}
