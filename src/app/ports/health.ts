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
