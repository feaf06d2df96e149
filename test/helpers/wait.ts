import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits until `check` gives a value (anything but undefined or false) and resolves with it,
 * polling every `everyMs`; fails after `timeoutMs` naming `what`. For conditions with no event to
 * await: a database row, a queue's consumers, another process.
 */
export async function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Waits until `check` holds, polling every 10 ms; fails after `timeoutMs` naming `what`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  await until(check, what, timeoutMs, 10);
}
