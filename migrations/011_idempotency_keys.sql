-- The Idempotency-Key of each POST /orders that sent one, per user: which order it placed and
-- the response it got, so that a retry gets the same answer (IETF Idempotency-Key draft). Order
-- ids are random and mapped to the key here; they cannot be computed from the user and the key.
--
-- A request first claims its key in one statement: a new row 'in_flight' under a lease. Its
-- OrderAccepted is then appended in the same statement that marks the row 'done' with the
-- response (src/infra/eventStore.ts), so an order is never placed without its key recording it,
-- nor the key recorded done without the order. A row left 'in_flight' by a request that died
-- before that statement committed is taken over, once its lease has run out, by the next request
-- with the same key and the same body.
--
-- fingerprint: SHA-256 (hex) of the validated, normalized order; the same key with another
-- fingerprint is refused (422). claimed_by: a token of the request that holds the claim.
-- Past expires_at (24 h after the claim by default) the key may place a new order; the sweeper
-- deletes such rows.
CREATE TABLE idempotency_keys (
    user_id         VARCHAR(128) NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    fingerprint     CHAR(64)     NOT NULL,
    order_id        UUID         NOT NULL,
    state           VARCHAR(16)  NOT NULL CHECK (state IN ('in_flight', 'done')),
    claimed_by      UUID         NOT NULL,
    lease_until     TIMESTAMPTZ,
    response_status SMALLINT,
    -- The response body as it was sent, byte for byte.
    response_body   TEXT,
    created_at      TIMESTAMPTZ  NOT NULL,
    expires_at      TIMESTAMPTZ  NOT NULL,
    PRIMARY KEY (user_id, idempotency_key),
    CONSTRAINT idempotency_keys_state
        CHECK ((state = 'in_flight' AND lease_until IS NOT NULL AND response_status IS NULL)
            OR (state = 'done' AND lease_until IS NULL AND response_status IS NOT NULL
                AND response_body IS NOT NULL))
);

-- The sweeper's deletes of expired keys.
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
