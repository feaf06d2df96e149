import type { AdminClient, DeadLetter, SagaDetail, SagaFilter, SagaSummary } from './adminClient.ts';
import { EXIT } from './exitCodes.ts';
import type { ExitCode } from './exitCodes.ts';
import { duration, json, table } from './output.ts';
import type { Output } from './output.ts';

/** `sagas …` and `dlq …`: the admin API's answers, as tables for people or `--json` for scripts. */

export interface Format {
  readonly json?: boolean;
}

const dash = (value: string | null | undefined) => (value === null || value === undefined ? '-' : value);

function sagaRows(sagas: readonly SagaSummary[]): string {
  return table(
    ['ORDER ID', 'USER', 'STATUS', 'STATE', 'PENDING STEP', 'IDLE', 'STUCK', 'UPDATED'],
    sagas.map((s) => [
      s.order_id,
      s.user_id,
      s.status,
      s.state,
      dash(s.pending_step),
      duration(s.age_ms),
      s.stuck ? 'STUCK' : '-',
      s.updated_at,
    ]),
  );
}

export async function listSagas(
  client: AdminClient,
  filter: SagaFilter,
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const page = await client.listSagas(filter);
  if (format.json) {
    output.out(json(page));
    return EXIT.ok;
  }
  output.out(sagaRows(page.sagas));
  const stuck = page.sagas.filter((s) => s.stuck).length;
  output.err(`${page.sagas.length} saga(s)${stuck ? `, ${stuck} stuck` : ''}.`);
  if (page.next_cursor !== null) output.err(`More: add --cursor ${page.next_cursor}`);
  return EXIT.ok;
}

/** A payload in one line, cut to fit a terminal; `--json` has it whole. */
function payloadText(payload: unknown): string {
  const text = JSON.stringify(payload) ?? '';
  return text.length > 100 ? `${text.slice(0, 99)}…` : text;
}

function sagaText(saga: SagaDetail): string {
  const fields: [string, string][] = [
    ['order', saga.order_id],
    ['user', saga.user_id],
    ['status', saga.status],
    ['state', saga.state],
    ['pending step', dash(saga.pending_step)],
    ['machine version', String(saga.machine_version)],
    ['created', saga.created_at],
    ['updated', `${saga.updated_at} (${duration(saga.age_ms)} ago)`],
    ['deadline', dash(saga.deadline)],
    ['stuck', saga.stuck ? 'yes: no progress past the stuck threshold' : 'no'],
    ['failure reason', dash(saga.failure_reason)],
  ];
  const width = Math.max(...fields.map(([name]) => name.length));
  const history = table(
    ['STREAM', 'VERSION', 'EVENT', 'OCCURRED AT', 'PAYLOAD'],
    saga.history.map((e) => [
      e.stream,
      String(e.version),
      e.event_type,
      e.occurred_at,
      payloadText(e.payload),
    ]),
  );
  return [...fields.map(([name, value]) => `${`${name}:`.padEnd(width + 2)}${value}`), '', history].join(
    '\n',
  );
}

export async function showSaga(
  client: AdminClient,
  orderId: string,
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const saga = await client.showSaga(orderId);
  output.out(format.json ? json(saga) : sagaText(saga));
  return EXIT.ok;
}

/** `sagas retry`: 0 when the saga completed; 1 when it failed or is still suspended. */
export async function retrySaga(
  client: AdminClient,
  orderId: string,
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const result = await client.retrySaga(orderId);
  if (format.json) output.out(json(result));
  else output.out(`${result.order_id} ${result.outcome}${result.detail ? `: ${result.detail}` : ''}`);
  return result.outcome === 'completed' ? EXIT.ok : EXIT.problems;
}

/** `sagas cancel`: 0 when cancelled; 1 when voiding found the swap executed and the order completed. */
export async function cancelSaga(
  client: AdminClient,
  orderId: string,
  reason: string,
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const result = await client.cancelSaga(orderId, reason);
  if (format.json) output.out(json(result));
  else output.out(`${result.order_id} ${result.outcome}: ${result.detail}`);
  return result.outcome === 'cancelled' ? EXIT.ok : EXIT.problems;
}

function deadLetterRows(messages: readonly DeadLetter[]): string {
  return table(
    ['ID', 'QUEUE', 'EVENT', 'ORDER ID', 'DEATHS', 'DEAD AT', 'REASON'],
    messages.map((m) => [
      m.id,
      m.queue,
      dash(m.event_type),
      dash(m.order_id),
      String(m.deaths),
      m.dead_at,
      dash(m.reason),
    ]),
  );
}

export async function listDeadLetters(
  client: AdminClient,
  limit: number | undefined,
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const { messages } = await client.listDeadLetters(limit);
  if (format.json) {
    output.out(json({ messages }));
    return EXIT.ok;
  }
  output.out(deadLetterRows(messages));
  output.err(`${messages.length} dead-lettered message(s).`);
  return EXIT.ok;
}

/** `dlq replay [ids…]` (all when none is named). */
export async function replayDeadLetters(
  client: AdminClient,
  ids: readonly string[],
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const result = await client.replayDeadLetters(ids.length > 0 ? ids : undefined);
  output.out(format.json ? json(result) : `replayed ${result.replayed}`);
  return EXIT.ok;
}

/** `dlq drop <ids…>` or `dlq drop --all`. */
export async function dropDeadLetters(
  client: AdminClient,
  which: { ids: readonly string[] } | { all: true },
  format: Format,
  output: Output,
): Promise<ExitCode> {
  const result = await client.dropDeadLetters(which);
  output.out(format.json ? json(result) : `dropped ${result.dropped}`);
  return EXIT.ok;
}
