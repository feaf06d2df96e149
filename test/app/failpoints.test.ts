import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  armFailpoints,
  FAILPOINT_NAMES,
  failpoint,
  formatFailpoint,
  parseFailpoints,
} from '../../src/app/failpoints.ts';
import { loadConfig } from '../../src/config.ts';
import { cli } from '../cli/run.ts';

/** Arms `spec` with its lines caught; returns them. */
function armed(spec: string, random?: () => number): string[] {
  const lines: string[] = [];
  armFailpoints(parseFailpoints(spec), { log: (line) => lines.push(line), ...(random ? { random } : {}) });
  return lines;
}

afterEach(() => armFailpoints([]));

describe('the FAILPOINTS grammar', () => {
  it('reads names, actions and triggers, crash on every hit by default', () => {
    expect(
      parseFailpoints(
        ' saga.after-append=crash@3, relay.after-confirm=pause:2000@1,api.after-commit,notifier.after-send%12.5 ',
      ),
    ).toEqual([
      { name: 'saga.after-append', action: { kind: 'crash' }, trigger: { kind: 'nth', n: 3 } },
      { name: 'relay.after-confirm', action: { kind: 'pause', ms: 2000 }, trigger: { kind: 'nth', n: 1 } },
      { name: 'api.after-commit', action: { kind: 'crash' }, trigger: { kind: 'every' } },
      { name: 'notifier.after-send', action: { kind: 'crash' }, trigger: { kind: 'chance', percent: 12.5 } },
    ]);
    expect(parseFailpoints('')).toEqual([]);
  });

  it('writes a spec back as it reads it', () => {
    const text = 'saga.after-append=crash@3,relay.after-confirm=pause:2000,api.after-commit=crash%50';
    expect(parseFailpoints(text).map(formatFailpoint).join(',')).toBe(text);
  });

  it('knows every failpoint by name, once', () => {
    expect(new Set(FAILPOINT_NAMES).size).toBe(FAILPOINT_NAMES.length);
    expect(parseFailpoints(FAILPOINT_NAMES.join(',')).map((spec) => spec.name)).toEqual([...FAILPOINT_NAMES]);
  });

  describe('when an entry is wrong', () => {
    it.each([
      [
        'saga.afer-append',
        /"saga.afer-append": unknown failpoint "saga.afer-append" \(known: api.after-commit, /,
      ],
      ['saga.after-append=crsh', /action "crsh" must be crash or pause:<ms>/],
      ['saga.after-append=pause', /action "pause" must be crash or pause:<ms>/],
      ['saga.after-append=pause:0', /action "pause:0" must be crash or pause:<ms>/],
      ['saga.after-append@0', /trigger "@0" must be @<n> with n a whole number from 1/],
      ['saga.after-append@2@3', /trigger "@2@3" must be @<n>/],
      ['saga.after-append%0', /trigger "%0" must be %<percent>, above 0 and at most 100/],
      ['saga.after-append%101', /trigger "%101" must be %<percent>/],
      ['saga.after-append,saga.after-append=pause:5', /saga.after-append is named twice/],
    ])('refuses %s, naming the bad part', (spec, message) => {
      expect(() => parseFailpoints(spec)).toThrow(message);
    });

    it('refuses to load the configuration, naming FAILPOINTS', () => {
      expect(() => loadConfig({ FAILPOINTS: 'api.after-comit' })).toThrow(
        /Invalid configuration:\n {2}FAILPOINTS: "api.after-comit": unknown failpoint/,
      );
      expect(loadConfig({ FAILPOINTS: 'api.after-commit@2' }).failpoints).toEqual(
        parseFailpoints('api.after-commit@2'),
      );
      expect(loadConfig({}).failpoints).toEqual([]);
    });

    it('refuses `start --failpoints` with a typo before anything starts (exit 2)', async () => {
      const run = await cli(['start', '--failpoints', 'relay.after-confrim']);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        /option '--failpoints <spec>' argument 'relay.after-confrim' is invalid\. "relay.after-confrim": unknown failpoint/,
      );
    });
  });
});

describe('an armed failpoint', () => {
  it('with @n fires on the nth hit only; other failpoints never', () => {
    const lines = armed('saga.after-append=pause:1@3');
    for (let i = 0; i < 6; i++) {
      failpoint('saga.after-append');
      failpoint('saga.after-venue-call');
    }
    expect(lines).toEqual(['failpoint saga.after-append: pause 1 ms (hit 3)']);
  });

  it('without a trigger fires on every hit', () => {
    const lines = armed('relay.after-confirm=pause:1');
    failpoint('relay.after-confirm');
    failpoint('relay.after-confirm');
    expect(lines).toEqual([
      'failpoint relay.after-confirm: pause 1 ms (hit 1)',
      'failpoint relay.after-confirm: pause 1 ms (hit 2)',
    ]);
  });

  it('with %p fires on the hits whose dice fall below p', () => {
    const dice = [0.9, 0.2, 0.29, 0.3];
    const lines = armed('notifier.after-send=pause:1%30', () => dice.shift() ?? 1);
    for (let i = 0; i < 4; i++) failpoint('notifier.after-send');
    expect(lines).toEqual([
      'failpoint notifier.after-send: pause 1 ms (hit 2)',
      'failpoint notifier.after-send: pause 1 ms (hit 3)',
    ]);
  });

  it('counts hits afresh when armed again, and disarmed does nothing', () => {
    armed('api.after-commit=pause:1@1');
    failpoint('api.after-commit');
    const lines = armed('api.after-commit=pause:1@1');
    failpoint('api.after-commit');
    armFailpoints([]);
    failpoint('api.after-commit');
    expect(lines).toEqual(['failpoint api.after-commit: pause 1 ms (hit 1)']);
  });

  it('with pause freezes the whole thread: a timer due meanwhile runs only after it', async () => {
    armed('projection.mid-batch=pause:300');
    let fired: number | undefined;
    const timer = new Promise<void>((resolve) =>
      setTimeout(() => {
        fired = performance.now();
        resolve();
      }, 1),
    );
    const started = performance.now();
    failpoint('projection.mid-batch');
    const resumed = performance.now();
    expect(fired).toBeUndefined();
    await timer;
    expect(resumed - started).toBeGreaterThanOrEqual(299);
    expect(fired).toBeGreaterThanOrEqual(resumed);
  });
});

/** Runs test/fixtures/failpointLoop.ts with `command` (Node or Deno). */
const loop = (command: readonly string[], env: Record<string, string>) =>
  cli(['test/fixtures/failpointLoop.ts'], env, command);

describe.each([
  ['Node', [process.execPath, '--import', 'tsx']],
  ['Deno', ['node_modules/.bin/deno', 'run', '--allow-env']],
])('a crash failpoint on %s', (_, command) => {
  it('kills the process at the nth hit with SIGKILL, after one line on stderr', async () => {
    const run = await loop(command, { FAILPOINTS: 'saga.after-append@3' });
    expect(run.signal).toBe('SIGKILL');
    expect(run.stdout).toBe('hit 1\nhit 2\nhit 3\n');
    expect(run.stderr).toContain('failpoint saga.after-append: crash (hit 3)\n');
  });

  it('does nothing when FAILPOINTS names another point', async () => {
    const run = await loop(command, { FAILPOINTS: 'saga.after-venue-call', HITS: '2' });
    expect([run.code, run.signal, run.stdout]).toEqual([0, null, 'hit 1\nhit 2\ndone\n']);
  });
});
