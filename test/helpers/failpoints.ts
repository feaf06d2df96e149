import type { FailpointName } from '../../src/app/failpoints.ts';
import type { ClusterProcess } from './cluster.ts';
import { until } from './wait.ts';

/**
 * Resolves once `service`, armed with a crash failpoint, has died at it: killed by SIGKILL after
 * writing the failpoint's line for that hit. Fails showing its output when it exits otherwise, or
 * lives on past `timeoutMs`.
 */
export async function crashedAt(
  service: ClusterProcess,
  point: FailpointName,
  hit = 1,
  timeoutMs = 60_000,
): Promise<void> {
  const { child } = service;
  const failure = (what: string) => new Error(`${service.name} ${what}:\n${service.output()}`);
  await until(
    () => child.exitCode !== null || child.signalCode !== null,
    `${service.name} to crash at ${point}`,
    timeoutMs,
  ).catch(() => {
    throw failure(`did not crash at ${point} within ${timeoutMs} ms`);
  });
  if (child.signalCode !== 'SIGKILL')
    throw failure(`exited ${child.exitCode ?? child.signalCode}, not by SIGKILL`);
  // The line was written before the kill; its last bytes may still be on their way through the pipe.
  const line = `failpoint ${point}: crash (hit ${hit})`;
  await until(() => service.output().includes(line), line, 5_000).catch(() => {
    throw failure(`died without the line "${line}"`);
  });
}
