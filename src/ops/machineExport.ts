import { readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { embedInReadme, machineExportFiles } from '../machines/export.ts';

/**
 * `machine export`: writes the saga machine's JSON and Mermaid documents (src/machines/export.ts)
 * under `<root>/docs/` and refreshes the diagram embedded in `<root>/README.md`. `--check` (and
 * test/machines/machineExport.test.ts) compares instead of writing, so a change to the machine that
 * was not exported is caught.
 */

/** A committed file that differs from what the code exports now. */
export interface StaleFile {
  readonly path: string;
  readonly problem: 'missing' | 'differs' | 'not exported any more';
}

/** Every file the export owns, with its text as the code exports it now (README included). */
async function expectedFiles(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const docs = machineExportFiles();
  for (const [name, text] of docs) files.set(join('docs', name), text);
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  files.set('README.md', embedInReadme(readme, docs.get('saga-machine.mmd') ?? ''));
  return files;
}

/** Earlier exports of versions no longer registered (docs/saga-machine-v<n>.mmd). */
async function leftovers(root: string, expected: Map<string, string>): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(root, 'docs'));
  } catch {
    return [];
  }
  return names
    .filter((name) => /^saga-machine(?:-v\d+)?\.(?:mmd|json)$/.test(name))
    .map((name) => join('docs', name))
    .filter((path) => !expected.has(path));
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** What differs between the committed export under `root` and the machine as the code has it. */
export async function staleMachineExport(root: string): Promise<StaleFile[]> {
  const expected = await expectedFiles(root);
  const stale: StaleFile[] = [];
  for (const [path, text] of expected) {
    const committed = await readOrNull(join(root, path));
    if (committed === null) stale.push({ path, problem: 'missing' });
    else if (committed !== text) stale.push({ path, problem: 'differs' });
  }
  for (const path of await leftovers(root, expected)) stale.push({ path, problem: 'not exported any more' });
  return stale;
}

/** Writes the export under `root`, removes exports of versions gone; returns the paths changed. */
export async function writeMachineExport(root: string): Promise<string[]> {
  const stale = await staleMachineExport(root);
  const expected = await expectedFiles(root);
  await mkdir(join(root, 'docs'), { recursive: true });
  for (const { path, problem } of stale) {
    const text = expected.get(path);
    if (problem === 'not exported any more' || text === undefined) await rm(join(root, path));
    else await writeFile(join(root, path), text);
  }
  return stale.map((s) => s.path);
}
