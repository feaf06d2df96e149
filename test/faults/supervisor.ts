import { isService } from '../helpers/cluster.ts';
import type { Cluster, ClusterProcess, ClusterService } from '../helpers/cluster.ts';

/** One life of a service process: from its start to its death (or to now). */
export interface Life {
  readonly name: string;
  readonly pid: number | undefined;
  readonly startedAt: number;
  /** When it was seen dead; undefined while it lives. */
  readonly diedAt: number | undefined;
  /** Exit code, or the signal that ended it (`SIGKILL`), once dead. */
  readonly exit: string | undefined;
  output(): string;
}

/** What a failpoint prints on stderr just before it kills its process (see src/app/failpoints.ts). */
const FAULT_LINE = /^failpoint \S+: crash \(hit \d+\)$/gm;

export interface Supervisor {
  /** Service processes that died while supervised (a crash, a kill, an exit of their own). */
  readonly deaths: number;
  /** Processes started again in place of dead ones. */
  readonly restarts: number;
  /** Every life of every supervised process, in order of start. */
  lives(): readonly Life[];
  /** The lines failpoints printed before they killed their process: the faults injected. */
  faultLines(): string[];
  /** The last `chars` of each life's output, labelled, for an assertion message. */
  tails(chars?: number): string;
  /** Stops restarting (before the cluster is stopped on purpose). */
  stop(): void;
}

/**
 * A small supervisor, as systemd or Kubernetes would be for these processes: a service process of
 * the cluster that dies while supervised is started again after a short backoff (doubling from
 * `minBackoffMs` while it keeps dying young), with the same roles, environment and port, so that
 * clients keep their address. It counts deaths and restarts and keeps every life's output.
 * It polls rather than waits on each exit, so processes the scenario starts itself are supervised
 * as well. Only processes started by `cluster.startService` can be started again.
 */
export function superviseCluster(
  cluster: Cluster,
  options: { readonly minBackoffMs?: number; readonly maxBackoffMs?: number } = {},
): Supervisor {
  const minBackoff = options.minBackoffMs ?? 200;
  const maxBackoff = options.maxBackoffMs ?? 3_000;
  const lives = new Map<ClusterProcess, { startedAt: number; diedAt?: number }>();
  /** Young deaths in a row per port (a process and its replacements), for the backoff. */
  const streak = new Map<number, number>();
  let deaths = 0;
  let restarts = 0;
  let stopped = false;

  const dead = (p: ClusterProcess) => p.child.exitCode !== null || p.child.signalCode !== null;

  const restart = (died: ClusterService) => {
    // A process that lived a while starts a fresh streak: its death is not a crash loop.
    const young = Date.now() - (lives.get(died)?.startedAt ?? 0) < 10_000;
    const youngDeaths = young ? (streak.get(died.port) ?? 0) + 1 : 1;
    streak.set(died.port, youngDeaths);
    const delay = Math.min(maxBackoff, minBackoff * 2 ** (youngDeaths - 1));
    setTimeout(() => {
      if (stopped) return;
      restarts += 1;
      // An api waits until it serves; one that dies meanwhile is found dead by the next poll.
      cluster.startService(died.spec, { port: died.port }).catch(() => {});
    }, delay);
  };

  const poll = setInterval(() => {
    for (const p of cluster.services) {
      const life = lives.get(p) ?? { startedAt: Date.now() };
      lives.set(p, life);
      if (life.diedAt !== undefined || !dead(p)) continue;
      life.diedAt = Date.now();
      if (stopped) continue;
      deaths += 1;
      if (isService(p)) restart(p);
    }
  }, 50);

  const describe = (p: ClusterProcess): Life => {
    const life = lives.get(p);
    const { exitCode, signalCode } = p.child;
    return {
      name: p.name,
      pid: p.child.pid,
      startedAt: life?.startedAt ?? Date.now(),
      diedAt: life?.diedAt,
      exit: signalCode ?? (exitCode === null ? undefined : String(exitCode)),
      output: () => p.output(),
    };
  };

  return {
    get deaths() {
      return deaths;
    },
    get restarts() {
      return restarts;
    },
    lives: () => cluster.services.map(describe),
    faultLines: () => cluster.services.flatMap((p) => p.output().match(FAULT_LINE) ?? []),
    tails: (chars = 2_000) =>
      cluster.services
        .map((p) => {
          const life = describe(p);
          const output = life.output().trim();
          // Error lines (pino level 50 and up) anywhere in the life, the last of each message.
          const errors = new Map<string, string>();
          for (const line of output.split('\n'))
            if (/^\{"level":[56]0,/.test(line)) errors.set(/"msg":"([^"]*)"/.exec(line)?.[1] ?? '', line);
          const errorLines = [...errors.values()].map((line) => line.slice(0, 1_500)).join('\n');
          return [
            `--- ${life.name} (pid ${life.pid}, ${life.exit === undefined ? 'alive' : `exit ${life.exit}`}) ---`,
            ...(errors.size > 0 ? [`errors (last of each):\n${errorLines}`] : []),
            `tail:\n${output.slice(-chars) || '(no output)'}`,
          ].join('\n');
        })
        .join('\n'),
    stop() {
      stopped = true;
      clearInterval(poll);
    },
  };
}
