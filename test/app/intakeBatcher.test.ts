import { describe, expect, it } from 'vitest';
import { createBatcher } from '../../src/app/intakeBatcher.ts';

/** A batch runner that holds each batch until released, recording the batches it was given. */
function heldRunner() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const run = async (items: readonly number[]) => {
    batches.push([...items]);
    await new Promise<void>((resolve) => releases.push(resolve));
    return items.map((n): PromiseSettledResult<number> =>
      n < 0 ? { status: 'rejected', reason: new Error(`bad ${n}`) } : { status: 'fulfilled', value: n * 10 },
    );
  };
  const releaseAll = () => releases.splice(0).forEach((release) => release());
  return { batches, run, releaseAll };
}

/** Lets the batcher's lanes take what is queued. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('intake batcher', () => {
  describe('when a lane is idle', () => {
    it('sends a request at once, alone', async () => {
      const runner = heldRunner();
      const send = createBatcher(runner.run, { lanes: 2 });
      const answer = send(1);
      expect(runner.batches).toEqual([[1]]);
      runner.releaseAll();
      expect(await answer).toBe(10);
    });
  });

  describe('when every lane has a statement in flight', () => {
    it('queues requests and sends them as one batch when a lane comes back, up to the maximum', async () => {
      const runner = heldRunner();
      const send = createBatcher(runner.run, { lanes: 2, maxBatch: 3 });
      const answers = [1, 2, 3, 4, 5, 6, 7].map((n) => send(n));
      expect(runner.batches).toEqual([[1], [2]]);
      runner.releaseAll();
      await turn();
      expect(runner.batches).toEqual([[1], [2], [3, 4, 5], [6, 7]]);
      runner.releaseAll();
      expect(await Promise.all(answers)).toEqual([10, 20, 30, 40, 50, 60, 70]);
    });

    it('gives each request its own answer: one failed member leaves the others theirs', async () => {
      const runner = heldRunner();
      const send = createBatcher(runner.run, { lanes: 1 });
      const first = send(1);
      const batch = [2, -3, 4].map((n) => send(n));
      runner.releaseAll();
      await first;
      await turn();
      runner.releaseAll();
      const settled = await Promise.allSettled(batch);
      expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([
        20,
        'bad -3',
        40,
      ]);
    });
  });

  describe('when a batch throws', () => {
    it('fails every member of that batch and keeps serving the next', async () => {
      let calls = 0;
      const send = createBatcher(
        (items: readonly number[]) => {
          calls++;
          if (calls === 1) return Promise.reject(new Error('statement failed'));
          return Promise.resolve(
            items.map((n): PromiseSettledResult<number> => ({ status: 'fulfilled', value: n })),
          );
        },
        { lanes: 1 },
      );
      await expect(send(1)).rejects.toThrow('statement failed');
      expect(await send(2)).toBe(2);
    });
  });

  it('refuses lanes or a batch size below 1', () => {
    expect(() => createBatcher(() => Promise.resolve([]), { lanes: 0 })).toThrow(/lanes/);
    expect(() => createBatcher(() => Promise.resolve([]), { maxBatch: 0 })).toThrow(/maxBatch/);
  });
});
