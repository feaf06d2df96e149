import { describe, expect, it } from 'vitest';
import { orderSaga } from '../../src/machines/orderSaga.ts';
import { checkSagaReplay, isProblem, replayThrough } from '../../src/machines/replayCheck.ts';
import type { HistoryEvent } from '../../src/machines/replayCheck.ts';
import { withQuoteConfirmation, withRenamedQuoting, withSilentQuoting } from './changedMachines.ts';
import { committedGoldenHistories, eventsOf, goldenMismatches } from './goldenHistories.ts';
import type { GoldenHistory } from './goldenHistories.ts';

const v1 = committedGoldenHistories().get(1);
const golden = (name: string): HistoryEvent[] => {
  const history = v1?.get(name);
  if (!history) throw new Error(`no golden history v1/${name}`);
  return eventsOf(history);
};
const completed = golden('completed');
/** Stored up to SwapExecuting: waiting for the swap's outcome, as a saga suspended on the venue is. */
const awaitingSwap = completed.slice(0, 4);
const justAccepted = completed.slice(0, 1);

const onVersion1 = { version: 1, recorded: orderSaga, current: orderSaga };

describe('when a saga is replayed through the machine it started on', () => {
  it('ends a finished saga where it ended', () => {
    expect(replayThrough(orderSaga, completed)).toEqual({
      state: 'completed',
      status: 'done',
      pending: null,
    });
    expect(checkSagaReplay(completed, onVersion1)).toEqual({ open: false, findings: [] });
  });

  it('leaves a saga in flight with the command it waits on', () => {
    expect(replayThrough(orderSaga, awaitingSwap)).toEqual({
      state: 'executingSwap.awaitingOutcome',
      status: 'active',
      pending: 'awaitingOutcome',
    });
    expect(checkSagaReplay(awaitingSwap, onVersion1)).toEqual({ open: true, findings: [] });
  });

  it('reports an event its state does not accept, where the runner would skip it', () => {
    const skipped = [...justAccepted, ...completed.slice(4, 5)];
    const check = checkSagaReplay(skipped, onVersion1);
    expect(check.findings).toEqual([
      { kind: 'stuck', under: 'recorded', detail: 'SwapExecuted (event 2) not accepted in quotingPrice' },
    ]);
    expect(isProblem(check)).toBe(true);
  });

  it('reports an event stored after the saga ended', () => {
    const check = checkSagaReplay([...completed, ...completed.slice(1, 2)], onVersion1);
    expect(check.findings).toEqual([
      {
        kind: 'stuck',
        under: 'recorded',
        detail: 'PriceQuoted (event 8) stored after the saga ended (done)',
      },
    ]);
    expect(isProblem(check)).toBe(true);
  });

  it('reports a saga in flight whose state names no command to run', () => {
    const check = checkSagaReplay(justAccepted, {
      version: 1,
      recorded: withSilentQuoting,
      current: withSilentQuoting,
    });
    expect(check.findings).toEqual([
      { kind: 'stuck', under: 'recorded', detail: 'no command to run in quotingPrice' },
    ]);
  });
});

describe('when the current machine is another version', () => {
  const toRenamed = { version: 1, recorded: orderSaga, current: withRenamedQuoting };
  const toConfirmation = { version: 1, recorded: orderSaga, current: withQuoteConfirmation };

  it('reports a saga in flight that it would take to another state, as a problem', () => {
    const check = checkSagaReplay(justAccepted, toRenamed);
    expect(check.findings).toEqual([
      { kind: 'diverges', detail: 'pricing (quotingPrice) instead of quotingPrice (quotingPrice)' },
    ]);
    expect(isProblem(check)).toBe(true);
  });

  it('reports a saga in flight that it would strand, as a problem', () => {
    const check = checkSagaReplay(awaitingSwap, toConfirmation);
    expect(check.findings).toEqual([
      {
        kind: 'stuck',
        under: 'current',
        detail: 'PositionCreated (event 3) not accepted in confirmingQuote',
      },
    ]);
    expect(isProblem(check)).toBe(true);
  });

  it('reports a finished saga it would replay differently, but not as a problem: its own version replays it', () => {
    const check = checkSagaReplay(completed, toConfirmation);
    expect(check.findings.map((f) => f.kind)).toEqual(['stuck']);
    expect(isProblem(check)).toBe(false);
  });

  it('reports a saga in flight whose version is not registered, as a problem, and a finished one not', () => {
    const unregistered = { version: 7, recorded: undefined, current: orderSaga };
    const open = checkSagaReplay(awaitingSwap, unregistered);
    expect(open.findings).toEqual([{ kind: 'unregistered', version: 7 }]);
    expect(isProblem(open)).toBe(true);
    expect(isProblem(checkSagaReplay(completed, unregistered))).toBe(false);
  });
});

describe('when a deliberately incompatible change keeps the released version', () => {
  const histories = [...(v1 ?? new Map<string, GoldenHistory>())].map(([name, history]) => ({
    name,
    events: eventsOf(history),
  }));
  /** Every golden history, and every saga stopped in flight along one. */
  const sagas = histories.flatMap(({ name, events }) =>
    events.map((_, i) => ({ name: `${name} after ${i + 1}`, events: events.slice(0, i + 1) })),
  );

  it.each([
    ['a new step', withQuoteConfirmation],
    ['a renamed state', withRenamedQuoting],
    ['a state that names no command', withSilentQuoting],
  ])('fails the golden histories with %s', (_, changed) => {
    const failing = [...(v1 ?? new Map<string, GoldenHistory>())].filter(
      ([, history]) => goldenMismatches(history, changed).length > 0,
    );
    expect(failing.length).toBeGreaterThan(0);
  });

  it('finds the sagas it would strand, in flight and finished', () => {
    const inPlace = { version: 1, recorded: withQuoteConfirmation, current: withQuoteConfirmation };
    const atRisk = sagas.filter(({ events }) => isProblem(checkSagaReplay(events, inPlace)));
    expect(atRisk.map((s) => s.name)).toContain('completed after 3');
    expect(atRisk.map((s) => s.name)).toContain('completed after 7');
  });
});
