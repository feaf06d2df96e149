-- Read models (CQRS): what the query routes answer from, one row per order and per position.
-- Kept inline, by a trigger on `events`, in the transaction that appends the events: a query right
-- after an append sees it, no code path can forget it, it costs no extra round trip and it works on
-- PGlite as on PostgreSQL. src/app/projections.ts folds the same events in TypeScript: that fold
-- rebuilds the tables (`npm run rebuild-projections`) and `npm run check` compares the two
-- (guarantee 6), so each implementation checks the other.
--
-- Each event is applied once and in version order: an event applies only to a row at the version
-- before it (the one that creates a row, only when there is none), so a row never moves backwards
-- and an event applied twice changes nothing.
-- Amounts and prices are NUMERIC (exact; read back as text). Text columns are unbounded: a limit
-- here would make an append fail on what the event catalogue accepts.
-- created_at and updated_at are when the first and the last applied event were stored, to the
-- millisecond (what the event store reports of an event), so a replay reproduces them exactly.
CREATE TABLE orders_view (
    order_id         UUID        PRIMARY KEY,
    user_id          TEXT        NOT NULL,
    order_type       TEXT        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    from_amount      NUMERIC     NOT NULL,
    from_currency    TEXT        NOT NULL,
    to_currency      TEXT        NOT NULL,
    quoted_price     NUMERIC,
    quoted_to_amount NUMERIC,
    executed_price   NUMERIC,
    to_amount        NUMERIC,
    tx_hash          TEXT,
    position_id      UUID,
    failure_reason   TEXT,
    failed_step      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    version          INT         NOT NULL
);

-- A user's orders, newest first, with and without a status filter (keyset pagination).
CREATE INDEX orders_view_by_user ON orders_view (user_id, created_at DESC, order_id DESC);
CREATE INDEX orders_view_by_user_status ON orders_view (user_id, status, created_at DESC, order_id DESC);

-- order_ids: the order that opened the position, then each order added to it, once each.
CREATE TABLE positions_view (
    position_id       UUID        PRIMARY KEY,
    user_id           TEXT        NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('open', 'closed')),
    from_currency     TEXT        NOT NULL,
    to_currency       TEXT        NOT NULL,
    total_from_amount NUMERIC     NOT NULL,
    total_to_amount   NUMERIC     NOT NULL,
    order_ids         UUID[]      NOT NULL,
    close_reason      TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    version           INT         NOT NULL
);

CREATE INDEX positions_view_by_user ON positions_view (user_id, created_at DESC, position_id DESC);
CREATE INDEX positions_view_by_user_status ON positions_view (user_id, status, created_at DESC, position_id DESC);

-- The event store does not check what it writes, and a projection must never make an append fail:
-- a value that is not what the event catalogue says is read as NULL (a row is created only with
-- every column it needs), and `npm run check` reports the event (guarantee 6).
CREATE FUNCTION read_model_decimal(t text) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t ~ '^[0-9]+(\.[0-9]+)?$' THEN t::numeric END
$$;
CREATE FUNCTION read_model_uuid(t text) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN t::uuid END
$$;

-- Applies one stored event to the read models: the trigger's work, and the backfill's below.
CREATE FUNCTION project_event(e events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d  jsonb       := e.event_data;
    at timestamptz := date_trunc('milliseconds', e.created_at);
BEGIN
    CASE e.event_type
    WHEN 'OrderAccepted' THEN
        INSERT INTO orders_view (order_id, user_id, order_type, status, from_amount, from_currency, to_currency,
                                 created_at, updated_at, version)
        SELECT e.aggregate_id, d->>'user_id', d->>'order_type', 'pending', read_model_decimal(d->>'from_amount'),
               d->>'from_currency', d->>'to_currency', at, at, e.version
        WHERE d->>'user_id' IS NOT NULL AND d->>'order_type' IS NOT NULL AND d->>'from_currency' IS NOT NULL
          AND d->>'to_currency' IS NOT NULL AND read_model_decimal(d->>'from_amount') IS NOT NULL
        ON CONFLICT (order_id) DO NOTHING;
    WHEN 'PriceQuoted' THEN
        UPDATE orders_view
        SET status = 'processing', quoted_price = read_model_decimal(d->>'price'),
            quoted_to_amount = read_model_decimal(d->>'to_amount'), updated_at = at, version = e.version
        WHERE order_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'SwapExecuting' THEN
        UPDATE orders_view
        SET status = 'processing', position_id = read_model_uuid(d->>'position_id'), updated_at = at,
            version = e.version
        WHERE order_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'SwapExecuted' THEN
        UPDATE orders_view
        SET status = 'processing', executed_price = read_model_decimal(d->>'executed_price'),
            to_amount = read_model_decimal(d->>'to_amount'), tx_hash = d->>'tx_hash', updated_at = at,
            version = e.version
        WHERE order_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'OrderCompleted' THEN
        UPDATE orders_view
        SET status = 'completed', executed_price = read_model_decimal(d->>'executed_price'),
            to_amount = read_model_decimal(d->>'to_amount'), tx_hash = d->>'tx_hash',
            position_id = read_model_uuid(d->>'position_id'), updated_at = at, version = e.version
        WHERE order_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'OrderFailed' THEN
        UPDATE orders_view
        SET status = 'failed', failure_reason = d->>'reason', failed_step = d->>'failed_step',
            updated_at = at, version = e.version
        WHERE order_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'PositionCreated' THEN
        INSERT INTO positions_view (position_id, user_id, status, from_currency, to_currency, total_from_amount,
                                    total_to_amount, order_ids, created_at, updated_at, version)
        SELECT e.aggregate_id, d->>'user_id', 'open', d->>'from_currency', d->>'to_currency', 0, 0,
               ARRAY[read_model_uuid(d->>'order_id')], at, at, e.version
        WHERE d->>'user_id' IS NOT NULL AND d->>'from_currency' IS NOT NULL AND d->>'to_currency' IS NOT NULL
          AND read_model_uuid(d->>'order_id') IS NOT NULL
        ON CONFLICT (position_id) DO NOTHING;
    WHEN 'PositionUpdated' THEN
        UPDATE positions_view
        SET total_from_amount = coalesce(read_model_decimal(d->>'total_from_amount'), total_from_amount),
            total_to_amount = coalesce(read_model_decimal(d->>'total_to_amount'), total_to_amount),
            order_ids = CASE WHEN read_model_uuid(d->>'order_id') IS NULL
                               OR read_model_uuid(d->>'order_id') = ANY (order_ids) THEN order_ids
                             ELSE order_ids || read_model_uuid(d->>'order_id') END,
            updated_at = at, version = e.version
        WHERE position_id = e.aggregate_id AND version = e.version - 1;
    WHEN 'PositionClosed' THEN
        UPDATE positions_view
        SET status = 'closed', close_reason = d->>'reason', updated_at = at, version = e.version
        WHERE position_id = e.aggregate_id AND version = e.version - 1;
    ELSE
        NULL; -- an event type the read models do not show
    END CASE;
END
$$;

CREATE FUNCTION project_read_models() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM project_event(NEW);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_project_read_models
    AFTER INSERT ON events
    FOR EACH ROW
    EXECUTE FUNCTION project_read_models();

-- The events stored before this migration, each stream in version order.
DO $$
DECLARE
    e events;
BEGIN
    FOR e IN SELECT * FROM events ORDER BY aggregate_id, version LOOP
        PERFORM project_event(e);
    END LOOP;
END
$$;
