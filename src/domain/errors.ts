/**
 * The few error kinds the service raises. Each has a stable `code` that callers branch on and that
 * the HTTP layer maps to a problem+json response. Expected business outcomes (insufficient
 * liquidity, slippage, …) are events, not errors.
 */
export type ErrorCode = 'validation' | 'not_found' | 'conflict' | 'illegal_transition';

export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
}

export interface FieldProblem {
  /** JSON path of the field, e.g. `from_amount`. Empty for the body as a whole. */
  readonly field: string;
  readonly message: string;
}

export class ValidationError extends AppError {
  readonly code = 'validation';
  readonly problems: readonly FieldProblem[];
  constructor(problems: readonly FieldProblem[]) {
    super(`Invalid input: ${problems.map((p) => `${p.field || '(body)'} ${p.message}`).join('; ')}`);
    this.name = 'ValidationError';
    this.problems = problems;
  }
}

export class NotFoundError extends AppError {
  readonly code = 'not_found';
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** A command that the aggregate's current status does not allow. */
export class IllegalTransitionError extends AppError {
  readonly code = 'illegal_transition';
  readonly aggregateType: string;
  readonly status: string;
  readonly command: string;
  constructor(aggregateType: string, status: string, command: string, why?: string) {
    const article = /^[aeiou]/i.test(aggregateType) ? 'an' : 'a';
    super(`Cannot ${command} ${article} ${aggregateType} that is ${status}${why ? `: ${why}` : ''}`);
    this.name = 'IllegalTransitionError';
    this.aggregateType = aggregateType;
    this.status = status;
    this.command = command;
  }
}
