/**
 * What a failpoint costs the code it sits in: nanoseconds per `failpoint()` call with FAILPOINTS
 * unset (as in production), and with another failpoint armed (the call looks its own name up and
 * finds nothing), against an empty loop of the same length. Median of a few rounds.
 *
 *   npm run bench:failpoints
 *   npm run bench:failpoints -- --calls 50000000 --rounds 9
 *
 * Each case has a loop of its own, so that every call site stays monomorphic as in the service.
 */
import process from 'node:process';
import { parseArgs } from 'node:util';
import { armFailpoints, failpoint, parseFailpoints } from '../src/app/failpoints.ts';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '100000000' },
    rounds: { type: 'string', default: '7' },
  },
});
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);

/** Kept, so that no loop is optimized away. */
let sink = 0;

function emptyLoop(): void {
  for (let i = 0; i < CALLS; i++) sink += i & 1;
}

function failpointLoop(): void {
  for (let i = 0; i < CALLS; i++) {
    failpoint('saga.after-append');
    sink += i & 1;
  }
}

/** Nanoseconds per iteration of `run`, the median of ROUNDS rounds (after one to warm up). */
function measure(run: () => void): number {
  run();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = process.hrtime.bigint();
    run();
    rounds.push(Number(process.hrtime.bigint() - started) / CALLS);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)] ?? Number.NaN;
}

const empty = measure(emptyLoop);
armFailpoints([]);
const unset = measure(failpointLoop);
armFailpoints(parseFailpoints('reconcile.mid-run'));
const other = measure(failpointLoop);
armFailpoints([]);

const runtime = 'Deno' in globalThis ? `Deno ${process.versions.deno}` : `Node ${process.version}`;
const row = (what: string, ns: number, base?: number) =>
  `  ${what.padEnd(34)} ${ns.toFixed(2).padStart(6)} ns${base === undefined ? '' : ` (${ns - base >= 0 ? '+' : ''}${(ns - base).toFixed(2)} over the empty loop)`}`;
console.log(
  [
    `failpoint(): ${CALLS.toLocaleString('en')} calls a round, median of ${ROUNDS} rounds, ${runtime}`,
    row('empty loop, per iteration', empty),
    row('FAILPOINTS unset, per call', unset, empty),
    row('another failpoint armed, per call', other, empty),
    `(sink ${sink % 2})`,
  ].join('\n'),
);
