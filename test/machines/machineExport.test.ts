import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMachine } from 'xstate';
import { afterEach, describe, expect, it } from 'vitest';
import {
  embedInReadme,
  exportMachines,
  machineExportFiles,
  README_BEGIN,
  README_END,
  toMermaid,
} from '../../src/machines/export.ts';
import type { ExportedVersion, MachineExport } from '../../src/machines/export.ts';
import { orderSaga, SAGA } from '../../src/machines/orderSaga.ts';
import { CURRENT_SAGA_VERSION } from '../../src/machines/registry.ts';
import { staleMachineExport, writeMachineExport } from '../../src/ops/machineExport.ts';
import { cli } from '../cli/run.ts';

/*
 * `npm run machine:export`: the saga machine as JSON and as a Mermaid diagram under docs/, and the
 * diagram in README.md. The committed files must be what the code exports now; the rest pins down
 * what the documents say, and that the command finds and repairs a stale export.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A copy of the repository's README and docs/ export in a fresh directory. */
async function copyOfExport(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'machine-export-'));
  dirs.push(dir);
  await cp(join(REPO, 'README.md'), join(dir, 'README.md'));
  await cp(join(REPO, 'docs'), join(dir, 'docs'), { recursive: true });
  return dir;
}

const current = (exported: MachineExport): ExportedVersion => {
  const version = exported.versions.find((v) => v.version === exported.current_version);
  if (!version) throw new Error('no current version in the export');
  return version;
};

describe('the committed machine export', () => {
  it('is what the code exports now (else: run `npm run machine:export`)', async () => {
    const stale = await staleMachineExport(REPO);
    expect(
      stale,
      `The saga machine changed but docs/ and README.md were not regenerated: run \`npm run machine:export\` and commit the result (${stale.map((s) => `${s.path}: ${s.problem}`).join('; ')})`,
    ).toEqual([]);
  });

  it('embeds the current diagram in README.md as a mermaid block', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const mermaid = await readFile(join(REPO, 'docs', 'saga-machine.mmd'), 'utf8');
    expect(readme).toContain(`${README_BEGIN}\n\n\`\`\`mermaid\n${mermaid}\`\`\`\n\n${README_END}`);
  });
});

describe('the JSON export', () => {
  const exported = exportMachines();
  const version = current(exported);
  const state = (id: string) => {
    const found = version.states.find((s) => s.id === id);
    if (!found) throw new Error(`no state ${id}`);
    return found;
  };

  it('has every registered version, the current one named, and the step declarations', () => {
    expect(exported.current_version).toBe(CURRENT_SAGA_VERSION);
    expect(exported.versions.map((v) => v.version)).toContain(CURRENT_SAGA_VERSION);
    expect(exported.steps).toEqual(SAGA);
    // What a reader gets back from the file is the same document.
    const text = machineExportFiles(exported).get('saga-machine.json') ?? '';
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(exported)));
  });

  it('lists the states with their parents, initial children and the steps they run', () => {
    expect(version.initial).toBe('orderSaga.awaitingOrder');
    expect(version.states.map((s) => s.key)).toEqual([
      'awaitingOrder',
      'quotingPrice',
      'openingPosition',
      'executingSwap',
      'sendingSwap',
      'awaitingOutcome',
      'completing',
      'compensating',
      'completed',
      'failed',
    ]);
    expect(state('orderSaga.executingSwap')).toMatchObject({
      parent: null,
      type: 'compound',
      initial: 'orderSaga.executingSwap.sendingSwap',
      step: null,
    });
    expect(state('orderSaga.executingSwap.awaitingOutcome')).toMatchObject({
      key: 'awaitingOutcome',
      parent: 'orderSaga.executingSwap',
      type: 'atomic',
      step: 'awaitingOutcome',
    });
    expect(state('orderSaga.completed').type).toBe('final');
  });

  it('gives each transition its event, target and actions', () => {
    expect(state('orderSaga.quotingPrice').transitions).toEqual([
      { event: 'PriceQuoted', target: 'orderSaga.openingPosition', actions: ['applyOrderEvent'] },
      { event: 'StepFailed', target: 'orderSaga.compensating', actions: ['recordFailure'] },
      { event: 'DeadlinePassed', target: 'orderSaga.compensating', actions: ['recordFailure'] },
      { event: 'OrderFailed', target: 'orderSaga.failed', actions: ['applyOrderEvent'] },
    ]);
    // The machine's own: position events only keep the context current.
    expect(version.transitions).toEqual([
      { event: 'PositionUpdated', target: null, actions: ['applyPositionEvent'] },
      { event: 'PositionClosed', target: null, actions: ['applyPositionEvent'] },
    ]);
  });

  it('names the compensation path', () => {
    expect(version.compensation).toEqual(['orderSaga.compensating', 'orderSaga.failed']);
  });
});

describe('the Mermaid diagram', () => {
  const mermaid = toMermaid(current(exportMachines()));
  const lines = mermaid.split('\n').map((line) => line.trim());

  it('is a stateDiagram-v2 whose arrows carry their events', () => {
    expect(lines[0]).toBe('stateDiagram-v2');
    expect(lines).toContain('[*] --> awaitingOrder');
    expect(lines).toContain('awaitingOrder --> quotingPrice: OrderAccepted');
    // Two events between the same states share one arrow.
    expect(lines).toContain('quotingPrice --> compensating: StepFailed, DeadlinePassed');
    expect(lines).toContain('awaitingOutcome --> completing: SwapExecuted');
    expect(lines).toContain('completed --> [*]');
    expect(lines).toContain('class compensating,failed compensation');
  });

  it('declares nested states inside their parent, before any arrow names them elsewhere', () => {
    const open = mermaid.indexOf('state executingSwap {');
    const close = mermaid.indexOf('}', open);
    const block = mermaid.slice(open, close);
    expect(block).toContain('[*] --> sendingSwap');
    expect(block).toContain('sendingSwap --> awaitingOutcome: SwapExecuting');
    // Mermaid puts a state where it is first named: `completing` must not be named in the block.
    expect(block).not.toContain('completing');
    expect(mermaid.indexOf('openingPosition --> sendingSwap')).toBeGreaterThan(close);
  });

  it('refuses a machine with two states of one name, which Mermaid would draw as one', () => {
    const twice = createMachine({
      id: 'twice',
      initial: 'a',
      states: { a: { initial: 'x', states: { x: {} } }, b: { initial: 'x', states: { x: {} } } },
    });
    expect(() => toMermaid(exportMachines({ 1: twice }, 1).versions[0] as ExportedVersion)).toThrow(
      'Two states are named x: Mermaid cannot tell them apart',
    );
  });

  it('goes to saga-machine.mmd for the current version and saga-machine-v<n>.mmd for older ones', () => {
    const files = machineExportFiles(exportMachines({ 1: orderSaga, 2: orderSaga }, 2));
    expect([...files.keys()].sort()).toEqual([
      'saga-machine-v1.mmd',
      'saga-machine.json',
      'saga-machine.mmd',
    ]);
    expect(files.get('saga-machine-v1.mmd')).toContain('%% orderSaga, version 1');
    expect(files.get('saga-machine.mmd')).toContain('%% orderSaga, version 2');
  });
});

describe('machine export, on a stale copy', () => {
  it('names each stale file, and writing repairs every one', async () => {
    const dir = await copyOfExport();
    await writeFile(join(dir, 'docs', 'saga-machine.mmd'), 'stateDiagram-v2\n  old --> older\n');
    await rm(join(dir, 'docs', 'saga-machine.json'));
    await writeFile(join(dir, 'docs', 'saga-machine-v9.mmd'), 'stateDiagram-v2\n');
    const readme = await readFile(join(dir, 'README.md'), 'utf8');
    await writeFile(join(dir, 'README.md'), embedInReadme(readme, 'stateDiagram-v2\n  gone\n'));

    expect(await staleMachineExport(dir)).toEqual([
      { path: 'docs/saga-machine.json', problem: 'missing' },
      { path: 'docs/saga-machine.mmd', problem: 'differs' },
      { path: 'README.md', problem: 'differs' },
      { path: 'docs/saga-machine-v9.mmd', problem: 'not exported any more' },
    ]);
    await writeMachineExport(dir);
    expect(await staleMachineExport(dir)).toEqual([]);
    expect((await readdir(join(dir, 'docs'))).sort()).toEqual(['saga-machine.json', 'saga-machine.mmd']);
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toBe(
      await readFile(join(REPO, 'README.md'), 'utf8'),
    );
  });

  it('says where the diagram goes when README.md has no block for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'machine-export-'));
    dirs.push(dir);
    await writeFile(join(dir, 'README.md'), '# a project\n');
    await expect(staleMachineExport(dir)).rejects.toThrow(
      `README.md has no diagram block: put the lines "${README_BEGIN}" and "${README_END}"`,
    );
  });

  it('through the command line: --check exits 1 naming the files and the command, then export writes them', async () => {
    const dir = await copyOfExport();
    await rm(join(dir, 'docs'), { recursive: true });
    await mkdir(join(dir, 'docs'));

    const check = await cli(['machine', 'export', '--check', '--root', dir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toBe('docs/saga-machine.json: missing\ndocs/saga-machine.mmd: missing\n');
    expect(check.stderr).toContain('The machine export is stale: run `npm run machine:export`.');

    const write = await cli(['machine', 'export', '--root', dir]);
    expect(write).toMatchObject({
      code: 0,
      stdout: 'updated: docs/saga-machine.json, docs/saga-machine.mmd\n',
    });
    expect(await readFile(join(dir, 'docs', 'saga-machine.mmd'), 'utf8')).toBe(
      await readFile(join(REPO, 'docs', 'saga-machine.mmd'), 'utf8'),
    );
    expect(await cli(['machine', 'export', '--check', '--root', dir])).toMatchObject({ code: 0, stdout: '' });
  });
});
