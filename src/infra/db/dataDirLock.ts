import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import lockfile from 'proper-lockfile';
import type { Logger } from '../logger.ts';

/** proper-lockfile refreshes the lock every UPDATE_MS; a lock not refreshed for STALE_MS is stale. */
const STALE_MS = 15_000;
const UPDATE_MS = 5_000;
/** When the holder is known dead: proper-lockfile's smallest stale time. */
const DEAD_OWNER_STALE_MS = 2_000;
const OWNER_FILE = '.owner.pid';

/**
 * False when no process has that pid, or only a zombie does (killed, not yet reaped by its parent,
 * e.g. `npm start` a moment after the kill; Linux's /proc tells). A process not ours (EPERM) is alive.
 */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return !/^State:\s+Z/m.test(status);
}

async function ownerOf(dataDir: string): Promise<number | undefined> {
  const text = await readFile(join(dataDir, OWNER_FILE), 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Locks PGlite's data directory for this process: PGlite is one process's database, and a second
 * process on the same files would corrupt them. proper-lockfile keeps the lock (refreshed while we
 * run, stale 15 s after a crash); the owner's pid is kept beside it. A second live process is
 * refused at once, naming the holder. After a crash (kill -9, out of memory), a restart takes over
 * the dead process's lock within seconds instead of failing, and says so.
 *
 * @returns the release function.
 */
export async function lockDataDir(dataDir: string, logger: Logger): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true });
  const options = {
    stale: STALE_MS,
    update: UPDATE_MS,
    onCompromised: (error: Error) => logger.error({ err: error }, 'lost the lock on the data directory'),
  };
  const acquire = async () => {
    const release = await lockfile.lock(dataDir, options);
    await writeFile(join(dataDir, OWNER_FILE), `${process.pid}\n`);
    return release;
  };
  const inUse = (owner: number | undefined, cause: unknown) =>
    new Error(
      `The data directory ${dataDir} is in use by another process` +
        `${owner === undefined ? '' : ` (pid ${owner})`}; stop it, or set DATA_DIR to another directory`,
      { cause },
    );

  try {
    return await acquire();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    const owner = await ownerOf(dataDir);
    // Our own pid: a restarted container often gets the pid its crashed predecessor had.
    if (owner === undefined || (owner !== process.pid && (await alive(owner)))) throw inUse(owner, error);
    logger.warn(
      { dataDir, pid: owner },
      'the process that held the data directory is gone; taking over its lock',
    );
  }
  // The dead process's lock is refreshed no more: remove it once it is 2 s old rather than after
  // the 15 s that protect a live process whose event loop stalls; then hold the lock as usual.
  const removeDead = await lockfile.lock(dataDir, {
    ...options,
    stale: DEAD_OWNER_STALE_MS,
    update: DEAD_OWNER_STALE_MS / 2,
    retries: { retries: 10, minTimeout: 500, maxTimeout: 500 },
  });
  await removeDead();
  try {
    return await acquire();
  } catch (error) {
    // Another process started in the same moment and took it first.
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    throw inUse(await ownerOf(dataDir), error);
  }
}
