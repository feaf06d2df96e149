import { randomUUID } from 'node:crypto';
import type { SwapRequest } from '../../../src/app/ports.ts';
import { TransientError } from '../../../src/app/ports.ts';

/** A fixed clock, so quoted_at and executed_at are part of what a seed reproduces. */
export const FIXED_NOW = new Date('2025-01-01T12:00:00.000Z');
export const fixedClock = () => FIXED_NOW;

/** A fresh idempotency key per call. */
export function newKey(): string {
  return `swap-${randomUUID()}`;
}

/** 1000 USDT into BTC with no slippage bound, under a fresh key unless given one. */
export function swapRequest(overrides: Partial<SwapRequest> = {}): SwapRequest {
  return {
    idempotency_key: newKey(),
    from_currency: 'USDT',
    to_currency: 'BTC',
    from_amount: '1000',
    quoted_price: '0.00001',
    min_to_amount: '0',
    // An hour after the fixed clock: the venue's deadline check passes unless a test moves it.
    execute_before: new Date(FIXED_NOW.getTime() + 3_600_000).toISOString(),
    ...overrides,
  };
}

/** Awaits a rejection and returns the TransientError, failing the test on anything else. */
export async function transientFrom(promise: Promise<unknown>): Promise<TransientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TransientError) return error;
    throw error;
  }
  throw new Error('expected a TransientError, but the call succeeded');
}

export const DECIMAL_STRING = /^\d+(\.\d+)?$/;

/** The kind of a caught TransientError; anything else is rethrown so the test fails on it. */
export function kindOf(error: unknown): TransientError['kind'] {
  if (error instanceof TransientError) return error.kind;
  throw error;
}
