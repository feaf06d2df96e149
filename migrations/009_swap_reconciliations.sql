-- Failed orders that sent a swap, and what the venue says of that swap. The saga compensates an
-- order whose swap was sent only after the venue answered "voided" or "rejected"; the reconciler
-- (in the sweeper) asks the venue again for every such order, independently of the saga, so that
-- a venue or a bug that executes a swap anyway is found rather than trusted away.
-- A trigger adds the row in the transaction that appends OrderFailed, so no failed order that sent
-- a swap can escape the reconciler.
-- venue_outcome: NULL until the venue has answered definitively; 'executed' is an anomaly (money
-- moved for an order we recorded as failed): logged as an error, reported by `npm run check`
-- (guarantee 2), for an operator to settle. found_by says who found it (saga or reconcile).
CREATE TABLE swap_reconciliations (
    order_id        UUID         PRIMARY KEY,
    idempotency_key TEXT         NOT NULL,
    failed_at       TIMESTAMPTZ  NOT NULL,
    -- When a reconciler last asked the venue (NULL: not yet); attempts counts the asks.
    checked_at      TIMESTAMPTZ,
    attempts        INT          NOT NULL DEFAULT 0,
    venue_outcome   VARCHAR(16)  CHECK (venue_outcome IN ('voided', 'rejected', 'executed')),
    tx_hash         TEXT,
    found_by        VARCHAR(16)  CHECK (found_by IN ('saga', 'reconcile')),
    settled_at      TIMESTAMPTZ,
    CONSTRAINT swap_reconciliations_executed_has_tx
        CHECK (venue_outcome IS DISTINCT FROM 'executed' OR tx_hash IS NOT NULL)
);

-- The reconciler's work list: only the rows the venue has not settled yet.
CREATE INDEX swap_reconciliations_unsettled ON swap_reconciliations (checked_at NULLS FIRST)
    WHERE venue_outcome IS NULL;

CREATE FUNCTION track_swap_reconciliations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO swap_reconciliations (order_id, idempotency_key, failed_at)
    SELECT NEW.aggregate_id, s.event_data->>'idempotency_key', NEW.created_at
    FROM events s
    WHERE s.aggregate_id = NEW.aggregate_id AND s.event_type = 'SwapExecuting'
    ON CONFLICT (order_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_track_swap_reconciliations
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.aggregate_type = 'order' AND NEW.event_type = 'OrderFailed')
    EXECUTE FUNCTION track_swap_reconciliations();

-- Orders that failed after sending a swap before this migration.
INSERT INTO swap_reconciliations (order_id, idempotency_key, failed_at)
SELECT f.aggregate_id, s.event_data->>'idempotency_key', f.created_at
FROM events f
JOIN events s ON s.aggregate_id = f.aggregate_id AND s.event_type = 'SwapExecuting'
WHERE f.aggregate_type = 'order' AND f.event_type = 'OrderFailed'
ON CONFLICT (order_id) DO NOTHING;
