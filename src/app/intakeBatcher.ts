import { DatabaseUnavailableError } from './ports/database.ts';
import type {
  AppendResult,
  EventStore,
  KeyCompletion,
  StoredEvent,
  StreamAppend,
} from './ports/eventStore.ts';
import type { IdempotencyKeys, KeyClaim, KeyState } from './ports/idempotencyKeys.ts';

/*
 * Group commit for order intake. Each order costs the database a commit (its claim, its append);
 * one statement for several orders costs about one. A batcher has a few lanes: a request that
 * finds a lane idle is sent at once (no added latency when the service is quiet); while every
 * lane has a statement in flight, requests queue, and a lane that comes back takes everything
 * queued (up to `maxBatch`) as ONE statement. So batches grow with the load, by themselves.
 */

export interface BatchingOptions {
  /** Statements in flight at once (default 4). */
  readonly lanes?: number;
  /** Requests in one statement at most (default 64). */
  readonly maxBatch?: number;
}

export const DEFAULT_LANES = 4;
export const DEFAULT_MAX_BATCH = 64;

/** Runs a batch; one settled result per item, in the items' order. */
export type RunBatch<In, Out> = (items: readonly In[]) => Promise<readonly PromiseSettledResult<Out>[]>;

interface Pending<In, Out> {
  readonly item: In;
  readonly resolve: (value: Out) => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A function of one item that sends it with whatever else is queued (see above). `run` must
 * answer every item of a batch; should it throw, every item of the batch gets its error.
 */
export function createBatcher<In, Out>(
  run: RunBatch<In, Out>,
  options: BatchingOptions = {},
): (item: In) => Promise<Out> {
  const lanes = options.lanes ?? DEFAULT_LANES;
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(lanes) || lanes < 1) throw new Error(`lanes must be an integer >= 1, got ${lanes}`);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new Error(`maxBatch must be an integer >= 1, got ${maxBatch}`);
  }
  const queue: Pending<In, Out>[] = [];
  let busy = 0;

  async function lane(): Promise<void> {
    busy++;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, maxBatch);
        let results: readonly PromiseSettledResult<Out>[];
        try {
          results = await run(batch.map((pending) => pending.item));
        } catch (error) {
          results = batch.map((): PromiseRejectedResult => ({ status: 'rejected', reason: error }));
        }
        batch.forEach((pending, i) => {
          const result = results[i];
          if (!result)
            pending.reject(new Error(`A batch of ${batch.length} answered only ${results.length}`));
          else if (result.status === 'fulfilled') pending.resolve(result.value);
          else pending.reject(result.reason);
        });
      }
    } finally {
      busy--;
    }
  }

  // A lane runs in the context of the request that woke it: what the store logs for a batch carries
  // that request's id (one of the batch's); each request's own lines, after its answer, carry its own.
  return (item) =>
    new Promise<Out>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (busy < lanes) void lane();
    });
}

const settle = <T>(work: () => Promise<T>): Promise<PromiseSettledResult<T>> =>
  work().then(
    (value): PromiseFulfilledResult<T> => ({ status: 'fulfilled', value }),
    (reason: unknown): PromiseRejectedResult => ({ status: 'rejected', reason }),
  );

/**
 * Runs a batch as one statement; when that fails for a reason that may be one member's (a
 * conflict, a duplicate, data the database refused), runs the members one by one so each gets
 * its own answer and none is failed by another's. A database that is unavailable fails them all:
 * one by one would fail too, and the batch may even have committed with its answer lost.
 */
async function togetherOrOneByOne<In, Out>(
  items: readonly In[],
  together: (items: readonly In[]) => Promise<readonly Out[] | undefined>,
  alone: (item: In) => Promise<Out>,
): Promise<readonly PromiseSettledResult<Out>[]> {
  if (items.length === 1) return Promise.all(items.map((item) => settle(() => alone(item))));
  try {
    const results = await together(items);
    if (results) return results.map((value): PromiseFulfilledResult<Out> => ({ status: 'fulfilled', value }));
  } catch (error) {
    if (error instanceof DatabaseUnavailableError) {
      return items.map((): PromiseRejectedResult => ({ status: 'rejected', reason: error }));
    }
  }
  return Promise.all(items.map((item) => settle(() => alone(item))));
}

/** One order stream to append, with the Idempotency-Key its events mark done, if any. */
export interface OrderAppend {
  readonly stream: StreamAppend;
  readonly key?: KeyCompletion;
}

/**
 * `store.append` of one order stream at a time, batched: a batch is one append of all its
 * streams (all or nothing), each key marked done with its own stream. A batch not appended (a
 * stream not at its expected version, a re-append, an error) is appended again member by member,
 * so a conflict stays the one request's, with the same answer it would have had alone.
 */
export function batchedOrderAppends(
  store: EventStore,
  options: BatchingOptions = {},
): (order: OrderAppend) => Promise<AppendResult> {
  const alone = ({ stream, key }: OrderAppend) =>
    store.append([stream], key ? { idempotencyKeys: [key] } : {});
  const together = async (orders: readonly OrderAppend[]) => {
    // Same order in every batch: two batches that share a stream (a claim taken over while its
    // first request still appends) meet on it in the same order.
    const sorted = [...orders].sort((a, b) =>
      a.stream.aggregate_id < b.stream.aggregate_id
        ? -1
        : a.stream.aggregate_id > b.stream.aggregate_id
          ? 1
          : 0,
    );
    const result = await store.append(
      sorted.map((order) => order.stream),
      { idempotencyKeys: sorted.flatMap((order) => (order.key ? [order.key] : [])) },
    );
    if (result.status !== 'appended') return undefined;
    const byStream = new Map<string, StoredEvent[]>();
    for (const event of result.events) {
      const events = byStream.get(event.aggregate_id) ?? [];
      events.push(event);
      byStream.set(event.aggregate_id, events);
    }
    return orders.map(({ stream }): AppendResult => ({
      status: 'appended',
      events: byStream.get(stream.aggregate_id) ?? [],
    }));
  };
  return createBatcher((orders) => togetherOrOneByOne(orders, together, alone), options);
}

/**
 * `keys.claim`, batched: a batch is one `claimAll`. A key can be claimed only once per statement,
 * so a batch holding it more than once (the same request sent again at once) claims it in rounds,
 * the first of each key per round, in the order the requests came.
 */
export function batchedClaims(
  keys: IdempotencyKeys,
  options: BatchingOptions = {},
): (claim: KeyClaim) => Promise<KeyState> {
  const alone = (claim: KeyClaim) => keys.claim(claim);
  const together = (claims: readonly KeyClaim[]) => keys.claimAll(claims);
  return createBatcher(
    (claims) =>
      inRounds(
        claims,
        (claim) => JSON.stringify([claim.user_id, claim.idempotency_key]),
        (round) => togetherOrOneByOne(round, together, alone),
      ),
    options,
  );
}

/**
 * Runs a batch in rounds in which no key appears twice, the first of each key per round, in the
 * items' order: for statements that can touch a row only once (a claim, an insert or an update of
 * the same key). The results come back in the items' order.
 */
export async function inRounds<In, Out>(
  items: readonly In[],
  keyOf: (item: In) => string,
  runRound: (round: readonly In[]) => Promise<readonly PromiseSettledResult<Out>[]>,
): Promise<readonly PromiseSettledResult<Out>[]> {
  const results: PromiseSettledResult<Out>[] = [];
  let remaining = items.map((item, index) => ({ item, index }));
  while (remaining.length > 0) {
    const seen = new Set<string>();
    const round: typeof remaining = [];
    const later: typeof remaining = [];
    for (const entry of remaining) {
      const key = keyOf(entry.item);
      (seen.has(key) ? later : round).push(entry);
      seen.add(key);
    }
    const settled = await runRound(round.map((entry) => entry.item));
    round.forEach((entry, i) => {
      results[entry.index] = settled[i] ?? { status: 'rejected', reason: new Error('not answered') };
    });
    remaining = later;
  }
  return results;
}
