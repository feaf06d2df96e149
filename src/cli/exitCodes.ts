/**
 * The exit codes of `market-order-saga`, the same for every command, so that a script can branch
 * on them without reading the output. `--help` and README list them.
 */
export const EXIT = {
  /** Done, and nothing wrong found. */
  ok: 0,
  /**
   * The command ran and found problems or did not get the outcome asked for: `check` found a
   * guarantee violated, `replay-check` a saga at risk, `reconcile` an executed swap of a failed
   * order, `machine export --check` a stale export, `sagas retry` left the saga failed or still
   * suspended, `sagas cancel` found the swap had executed (the order completed instead). Also any
   * failure not listed below.
   */
  problems: 1,
  /** Usage: unknown command or option, bad argument, or bad configuration (an environment variable). */
  usage: 2,
  /**
   * Cannot reach the service, the database (or its data directory is held by the running
   * service), the broker or the venue.
   */
  unreachable: 3,
  /** Not found: unknown order id, key id. */
  notFound: 4,
  /** Refused as a conflict: the saga has already finished, the swap's outcome is unknown. */
  conflict: 5,
  /** The service refused the key: none or not valid (401), or not an admin key (403). */
  unauthorized: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The text `--help` shows under "Exit codes". */
export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the command ran and found problems (check, replay-check, reconcile, machine export --check),
     or its outcome was not the one asked for (sagas retry: failed or suspended; sagas cancel: the order completed);
     also any other failure
  2  usage: unknown command or option, bad argument, bad configuration (names the variable)
  3  cannot reach the service, the database, the broker or the venue (or the embedded database
     is held by the running service)
  4  not found (unknown order id or key id)
  5  refused as a conflict (saga already finished, swap outcome unknown)
  6  the service refused the key (none or not valid, or not an admin key)`;

/** An error the CLI reports as its message alone (no stack) and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(exitCode: ExitCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Codes of a connection that could not be made (Node's, postgres.js's, proper-lockfile's "held"). */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  // The embedded database's data directory is locked by another process (the running service).
  'ELOCKED',
  // PostgreSQL: the database does not exist; authentication failed.
  '3D000',
  '28P01',
  '28000',
]);

/** The errors of `error`'s cause chain, outermost first (a bounded walk: causes can loop). */
function chain(error: unknown): unknown[] {
  const errors: unknown[] = [];
  for (let e = error; e !== undefined && e !== null && errors.length < 10;) {
    errors.push(e);
    e = e instanceof Error ? e.cause : undefined;
  }
  return errors;
}

/** Whether `error` means a server or the data directory could not be reached, at any depth. */
export function isUnreachable(error: unknown): boolean {
  return chain(error).some((e) => {
    const code = (e as { code?: unknown } | null)?.code;
    return typeof code === 'string' && UNREACHABLE_CODES.has(code);
  });
}

/** The exit code for an error a command threw. */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (isUnreachable(error)) return EXIT.unreachable;
  return EXIT.problems;
}
