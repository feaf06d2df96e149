import type { Database } from '../app/ports/database.ts';
import type { IdempotencyKeys, KeyState } from '../app/ports/idempotencyKeys.ts';

/** What a claim does to a key it finds (see CLAIM_SQL), and the row it reports. */
const ON_CONFLICT = `ON CONFLICT (user_id, idempotency_key) DO UPDATE SET
    fingerprint = CASE WHEN k.expires_at <= excluded.created_at THEN excluded.fingerprint ELSE k.fingerprint END,
    order_id = CASE WHEN k.expires_at <= excluded.created_at THEN excluded.order_id ELSE k.order_id END,
    state = CASE WHEN k.expires_at <= excluded.created_at THEN 'in_flight' ELSE k.state END,
    response_status = CASE WHEN k.expires_at <= excluded.created_at THEN NULL ELSE k.response_status END,
    response_body = CASE WHEN k.expires_at <= excluded.created_at THEN NULL ELSE k.response_body END,
    created_at = CASE WHEN k.expires_at <= excluded.created_at THEN excluded.created_at ELSE k.created_at END,
    expires_at = CASE WHEN k.expires_at <= excluded.created_at THEN excluded.expires_at ELSE k.expires_at END,
    claimed_by = CASE
        WHEN k.expires_at <= excluded.created_at
          OR (k.state = 'in_flight' AND k.lease_until <= excluded.created_at AND k.fingerprint = excluded.fingerprint)
        THEN excluded.claimed_by ELSE k.claimed_by END,
    lease_until = CASE
        WHEN k.expires_at <= excluded.created_at
          OR (k.state = 'in_flight' AND k.lease_until <= excluded.created_at AND k.fingerprint = excluded.fingerprint)
        THEN excluded.lease_until ELSE k.lease_until END
RETURNING user_id, idempotency_key, order_id, fingerprint, state, claimed_by, response_status, response_body`;

/*
 * One statement, one round trip. A new key is inserted in flight for this request, under the
 * order id the request brought ($4) or, when an order placed before migration 011 with this user
 * and key is younger than the key TTL, under that order's legacy id ($9, accepted after $10): one
 * probe of events' (aggregate_id, version) index, so that a request retried across the upgrade
 * meets the order it placed (its append then conflicts, see acceptWithKey in src/app/orders.ts).
 * The probe runs whatever follows; its id is used only for a new or expired key. On a conflict
 * the row is locked and, depending on what it holds:
 * - expired at `now`: it starts over as this request's (new fingerprint, order id, expiry);
 * - in flight, lease run out, same fingerprint: this request takes the claim over (same order id);
 * - otherwise it is left as it is (the update writes the same values: RETURNING then reports the
 *   row as it stands, even one a concurrent request committed after this statement began).
 * A concurrent insert of the same key waits for the first to commit, then takes the conflict path.
 */

const CLAIM_SQL = `
INSERT INTO idempotency_keys AS k (user_id, idempotency_key, fingerprint, order_id, state, claimed_by,
    lease_until, created_at, expires_at)
VALUES ($1, $2, $3,
    COALESCE(
        (SELECT aggregate_id FROM events
         WHERE aggregate_id = $9::uuid AND version = 1 AND event_type = 'OrderAccepted'
           AND created_at > $10::timestamptz),
        $4::uuid),
    'in_flight', $5, $6::timestamptz, $7::timestamptz, $8::timestamptz)
${ON_CONFLICT}`;

/*
 * CLAIM_SQL for many keys in one statement (one commit): the claims come as a JSON list, each
 * with its own legacy probe. Rows are inserted in key order, so two batches that share keys lock
 * them in the same order (no deadlock). A key may appear only once: ON CONFLICT DO UPDATE cannot
 * touch the same row twice in one statement.
 */
const CLAIM_ALL_SQL = `
INSERT INTO idempotency_keys AS k (user_id, idempotency_key, fingerprint, order_id, state, claimed_by,
    lease_until, created_at, expires_at)
SELECT c.user_id, c.idempotency_key, c.fingerprint,
    COALESCE(
        (SELECT aggregate_id FROM events
         WHERE aggregate_id = c.legacy_id AND version = 1 AND event_type = 'OrderAccepted'
           AND created_at > c.accepted_after),
        c.order_id),
    'in_flight', c.token, c.lease_until, c.claimed_at, c.expires_at
FROM jsonb_to_recordset($1::text::jsonb) AS c(user_id text, idempotency_key text, fingerprint text,
    order_id uuid, token uuid, lease_until timestamptz, claimed_at timestamptz, expires_at timestamptz,
    legacy_id uuid, accepted_after timestamptz)
ORDER BY c.user_id, c.idempotency_key
${ON_CONFLICT}`;

interface KeyRow {
  readonly user_id: string;
  readonly idempotency_key: string;
  readonly order_id: string;
  readonly fingerprint: string;
  readonly state: 'in_flight' | 'done';
  readonly claimed_by: string;
  readonly response_status: number | null;
  readonly response_body: string | null;
}

/** The Idempotency-Keys of order requests on `db` (table `idempotency_keys`, migration 011). */
export function createIdempotencyKeys(db: Database): IdempotencyKeys {
  return {
    async claim(claim) {
      const [row] = await db.query<KeyRow>(CLAIM_SQL, [
        claim.user_id,
        claim.idempotency_key,
        claim.fingerprint,
        claim.order_id,
        claim.token,
        claim.lease_until.toISOString(),
        claim.now.toISOString(),
        claim.expires_at.toISOString(),
        claim.legacy?.order_id ?? null,
        claim.legacy?.accepted_after.toISOString() ?? null,
      ]);
      if (!row) throw new Error(`Claiming Idempotency-Key ${claim.idempotency_key} returned no row`);
      return toState(row, claim.token);
    },

    async claimAll(claims) {
      const rows = await db.query<KeyRow>(CLAIM_ALL_SQL, [
        JSON.stringify(
          claims.map((claim) => ({
            user_id: claim.user_id,
            idempotency_key: claim.idempotency_key,
            fingerprint: claim.fingerprint,
            order_id: claim.order_id,
            token: claim.token,
            lease_until: claim.lease_until.toISOString(),
            claimed_at: claim.now.toISOString(),
            expires_at: claim.expires_at.toISOString(),
            legacy_id: claim.legacy?.order_id ?? null,
            accepted_after: claim.legacy?.accepted_after.toISOString() ?? null,
          })),
        ),
      ]);
      const byKey = new Map(rows.map((row) => [keyOf(row), row]));
      return claims.map((claim) => {
        const row = byKey.get(keyOf(claim));
        if (!row) throw new Error(`Claiming Idempotency-Key ${claim.idempotency_key} returned no row`);
        return toState(row, claim.token);
      });
    },

    async complete(done) {
      const rows = await db.query(
        `UPDATE idempotency_keys
         SET state = 'done', lease_until = NULL, response_status = $5, response_body = $6,
             expires_at = $7::timestamptz
         WHERE user_id = $1 AND idempotency_key = $2 AND claimed_by = $3 AND order_id = $4
           AND state = 'in_flight'
         RETURNING 1`,
        [
          done.user_id,
          done.idempotency_key,
          done.token,
          done.order_id,
          done.response.status,
          done.response.body,
          done.expires_at.toISOString(),
        ],
      );
      return rows.length > 0;
    },

    async release(userId, idempotencyKey, token) {
      await db.query(
        `DELETE FROM idempotency_keys
         WHERE user_id = $1 AND idempotency_key = $2 AND claimed_by = $3 AND state = 'in_flight'`,
        [userId, idempotencyKey, token],
      );
    },

    async deleteExpired(now, limit) {
      const rows = await db.query<{ n: number }>(
        `WITH expired AS (
           DELETE FROM idempotency_keys WHERE (user_id, idempotency_key) IN (
             SELECT user_id, idempotency_key FROM idempotency_keys
             WHERE expires_at <= $1::timestamptz LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING 1)
         SELECT count(*)::int AS n FROM expired`,
        [now.toISOString(), limit],
      );
      return rows[0]?.n ?? 0;
    },
  };
}

const keyOf = (key: { user_id: string; idempotency_key: string }) =>
  JSON.stringify([key.user_id, key.idempotency_key]);

function toState(row: KeyRow, token: string): KeyState {
  const { order_id, fingerprint } = row;
  if (row.state === 'done') {
    if (row.response_status === null || row.response_body === null) {
      throw new Error(`Idempotency key of order ${order_id} is done without a response`);
    }
    return {
      state: 'done',
      order_id,
      fingerprint,
      response: { status: row.response_status, body: row.response_body },
    };
  }
  return row.claimed_by === token
    ? { state: 'claimed', order_id }
    : { state: 'in_flight', order_id, fingerprint };
}
