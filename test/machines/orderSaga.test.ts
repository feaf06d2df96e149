import { initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { SagaEvent, SagaCommand } from '../../src/machines/orderSaga.ts';
import { orderSaga, SAGA, SAGA_STEPS, stepsIn } from '../../src/machines/orderSaga.ts';

/*
 * The machine alone, through the pure transition(): given stored events, the state the saga is in
 * and the step it asks for next; and for every step, what a failure and the deadline do there.
 */

const ORDER_ID = '00000000-0000-4000-8000-0000000000aa';
const POSITION_ID = '00000000-0000-4000-8000-0000000000bb';
const AT = '2026-11-24T12:00:00.000Z';

/** The stored events of the happy path, in order. */
const HISTORY: readonly SagaEvent[] = [
  {
    type: 'OrderAccepted',
    data: {
      order_id: ORDER_ID,
      user_id: 'u',
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
      accepted_at: AT,
    },
  },
  { type: 'PriceQuoted', data: { price: '0.00001', to_amount: '0.01', quoted_at: AT, source: 't' } },
  {
    type: 'PositionCreated',
    data: {
      position_id: POSITION_ID,
      user_id: 'u',
      order_id: ORDER_ID,
      from_currency: 'USDT',
      to_currency: 'BTC',
      created_at: AT,
    },
  },
  {
    type: 'SwapExecuting',
    data: { idempotency_key: `swap-${ORDER_ID}`, position_id: POSITION_ID, started_at: AT },
  },
  {
    type: 'SwapExecuted',
    data: { tx_hash: '0x1', to_amount: '0.01', executed_price: '0.00001', executed_at: AT },
  },
];

/** Folds events; returns the snapshot and the step the last transition asked for. */
function fold(events: readonly SagaEvent[]) {
  let [snapshot] = initialTransition(orderSaga);
  let step: SagaCommand | undefined;
  for (const event of events) {
    const [next, actions] = transition(orderSaga, snapshot, event);
    snapshot = next;
    step = stepsIn(actions).at(-1) ?? step;
  }
  return { snapshot, step };
}

/** The stored events that bring a saga into each step of the happy path. */
const ENTERED_BY: Partial<Record<SagaCommand, number>> = {
  quotingPrice: 1,
  openingPosition: 2,
  sendingSwap: 3,
  awaitingOutcome: 4,
  completing: 5,
};

describe('the order saga machine', () => {
  it.each(Object.entries(ENTERED_BY))(
    'after %s is entered by the stored events, asks for that step',
    (step, count) => {
      const { snapshot, step: asked } = fold(HISTORY.slice(0, count));
      expect(asked).toBe(step);
      expect(JSON.stringify(snapshot.value)).toContain(step);
      expect(snapshot.status).toBe('active');
    },
  );

  it('ends completed after OrderCompleted, asking for nothing more', () => {
    const completed: SagaEvent = {
      type: 'OrderCompleted',
      data: {
        order_id: ORDER_ID,
        position_id: POSITION_ID,
        from_amount: '1000',
        from_currency: 'USDT',
        to_amount: '0.01',
        to_currency: 'BTC',
        executed_price: '0.00001',
        tx_hash: '0x1',
        completed_at: AT,
      },
    };
    const { snapshot } = fold([...HISTORY, completed]);
    expect(snapshot.value).toBe('completed');
    expect(snapshot.status).toBe('done');
  });

  describe.each(SAGA_STEPS.filter((step) => ENTERED_BY[step] !== undefined))('in %s', (step) => {
    const before = HISTORY.slice(0, ENTERED_BY[step]);
    const declared = SAGA[step] as { failures: Record<string, string>; failedStep: string; deadline: string };

    it.each(Object.keys(declared.failures))(
      'a %s failure compensates, recording the step as declared',
      (reason) => {
        const { snapshot, step: asked } = fold([
          ...before,
          { type: 'StepFailed', reason, detail: 'd' } as SagaEvent,
        ]);
        expect(asked).toBe('compensating');
        expect(snapshot.context.failure).toEqual({ reason, failed_step: declared.failedStep, detail: 'd' });
      },
    );

    it(`the deadline ${declared.deadline === 'compensate' ? 'compensates' : 'is the step’s own business'}`, () => {
      const { snapshot, step: asked } = fold([...before, { type: 'DeadlinePassed', detail: 'late' }]);
      if (declared.deadline === 'compensate') {
        expect(asked).toBe('compensating');
        expect(snapshot.context.failure).toMatchObject({
          reason: 'deadline_exceeded',
          failed_step: declared.failedStep,
        });
      } else {
        expect(asked).toBe(step);
        expect(snapshot.context.failure).toBeNull();
      }
    });

    it('a failure it does not declare is ignored', () => {
      if (Object.keys(declared.failures).length > 0) return;
      const { snapshot } = fold([...before, { type: 'StepFailed', reason: 'venue_rejected' }]);
      expect(snapshot.context.failure).toBeNull();
    });
  });
});
