/**
 * `npm run golden:update`: records the golden histories of the current saga machine version under
 * test/fixtures/golden/v<version>/. Only for a version not recorded yet: a released version's
 * histories are what stored sagas hold, so they are never regenerated — a change that does not
 * replay them any more needs a new version (src/machines/registry.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import { format, resolveConfig } from 'prettier';
import { CURRENT_SAGA_VERSION, machineFor } from '../../src/machines/registry.ts';
import { GOLDEN_ROOT, goldenHistoriesOf } from './goldenHistories.ts';

const version = CURRENT_SAGA_VERSION;
const dir = join(GOLDEN_ROOT, `v${version}`);
if (existsSync(dir)) {
  console.error(
    `Saga version ${version} is released: its golden histories (${dir}) are never regenerated. ` +
      'If the machine no longer replays them, give the change a new version in src/machines/registry.ts.',
  );
  process.exit(1);
}
await mkdir(dir, { recursive: true });
const histories = goldenHistoriesOf(machineFor(version), version);
const options = await resolveConfig(dir);
for (const [name, history] of histories) {
  const file = join(dir, `${name}.json`);
  await writeFile(file, await format(JSON.stringify(history), { ...options, parser: 'json' }));
  console.log(`${file}: ${history.events.length} events, ${history.paths.length} path(s)`);
}
