import { writeSync } from 'node:fs';
import process from 'node:process';

/*
 * Failpoints: named places in the code where a process can be made to die abruptly (as by
 * kill -9) or to freeze (as in a long GC pause or under SIGSTOP), so that fault tests hit the
 * exact moments the guarantees are about — a commit made and its answer not given, a message
 * confirmed and its row not marked — instead of hoping a random kill lands there.
 *
 * FAILPOINTS (or `start --failpoints`) arms them; unset, `failpoint()` costs one comparison of a
 * module variable (see `npm run bench:failpoints`). Lives in src/app because use cases, adapters
 * and operations all carry points, and app is the layer every one of them may import.
 */

/** Every failpoint, in the order an order meets them; README "Failpoints" says what each leaves. */
export const FAILPOINT_NAMES = [
  /** Intake: an order's OrderAccepted committed (with its whole intake batch), no answer sent yet. */
  'api.after-commit',
  /** Outbox relay: the broker confirmed a batch, its rows not yet marked published. */
  'relay.after-confirm',
  /** Saga: the price service answered, the quote not yet stored. */
  'saga.after-price-call',
  /** Saga: a step's events committed, the saga not yet moved on. */
  'saga.after-append',
  /** Saga: the venue answered a call (execute, find or void swap), the outcome not yet stored. */
  'saga.after-venue-call',
  /** Notifier: the provider took a notification, its send not yet recorded. */
  'notifier.after-send',
  /** `rebuild-projections`: a batch of events folded into the new tables, the next not yet read. */
  'projection.mid-batch',
  /** `reconcile`: an order's venue answer recorded, the orders after it not yet asked about. */
  'reconcile.mid-run',
] as const;

export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/** What an armed failpoint does when it fires. */
export type FailpointAction = { readonly kind: 'crash' } | { readonly kind: 'pause'; readonly ms: number };

/** Which hits fire: every one, only the Nth of the process's life, or each with a probability. */
export type FailpointTrigger =
  | { readonly kind: 'every' }
  | { readonly kind: 'nth'; readonly n: number }
  | { readonly kind: 'chance'; readonly percent: number };

export interface FailpointSpec {
  readonly name: FailpointName;
  readonly action: FailpointAction;
  readonly trigger: FailpointTrigger;
}

/** The grammar, for error messages and help texts. */
export const FAILPOINTS_GRAMMAR = 'name[=crash|=pause:<ms>][@<n>|%<percent>], comma-separated';

const isName = (name: string): name is FailpointName => (FAILPOINT_NAMES as readonly string[]).includes(name);

function parseAction(text: string, entry: string): FailpointAction {
  if (text === 'crash') return { kind: 'crash' };
  const pause = /^pause:(\d{1,7})$/.exec(text);
  const ms = Number(pause?.[1]);
  if (pause && ms >= 1) return { kind: 'pause', ms };
  throw new Error(`"${entry}": action "${text}" must be crash or pause:<ms> (ms from 1 to 9999999)`);
}

function parseTrigger(text: string, entry: string): FailpointTrigger {
  if (text === '') return { kind: 'every' };
  const value = text.slice(1);
  if (text.startsWith('@')) {
    if (/^\d{1,9}$/.test(value) && Number(value) >= 1) return { kind: 'nth', n: Number(value) };
    throw new Error(`"${entry}": trigger "${text}" must be @<n> with n a whole number from 1`);
  }
  if (/^\d{1,3}(\.\d+)?$/.test(value) && Number(value) > 0 && Number(value) <= 100)
    return { kind: 'chance', percent: Number(value) };
  throw new Error(`"${entry}": trigger "${text}" must be %<percent>, above 0 and at most 100`);
}

/**
 * Parses a FAILPOINTS value: `name[=action][trigger]`, comma-separated, e.g.
 * `saga.after-append=crash@3,relay.after-confirm=pause:2000`. The action is `crash` (the default)
 * or `pause:<ms>`; the trigger `@<n>` (only the nth hit of the process's life), `%<percent>` (each
 * hit with that probability) or nothing (every hit). Empty: nothing armed.
 * @throws Error naming the first bad entry and what is wrong with it: an unknown name, a bad
 *   action or trigger, a name given twice. A typo must not silently test nothing.
 */
export function parseFailpoints(text: string): FailpointSpec[] {
  const specs: FailpointSpec[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const [, head = '', trigger = ''] = /^([^@%]*)([@%].*)?$/.exec(entry) ?? [];
    const [name = '', ...action] = head.split('=');
    if (!isName(name))
      throw new Error(`"${entry}": unknown failpoint "${name}" (known: ${FAILPOINT_NAMES.join(', ')})`);
    if (specs.some((spec) => spec.name === name)) throw new Error(`"${entry}": ${name} is named twice`);
    specs.push({
      name,
      action: action.length === 0 ? { kind: 'crash' } : parseAction(action.join('='), entry),
      trigger: parseTrigger(trigger, entry),
    });
  }
  return specs;
}

/** The spec as FAILPOINTS writes it (for the start-up warning). */
export function formatFailpoint({ name, action, trigger }: FailpointSpec): string {
  const what = action.kind === 'crash' ? 'crash' : `pause:${action.ms}`;
  const when =
    trigger.kind === 'nth' ? `@${trigger.n}` : trigger.kind === 'chance' ? `%${trigger.percent}` : '';
  return `${name}=${what}${when}`;
}

interface Armed {
  readonly spec: FailpointSpec;
  hits: number;
}

export interface ArmOptions {
  /** Where the line of a firing failpoint goes (default: stderr, written synchronously). */
  readonly log?: (line: string) => void;
  /** The `%` trigger's dice (default Math.random). */
  readonly random?: () => number;
}

/** Armed failpoints by name; undefined while none is, which is all `failpoint()` looks at. */
let armed: Partial<Record<FailpointName, Armed>> | undefined;
/** Synchronous, so that the line is out before a crash. */
const toStderr = (line: string): void => void writeSync(2, `${line}\n`);
let log: (line: string) => void = toStderr;
let random: () => number = Math.random;

/**
 * Arms these failpoints for the rest of the process's life, hit counts from zero; an empty list
 * disarms them all. Called once at start with the configuration's (tests arm and disarm).
 */
export function armFailpoints(specs: readonly FailpointSpec[], options: ArmOptions = {}): void {
  log = options.log ?? toStderr;
  random = options.random ?? Math.random;
  armed =
    specs.length === 0 ? undefined : Object.fromEntries(specs.map((spec) => [spec.name, { spec, hits: 0 }]));
}

/** Blocks the whole thread: timers, sockets and heartbeats all stand still, as under SIGSTOP. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function trip(point: Armed): void {
  point.hits += 1;
  const { name, action, trigger } = point.spec;
  const fires =
    trigger.kind === 'every' ||
    (trigger.kind === 'nth' ? point.hits === trigger.n : random() * 100 < trigger.percent);
  if (!fires) return;
  if (action.kind === 'pause') {
    log(`failpoint ${name}: pause ${action.ms} ms (hit ${point.hits})`);
    freeze(action.ms);
    return;
  }
  // The line is the supervisor's count of injected faults; then death as by kill -9: nothing
  // flushed, no shutdown hook, no exit handler.
  log(`failpoint ${name}: crash (hit ${point.hits})`);
  process.kill(process.pid, 'SIGKILL');
}

/**
 * Marks a failpoint: when FAILPOINTS arms `name`, this crashes or freezes the process here, at
 * the hits its trigger selects. Synchronous on purpose: nothing else of the process runs between
 * the moment the point stands for and the fault.
 */
export function failpoint(name: FailpointName): void {
  if (armed === undefined) return;
  const point = armed[name];
  if (point !== undefined) trip(point);
}
