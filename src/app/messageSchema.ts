import { z } from 'zod';
import type { FieldProblem } from '../domain/errors.ts';
import { ORDER_EVENT_TYPES, POSITION_EVENT_TYPES } from '../domain/events.ts';
import type {
  AggregateType,
  DomainEvent,
  DomainEventType,
  FailureReason,
  SagaStep,
} from '../domain/events.ts';
import type { EnvelopeOf } from './envelopes.ts';
import { PoisonMessageError } from './messages.ts';
import type { EventMessage } from './messages.ts';

/**
 * A message that fails validation: poison, with every failing field named, so the dead letter
 * tells an operator what to fix without opening the payload.
 */
export class InvalidMessageError extends PoisonMessageError {
  readonly problems: readonly FieldProblem[];
  /** @param options.what what was invalid, for the error's message: "message" unless said. */
  constructor(
    eventId: string | undefined,
    problems: readonly FieldProblem[],
    options?: { cause?: unknown; what?: string },
  ) {
    const fields = problems.map((p) => (p.field ? `${p.field} ${p.message}` : p.message)).join('; ');
    super(`Invalid ${options?.what ?? 'message'} ${eventId ?? '(no event_id)'}: ${fields}`, options);
    this.name = 'InvalidMessageError';
    this.problems = problems;
  }
}

/** The store's column is `uuid`: any 8-4-4-4-12 hex is accepted there, so it is here too. */
const id = z.guid('must be a UUID');
const text = z.string('must be a string').min(1, 'must not be empty');
/** Amounts and prices travel as plain decimal strings; a float would already have lost digits. */
const decimal = z.string('must be a decimal string').regex(/^\d+(\.\d+)?$/, 'must be a decimal string');
const time = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 time' });
const currency = z.string('must be a currency code').regex(/^[A-Z][A-Z0-9]{1,9}$/, 'must be a currency code');

/** As records over the unions, so a reason or step added to the domain fails to compile here. */
export const FAILURE_REASONS: Record<FailureReason, true> = {
  insufficient_liquidity: true,
  price_unavailable: true,
  slippage_exceeded: true,
  venue_rejected: true,
  deadline_exceeded: true,
  cancelled: true,
};
export const SAGA_STEPS: Record<SagaStep, true> = {
  quote_price: true,
  open_position: true,
  execute_swap: true,
  complete_order: true,
};
const oneOf = <T extends string>(values: Record<T, true>) =>
  z.enum(Object.keys(values) as [T, ...T[]], `must be one of ${Object.keys(values).join(', ')}`);

type DataOf<T extends DomainEventType> = Extract<DomainEvent, { type: T }>['data'];

/*
 * One schema per event type of the catalogue (src/domain/events.ts); the mapped type makes a new
 * event type, a missing field or a field of the wrong type a compile error. Loose objects: a field
 * a newer producer adds passes through to the handler instead of poisoning the message.
 */
const EVENT_DATA: { readonly [T in DomainEventType]: z.ZodType<DataOf<T>> } = {
  OrderAccepted: z.looseObject({
    order_id: id,
    user_id: text,
    from_amount: decimal,
    from_currency: currency,
    to_currency: currency,
    order_type: z.literal('market', 'must be "market"'),
    accepted_at: time,
  }),
  PriceQuoted: z.looseObject({ price: decimal, to_amount: decimal, quoted_at: time, source: text }),
  SwapExecuting: z.looseObject({ idempotency_key: text, position_id: id, started_at: time }),
  SwapExecuted: z.looseObject({
    tx_hash: text,
    to_amount: decimal,
    executed_price: decimal,
    executed_at: time,
    venue_anomalies: z.array(text).optional(),
  }),
  OrderCompleted: z.looseObject({
    order_id: id,
    position_id: id,
    from_amount: decimal,
    from_currency: currency,
    to_amount: decimal,
    to_currency: currency,
    executed_price: decimal,
    tx_hash: text,
    completed_at: time,
  }),
  OrderFailed: z.looseObject({
    order_id: id,
    reason: oneOf(FAILURE_REASONS),
    failed_step: oneOf(SAGA_STEPS),
    detail: z.string('must be a string').optional(),
    failed_at: time,
  }),
  PositionCreated: z.looseObject({
    position_id: id,
    user_id: text,
    order_id: id,
    from_currency: currency,
    to_currency: currency,
    created_at: time,
  }),
  PositionUpdated: z.looseObject({
    position_id: id,
    order_id: id,
    from_amount: decimal,
    to_amount: decimal,
    executed_price: decimal,
    total_from_amount: decimal,
    total_to_amount: decimal,
    updated_at: time,
  }),
  PositionClosed: z.looseObject({ position_id: id, reason: text, closed_at: time }),
};

const STREAM_OF = new Map<string, AggregateType>([
  ...ORDER_EVENT_TYPES.map((type) => [type, 'order'] as const),
  ...POSITION_EVENT_TYPES.map((type) => [type, 'position'] as const),
]);

const isEventType = (type: unknown): type is DomainEventType =>
  typeof type === 'string' && Object.hasOwn(EVENT_DATA, type);

/** The envelope as the event store writes it (see `StoredEvent`, `EventMetadata`). */
const ENVELOPE = z.object(
  {
    event_id: id,
    aggregate_id: id,
    aggregate_type: z.enum(['order', 'position'], 'must be "order" or "position"'),
    event_type: text,
    version: z.int('must be an integer').positive('must be positive'),
    event_data: z.record(z.string(), z.unknown(), 'must be an object'),
    metadata: z.looseObject(
      {
        correlation_id: id,
        causation_id: text.nullable(),
        occurred_at: time,
        schema_version: z.int('must be an integer').positive('must be positive'),
      },
      'must be an object',
    ),
  },
  'must be a JSON object',
);

/** A whole envelope of one event type in one schema: what a valid message is parsed with, in one pass. */
const envelopeOf = <T extends DomainEventType, D extends z.ZodType>(type: T, data: D) =>
  ENVELOPE.extend({
    aggregate_type: z.literal(STREAM_OF.get(type) ?? 'order'),
    event_type: z.literal(type),
    event_data: data,
  });

/** `satisfies` the typed envelopes: a missing event type, or data that does not match, fails to compile. */
const MESSAGE = {
  OrderAccepted: envelopeOf('OrderAccepted', EVENT_DATA.OrderAccepted),
  PriceQuoted: envelopeOf('PriceQuoted', EVENT_DATA.PriceQuoted),
  SwapExecuting: envelopeOf('SwapExecuting', EVENT_DATA.SwapExecuting),
  SwapExecuted: envelopeOf('SwapExecuted', EVENT_DATA.SwapExecuted),
  OrderCompleted: envelopeOf('OrderCompleted', EVENT_DATA.OrderCompleted),
  OrderFailed: envelopeOf('OrderFailed', EVENT_DATA.OrderFailed),
  PositionCreated: envelopeOf('PositionCreated', EVENT_DATA.PositionCreated),
  PositionUpdated: envelopeOf('PositionUpdated', EVENT_DATA.PositionUpdated),
  PositionClosed: envelopeOf('PositionClosed', EVENT_DATA.PositionClosed),
} satisfies { readonly [T in DomainEventType]: z.ZodType<EnvelopeOf<T>> };

function problemsOf(error: z.ZodError, prefix = ''): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: prefix + issue.path.map(String).join('.'),
    message: (issue as { input?: unknown }).input === undefined ? 'is required' : issue.message,
  }));
}

function field(raw: unknown, name: string): unknown {
  return typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[name] : undefined;
}

/** The data schema and stream of a catalogue event type; problems for anything else. */
function checkType(raw: unknown): { schema?: z.ZodType; problems: FieldProblem[] } {
  const type = field(raw, 'event_type');
  if (!isEventType(type)) {
    const problems =
      typeof type === 'string' && type !== ''
        ? [{ field: 'event_type', message: `is not an event type of the catalogue: "${type}"` }]
        : [];
    return { problems };
  }
  const stream = STREAM_OF.get(type);
  const aggregateType = field(raw, 'aggregate_type');
  const problems =
    typeof aggregateType === 'string' && aggregateType !== stream
      ? [{ field: 'aggregate_type', message: `must be "${stream}" for ${type}` }]
      : [];
  return { schema: EVENT_DATA[type], problems };
}

/** Every problem of an invalid message: the envelope's, the event type's and the data's. */
function problemsOfMessage(raw: unknown): FieldProblem[] {
  const envelope = ENVELOPE.safeParse(raw, { reportInput: true });
  const problems = envelope.success ? [] : problemsOf(envelope.error);
  const type = checkType(raw);
  problems.push(...type.problems);
  const data = type.schema?.safeParse(field(raw, 'event_data'), { reportInput: true });
  if (data && !data.success && typeof field(raw, 'event_data') === 'object')
    problems.push(...problemsOf(data.error, 'event_data.'));
  return problems;
}

/**
 * Validates an envelope (an outbox row, a broker message's parsed body, a row the event store
 * read) into the typed event union (src/app/envelopes.ts): the envelope, and `event_data` by the
 * schema of its event type. The buses run it before any handler sees a message, the event store
 * on every event it reads: the one place where envelopes become typed. Fields outside the
 * envelope (a row's id, created_at) are dropped.
 *
 * @param what what is parsed, for the error's message ("message", "stored event").
 * @throws InvalidMessageError (a PoisonMessageError) naming each failing field; an event type
 *   outside the catalogue is poison too.
 */
export function parseEventMessage(raw: unknown, what = 'message'): EventMessage {
  const type = field(raw, 'event_type');
  const schema: z.ZodType<EventMessage> | undefined = isEventType(type) ? MESSAGE[type] : undefined;
  const parsed = schema?.safeParse(raw);
  if (parsed?.success) return parsed.data;
  // Invalid: only now is the message looked at field by field, to name every problem.
  const problems = problemsOfMessage(raw);
  const eventId = field(raw, 'event_id');
  throw new InvalidMessageError(
    typeof eventId === 'string' ? eventId : undefined,
    problems.length > 0 || !parsed ? problems : problemsOf(parsed.error),
    { what },
  );
}

/**
 * Parses a message body (JSON bytes from the broker); validate the result with
 * {@link parseEventMessage}.
 *
 * @throws InvalidMessageError for malformed JSON.
 */
export function parseJsonBody(body: Uint8Array | string): unknown {
  try {
    return JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch (error) {
    throw new InvalidMessageError(
      undefined,
      [{ field: '', message: `malformed JSON: ${(error as Error).message}` }],
      { cause: error },
    );
  }
}
