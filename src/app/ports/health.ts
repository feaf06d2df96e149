/** What `GET /health` reports; src/infra/health.ts implements it on the database. */
export interface HealthProbe {
  /** The database this process runs on. */
  readonly database: 'postgres' | 'pglite';
  /**
   * Outbox rows not yet delivered (on the in-process bus, not yet handled by every consumer):
   * 0 means caught up.
   * @throws DatabaseUnavailableError (or any error) when the database cannot answer.
   */
  outboxBacklog(): Promise<number>;
}

/** One check of `GET /ready`: `ok`, or what is wrong. */
export interface ReadinessCheck {
  readonly ok: boolean;
  readonly detail?: string;
}

/** What `GET /ready` answers: ready when every check is ok (503 otherwise). */
export interface ReadinessReport {
  readonly ready: boolean;
  /** By name: `database`, `migrations`, `broker` (only where this process uses one). */
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
}

/** Whether this process can do its work now; src/infra/readiness.ts implements it. */
export interface ReadinessProbe {
  check(): Promise<ReadinessReport>;
}
