import type { AnyStateMachine } from 'xstate';
import { CURRENT_SAGA_VERSION, SAGA_VERSIONS, sagaVersionOf } from '../machines/registry.ts';
import { checkSagaReplay, isProblem } from '../machines/replayCheck.ts';
import type { ReplayFinding, SagaReplayCheck } from '../machines/replayCheck.ts';
import type { Database } from '../app/ports/database.ts';
import { createEventStore } from '../infra/eventStore.ts';
import { createSagaHistories } from '../infra/sagaHistories.ts';
import type { SagaHistory } from '../infra/sagaHistories.ts';

export interface ReplayCheckOptions {
  /** The machine of each version (default: the registry); a test passes changed ones. */
  readonly versions?: Readonly<Record<number, AnyStateMachine>>;
  /** The version new sagas start on (default CURRENT_SAGA_VERSION). */
  readonly currentVersion?: number;
  /** Sagas loaded per query in the pass over all sagas (default 1000). */
  readonly batchSize?: number;
  readonly print?: (line: string) => void;
}

type FindingName = 'unregistered' | 'stuck' | 'stuck under the current machine' | 'diverges';

/** Sagas checked, open or finished. */
export interface ReplayTally {
  readonly checked: number;
  /** At risk (see `isProblem`). */
  readonly problems: number;
  /** Checked, by the machine version they recorded. */
  readonly byVersion: Readonly<Record<number, number>>;
  /** Sagas with each kind of finding (one saga may have two). */
  readonly findings: Readonly<Partial<Record<FindingName, number>>>;
}

export interface ReplayCheckReport {
  readonly open: ReplayTally;
  readonly closed: ReplayTally;
  /** Sagas at risk, open and finished: `replay-check` exits 1 when there is any. */
  readonly problems: number;
  /** The first sagas at risk, for the report. */
  readonly examples: readonly {
    readonly orderId: string;
    readonly version: number;
    readonly open: boolean;
    readonly findings: readonly ReplayFinding[];
  }[];
}

const EXAMPLES = 20;

const nameOf = (finding: ReplayFinding): FindingName =>
  finding.kind === 'stuck' && finding.under === 'current' ? 'stuck under the current machine' : finding.kind;

function describe(finding: ReplayFinding): string {
  switch (finding.kind) {
    case 'unregistered':
      return `its version ${finding.version} is not registered`;
    case 'stuck':
      return `${finding.under === 'recorded' ? 'stuck' : 'stuck under the current machine'}: ${finding.detail}`;
    case 'diverges':
      return `the current machine diverges: ${finding.detail}`;
  }
}

const tally = () => ({
  checked: 0,
  problems: 0,
  byVersion: {} as Record<number, number>,
  findings: {} as Partial<Record<FindingName, number>>,
});

/**
 * `replay-check`: replays every stored saga — the open ones first, then all in batches with
 * progress — through the machine of the version it recorded and through the current machine, and
 * reports the sagas either would strand or the two would drive apart (`checkSagaReplay`). Run it
 * with a new release before it ships: a saga at risk means the change is not replay-compatible
 * for the sagas stored (give it a new version), or a version is needed that is not registered.
 */
export async function runReplayCheck(
  db: Database,
  options: ReplayCheckOptions = {},
): Promise<ReplayCheckReport> {
  const versions = options.versions ?? SAGA_VERSIONS;
  const currentVersion = options.currentVersion ?? CURRENT_SAGA_VERSION;
  const current: AnyStateMachine | undefined = versions[currentVersion];
  if (!current) throw new Error(`The current saga version ${currentVersion} is not registered`);
  const machines = { current, versions };
  const print = options.print ?? (() => {});
  const histories = createSagaHistories(db, createEventStore(db));
  const open = tally();
  const closed = tally();
  const examples: ReplayCheckReport['examples'][number][] = [];
  const seen = new Set<string>();

  function check({ orderId, events }: SagaHistory): void {
    if (seen.has(orderId) || events.length === 0) return;
    seen.add(orderId);
    let version = 0;
    let result: SagaReplayCheck;
    try {
      version = sagaVersionOf(events[0]?.metadata);
      result = checkSagaReplay(
        events.map((e) => ({ type: e.event_type, data: e.event_data })),
        { version, recorded: machines.versions[version], current: machines.current },
      );
    } catch (error) {
      // A malformed saga_version: no machine can be chosen for it.
      const detail = (error as Error).message;
      result = { open: true, findings: [{ kind: 'stuck', under: 'recorded', detail }] };
    }
    const t = result.open ? open : closed;
    t.checked += 1;
    t.byVersion[version] = (t.byVersion[version] ?? 0) + 1;
    for (const name of new Set(result.findings.map(nameOf))) t.findings[name] = (t.findings[name] ?? 0) + 1;
    if (!isProblem(result)) return;
    t.problems += 1;
    if (examples.length < EXAMPLES)
      examples.push({ orderId, version, open: result.open, findings: result.findings });
  }

  const registered = Object.keys(versions).join(', ');
  print(`replay-check: saga machine versions ${registered} registered, ${currentVersion} current`);
  for (const history of await histories.open()) check(history);
  print(`open sagas: ${open.checked} checked, ${open.problems} at risk`);

  const total = await histories.count();
  let read = 0;
  for await (const batch of histories.all(options.batchSize)) {
    for (const history of batch) check(history);
    read += batch.length;
    print(`all sagas: ${read} of ${total} read, ${open.problems + closed.problems} at risk`);
  }

  for (const [label, t] of [
    ['open', open],
    ['finished', closed],
  ] as const) {
    const byVersion = Object.entries(t.byVersion)
      .map(([v, n]) => `version ${v}: ${n}`)
      .join(', ');
    const findings = Object.entries(t.findings)
      .map(([name, n]) => `${name}: ${n}`)
      .join(', ');
    print(
      `${label}: ${t.checked} sagas (${byVersion || 'none'}); ${t.problems} at risk${findings ? `; ${findings}` : ''}`,
    );
  }
  for (const example of examples) {
    const state = example.open ? 'open' : 'finished';
    print(
      `  ${state} saga ${example.orderId} (version ${example.version}): ${example.findings.map(describe).join('; ')}`,
    );
  }
  const problems = open.problems + closed.problems;
  print(`problems: ${problems}`);
  return { open, closed, problems, examples };
}
