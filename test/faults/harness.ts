import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { queueStates } from '../../src/ops/checkCommand.ts';
import { serveSimulatedMarket } from '../../src/infra/venues/simulatedHttpServer.ts';
import type { SimulatedMarket, SimulatedMarketOptions } from '../../src/infra/venues/simulatedMarket.ts';
import { clusterOrder, drainState, setTelegramChat, startCluster } from '../helpers/cluster.ts';
import type { Cluster, DrainState, ServiceSpec } from '../helpers/cluster.ts';
import { startBotApiFront, startTelegramEmulator } from '../helpers/notifyPeers.ts';
import { recordScenario } from './report.ts';
import type { ScenarioRow } from './report.ts';
import { superviseCluster } from './supervisor.ts';
import type { Supervisor } from './supervisor.ts';
import { rowCounts, verifyRun } from './verify.ts';
import type { Verdict } from './verify.ts';

/**
 * The fault suite's harness: one scenario's world (a scratch database and AMQP prefix, service
 * processes under a supervisor, the simulated market served from this process, the Telegram
 * emulator), careful clients, a bounded drain, and the verdict of the outside world and of the
 * verifier, recorded as one row of the report.
 */

const DATABASE_URL = process.env.DATABASE_URL ?? '';
const AMQP_URL = process.env.AMQP_URL ?? '';

/**
 * The split a small production runs: intake, relay and sweeper together; two orchestrators, so a
 * message one of them leaves unacked is redelivered to the other; the notifier beside one of them.
 */
export const DEFAULT_PROCESSES: readonly ServiceSpec[] = [
  ['api', 'relay', 'sweeper'],
  ['saga'],
  ['saga', 'notifier'],
];

export interface ScenarioOptions {
  /** The report's group (`broker`, `venue`…). */
  readonly group: string;
  /** The report's name of the scenario. */
  readonly scenario: string;
  readonly processes?: readonly ServiceSpec[];
  /** More environment for every service process (saga deadline, call timeout…). */
  readonly env?: Record<string, string>;
  /** Knobs of the simulated market (latency, rates, liquidity…). */
  readonly market?: SimulatedMarketOptions;
  /** How many users place the orders; each has a Telegram chat (default 20). */
  readonly users?: number;
}

/** What clients were answered, per Idempotency-Key. */
export interface Placement {
  /** Every distinct order id the API answered per key (more than one is a duplicate). */
  readonly answers: Map<string, string[]>;
  /** Every answer's status, counted (`no answer` for a request that got none). */
  readonly statuses: Record<string, number>;
  /** Orders refused for good (a 4xx the client does not retry): the scenario's input was wrong. */
  readonly refused: { readonly i: number; readonly status: number; readonly body: string }[];
  /** Resolves once every order was answered (or the clients were stopped). */
  readonly done: Promise<void>;
  /** The clients give up: for a scenario's clean-up. */
  stop(): void;
}

export interface PlaceOptions {
  readonly orders: number;
  /** Clients sending at once. */
  readonly clients: number;
  /** The body of order `i` for `user` (default clusterOrder: every 20th above liquidity). */
  readonly order?: (i: number, user: string) => object;
  /** Called as order `i` is first sent (to inject a fault at a chosen point of the run). */
  readonly onOrder?: (i: number) => void;
}

export interface Drained {
  /** Everything drained within the bound (false: `state` says what was left). */
  readonly drained: boolean;
  readonly state: DrainState | undefined;
  /** Ready messages left in the consumer queues at the last look. */
  readonly queued: number | undefined;
  /** From the fault's end (markFaultEnd) to drained; null when unmarked or not drained. */
  readonly recoveryMs: number | null;
}

export interface Finished {
  readonly row: ScenarioRow;
  readonly verdict: Verdict;
  /** What is wrong, in words: empty when the scenario is clean. */
  readonly problems: readonly string[];
  /** Examples, the verifier's report and every process's output tail: for assertion messages. */
  explain(): string;
}

export interface Scenario {
  readonly cluster: Cluster;
  /** The simulated market this process serves: script its faults, read its ledger. */
  readonly market: SimulatedMarket;
  readonly supervisor: Supervisor;
  readonly users: readonly string[];
  readonly apiUrl: string;
  /** Sends orders as careful clients do (see {@link placeOrders}); answers add up over calls. */
  placeOrders(options: PlaceOptions): Placement;
  /** The fault is over (now, or at `at`): recovery time is measured from then. */
  markFaultEnd(at?: number): void;
  /** Waits (bounded) until every order is terminal and everything drained; never throws on timeout. */
  drain(timeoutMs?: number): Promise<Drained>;
  /** Stops the processes, verifies the run, records its row and returns the verdict. */
  finish(
    fields: Pick<ScenarioRow, 'faults' | 'faultsInjected'> & { readonly notes?: string },
  ): Promise<Finished>;
  /** Kills what runs, drops the database and the topology; safe to call twice. */
  close(): Promise<void>;
}

/** The violations `check`'s report counts on its last line (`2 guarantee(s) violated, 5 violation(s): …`). */
function checkViolations(report: string): number {
  return Number(/^\d+ guarantee\(s\) violated, (\d+) violation\(s\)/m.exec(report)?.[1] ?? 0);
}

/** Starts one scenario's world; close() it in a finally (runScenario does). */
export async function startScenario(options: ScenarioOptions): Promise<Scenario> {
  if (!DATABASE_URL || !AMQP_URL) throw new Error('the fault suite needs DATABASE_URL and AMQP_URL');
  const served = await serveSimulatedMarket(options.market);
  const emulator = await startTelegramEmulator();
  // The front records when each message reached the provider: the start of its duplicate window.
  const front = await startBotApiFront(emulator.apiRoot);
  const token = `${Math.floor(Math.random() * 1e9)}:faults`;
  const closers: (() => Promise<void>)[] = [
    () => served.server.close(),
    () => emulator.stop(),
    () => front.stop(),
  ];
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      databaseUrl: DATABASE_URL,
      amqpUrl: AMQP_URL,
      label: 'flt',
      processes: options.processes ?? DEFAULT_PROCESSES,
      marketUrl: served.url,
      telegram: { apiRoot: front.apiRoot, token },
      env: {
        // The sweeper looks at sagas that made no progress for 2 s, not 60 s: scenarios are short.
        SWEEP_STALE_MS: '2000',
        SWEEP_INTERVAL_MS: '500',
        // A notification whose notifier died between send and record is sent again after 5 s, not
        // 2 min: the duplicate window this suite measures.
        NOTIFY_LEASE_MS: '5000',
        ...options.env,
      },
    });
  } catch (error) {
    for (const close of closers) await close().catch(() => {});
    throw error;
  }
  const supervisor = superviseCluster(cluster);
  const users = Array.from({ length: options.users ?? 20 }, () => randomUUID());
  for (const [i, user] of users.entries()) await setTelegramChat(cluster.apiUrl, user, String(1000 + i));

  const answers = new Map<string, string[]>();
  const placements: Placement[] = [];
  /** Placements whose clients are still sending: not drained while orders keep coming. */
  let placing = 0;
  let firstOrderAt: number | undefined;
  let faultEndedAt: number | undefined;
  let drainedAt: number | undefined;
  let lastDrain: Drained | undefined;
  let closed = false;

  const placeOrders = (place: PlaceOptions): Placement => {
    firstOrderAt ??= Date.now();
    const statuses: Record<string, number> = {};
    const refused: Placement['refused'] = [];
    let next = 0;
    let stopped = false;
    const one = async (i: number) => {
      const user = users[i % users.length] ?? '';
      const key = randomUUID();
      const body = JSON.stringify((place.order ?? clusterOrder)(i, user));
      place.onOrder?.(i);
      for (let attempt = 1; !stopped; attempt++) {
        const response = await fetch(`${cluster.apiUrl}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body,
          signal: AbortSignal.timeout(10_000),
        }).catch(() => undefined);
        const status = response?.status;
        statuses[status ?? 'no answer'] = (statuses[status ?? 'no answer'] ?? 0) + 1;
        if (status === 202) {
          // A body cut off on its way is no answer: sent again with the key, it is replayed.
          const answer = (await response?.json().catch(() => undefined)) as { order_id?: string } | undefined;
          if (answer?.order_id) {
            const ids = answers.get(key) ?? [];
            if (!ids.includes(answer.order_id)) answers.set(key, [...ids, answer.order_id]);
            return;
          }
        }
        const text = (await response?.text().catch(() => '')) ?? '';
        if (status !== undefined && status !== 202 && status < 500 && status !== 409 && status !== 429) {
          refused.push({ i, status, body: text.slice(0, 300) });
          return;
        }
        // Retry-After when the API gave one (503, 409, 429), else a bounded doubling backoff.
        const after = Number(response?.headers.get('retry-after'));
        const backoff = Math.min(2_000, 50 * 2 ** Math.min(attempt, 6));
        await sleep(Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 5_000) : backoff);
      }
    };
    const client = async () => {
      while (next < place.orders && !stopped) await one(next++);
    };
    placing += 1;
    const placement: Placement = {
      answers,
      statuses,
      refused,
      done: Promise.all(Array.from({ length: place.clients }, client)).then(() => {
        placing -= 1;
      }),
      stop() {
        stopped = true;
      },
    };
    placements.push(placement);
    return placement;
  };

  const drain = async (timeoutMs = 60_000): Promise<Drained> => {
    const deadline = Date.now() + timeoutMs;
    let state: DrainState | undefined;
    let queued: number | undefined;
    for (;;) {
      // The database or the broker may still be coming back: a failed look is only not drained yet.
      state = await drainState(cluster.db).catch(() => state);
      const queues = await queueStates(AMQP_URL, cluster.prefix).catch(() => undefined);
      queued = queues?.filter((q) => !q.queue.endsWith('.dead')).reduce((n, q) => n + q.messages, 0);
      const done =
        state !== undefined && queued === 0 && Object.values(state).every((n) => n === 0) && placing === 0;
      if (done) {
        drainedAt = Date.now();
        lastDrain = {
          drained: true,
          state,
          queued,
          recoveryMs: faultEndedAt === undefined ? null : drainedAt - faultEndedAt,
        };
        return lastDrain;
      }
      if (Date.now() > deadline) {
        lastDrain = { drained: false, state, queued, recoveryMs: null };
        return lastDrain;
      }
      await sleep(200);
    }
  };

  /** The longest time from a message reaching the provider to its notification being recorded. */
  const duplicateWindow = async (): Promise<number | undefined> => {
    const rows = await cluster.db.query<{ recipient: string; text: string; sent_at: Date }>(
      `SELECT recipient, text, sent_at FROM notifications WHERE status = 'sent' AND channel = 'telegram'`,
    );
    const arrived = new Map<string, number>();
    for (const m of front.received()) {
      const k = `${m.chat_id} ${m.text}`;
      if (!arrived.has(k)) arrived.set(k, m.at);
    }
    let longest: number | undefined;
    for (const row of rows) {
      const at = arrived.get(`${row.recipient} ${row.text}`);
      if (at === undefined) continue;
      const window = new Date(row.sent_at).getTime() - at;
      longest = Math.max(longest ?? 0, window);
    }
    return longest;
  };

  const close = async () => {
    if (closed) return;
    closed = true;
    supervisor.stop();
    for (const p of placements) p.stop();
    for (const s of cluster.services) await s.kill();
    await cluster.close().catch(() => {});
    for (const closeOne of closers) await closeOne().catch(() => {});
  };

  return {
    cluster,
    market: served.market,
    supervisor,
    users,
    apiUrl: cluster.apiUrl,
    placeOrders,
    markFaultEnd(at = Date.now()) {
      faultEndedAt = at;
    },
    drain,
    async finish(fields) {
      await Promise.all(placements.map((p) => p.done));
      const drained = lastDrain ?? (await drain());
      // Stopped before the checks, as an operator would drain before verifying: nothing moves
      // while they look, and a message left unacked goes back to its queue, where check sees it.
      supervisor.stop();
      const exits: string[] = [];
      for (const s of cluster.services) exits.push(`${s.name} ${await s.stop()}`);
      await served.market.venue.settled();
      const queues = await queueStates(AMQP_URL, cluster.prefix);
      const verdict = await verifyRun({
        db: cluster.db,
        answers,
        users,
        ledger: served.market.venue.ledger(),
        telegram: emulator.sent(token),
        queues,
      });
      const { code, report } = await cluster.check();
      // Why orders failed, with the numbers taken out of the details: what the verdict sums up.
      // A message the service gave up on: never right for a well-formed event of this run.
      const deadLetters = await cluster.db.query<{
        consumer: string;
        event_type: string;
        reason: string;
        error: string;
        attempts: number;
      }>(
        `SELECT consumer, event_type, reason, left(error, 1500) AS error, attempts FROM dead_letters ORDER BY id LIMIT 5`,
      );
      const details = await cluster.db.query<{ reason: string; detail: string; n: number }>(
        `SELECT event_data->>'reason' AS reason,
                left(regexp_replace(event_data->>'detail', '[0-9][0-9a-f.:TZ-]*', 'N', 'g'), 90) AS detail,
                count(*)::int AS n
         FROM events WHERE event_type = 'OrderFailed' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 12`,
      );
      const cliViolations = checkViolations(report);
      const window = await duplicateWindow();
      const refused = placements.flatMap((p) => p.refused);
      const faultLines = supervisor.faultLines().length;
      const notes = [
        ...(fields.notes ? [fields.notes] : []),
        ...(supervisor.deaths > 0
          ? [
              `supervisor: ${supervisor.deaths} deaths (${faultLines} at failpoints), ${supervisor.restarts} restarts`,
            ]
          : []),
      ];
      const row: ScenarioRow = {
        scenario: options.scenario,
        group: options.group,
        orders: [...answers.values()].reduce((n, ids) => n + ids.length, 0),
        faults: fields.faults,
        faultsInjected: fields.faultsInjected,
        ...rowCounts(verdict),
        violations: Math.max(verdict.violations, cliViolations),
        ...(window === undefined ? {} : { duplicateWindowMs: window }),
        // Marked after the drain when the faults ran until every order was terminal.
        recoveryMs:
          drained.drained && faultEndedAt !== undefined && drainedAt !== undefined
            ? Math.max(0, drainedAt - faultEndedAt)
            : null,
        durationMs: (drainedAt ?? Date.now()) - (firstOrderAt ?? Date.now()),
        ...(notes.length > 0 ? { notes: notes.join('; ') } : {}),
      };
      recordScenario(row);
      const problems = [
        ...(drained.drained
          ? []
          : [`not drained in time: ${JSON.stringify(drained.state)}, ${drained.queued} queued`]),
        ...(['lost', 'duplicated', 'stuck', 'ghostSwaps'] as const)
          .filter((k) => row[k] > 0)
          .map((k) => `${row[k]} ${k}`),
        ...(verdict.violations > 0
          ? [`${verdict.violations} violations (verifyRun: ${violatedNames(verdict)})`]
          : []),
        ...(cliViolations > 0 || code !== 0 ? [`check exited ${code} with ${cliViolations} violations`] : []),
        ...(refused.length > 0 ? [`${refused.length} orders refused: ${JSON.stringify(refused[0])}`] : []),
        ...(deadLetters.length > 0
          ? [
              `dead letters: ${deadLetters.map((d) => `${d.consumer} ${d.event_type} ${d.reason}`).join(', ')}`,
            ]
          : []),
        ...(answers.size === 0 ? ['no order was placed'] : []),
      ];
      const finished: Finished = {
        row,
        verdict,
        problems,
        explain: () =>
          [
            `scenario ${options.scenario}: ${problems.join('; ') || 'clean'}`,
            `row: ${JSON.stringify(row)}`,
            `examples: ${JSON.stringify(verdict.examples, null, 1)}`,
            `dead letters: ${JSON.stringify(deadLetters, null, 1)}`,
            `failures: ${details.map((d) => `\n  ${d.n} ${d.reason}: ${d.detail}`).join('')}`,
            `stopped: ${exits.join(', ')}; deaths ${supervisor.deaths}, restarts ${supervisor.restarts}`,
            `check (exit ${code}):\n${report.slice(-6_000)}`,
            supervisor.tails(),
          ].join('\n'),
      };
      if (process.env.FAULTS_VERBOSE) console.log(finished.explain());
      return finished;
    },
    close,
  };
}

/** The guarantees a verdict found violated and their counts, and the first example, in a line. */
function violatedNames(verdict: Verdict): string {
  const named = verdict.guarantees
    .filter((g) => g.status === 'violated')
    .map((g) => `guarantee ${g.guarantee} ${g.title} ×${g.violationCount}`);
  const [first] = verdict.examples;
  return [...named, ...(first === undefined ? [] : [`e.g. ${JSON.stringify(first).slice(0, 400)}`])].join(
    ', ',
  );
}

/** Asserts a finished scenario clean: nothing lost, duplicated, stuck or ghost; no violation. */
export function expectClean(finished: Finished): void {
  expect(finished.problems, finished.explain()).toEqual([]);
  expect(finished.row.completed + finished.row.failed, finished.explain()).toBe(finished.row.orders);
}

/** Runs `body` in a fresh scenario and always cleans up, whether the body passed or threw. */
export async function runScenario<T>(
  options: ScenarioOptions,
  body: (scenario: Scenario) => Promise<T>,
): Promise<T> {
  const scenario = await startScenario(options);
  try {
    return await body(scenario);
  } finally {
    await scenario.close();
  }
}

/** A fault injector that paces itself on the calls a fake receives (see {@link injectPaced}). */
export interface PacedFaults {
  /**
   * Stops injecting; returns how many faults calls took and when the last one was taken (drop one
   * still pending with the fake's `restore()`).
   */
  stop(): { readonly injected: number; readonly lastAt: number | undefined };
}

/**
 * Scripts one fault after every `every` calls counted by `calls` (e.g. the venue's executeSwap
 * calls), and the next only once a call has taken the previous one: scripted faults are taken
 * first come, first served, so each one lands on the next call, spread over the run, and the count
 * of faults injected is exact. `inject(n)` scripts the n-th fault (from 0).
 */
export function injectPaced(options: {
  readonly every: number;
  readonly calls: () => number;
  readonly inject: (n: number) => void;
}): PacedFaults {
  let pushed = 0;
  let at = -Infinity;
  let lastAt: number | undefined;
  let taken = true;
  const look = () => {
    const now = options.calls();
    if (!taken && now > at) {
      taken = true;
      lastAt = Date.now();
    }
    if (taken && now >= at + options.every) {
      options.inject(pushed);
      pushed += 1;
      at = now;
      taken = false;
    }
  };
  const timer = setInterval(look, 10);
  return {
    stop() {
      clearInterval(timer);
      look();
      return { injected: taken ? pushed : pushed - 1, lastAt };
    },
  };
}

/**
 * The common shape of a run with one fault in its middle: `orders` orders from 8 clients; when
 * order `at` is sent, `fault()` starts (a restart, an outage…); its end marks the fault's end.
 * Resolves once every order was answered, the fault is over and the system has drained.
 */
export async function runWithFaultMidRun(
  scenario: Scenario,
  options: { readonly orders?: number; readonly at: number; readonly fault: () => Promise<void> },
): Promise<void> {
  let fault: Promise<void> | undefined;
  const placed = scenario.placeOrders({
    orders: options.orders ?? 200,
    clients: 8,
    onOrder: (i) => {
      if (i === options.at) fault = options.fault().then(() => scenario.markFaultEnd());
    },
  });
  await placed.done;
  await fault;
  await scenario.drain();
}

/**
 * The common shape of a run with faults spread over it: {@link injectPaced} scripts them on a
 * fake's calls while 200 orders are placed and until every order has ended (the last orders meet
 * them too); then `restore` drops a pending one, and recovery is measured from the last one taken.
 * Resolves with how many were injected.
 */
export async function runWithPacedFaults(
  scenario: Scenario,
  options: Parameters<typeof injectPaced>[0] & { readonly restore: () => void },
): Promise<number> {
  const faults = injectPaced(options);
  await scenario.placeOrders({ orders: 200, clients: 8 }).done;
  await scenario.drain();
  const { injected, lastAt } = faults.stop();
  options.restore();
  scenario.markFaultEnd(lastAt);
  return injected;
}
