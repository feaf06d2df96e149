-- The event store: one row per domain event, streams keyed by aggregate_id.
-- UNIQUE (aggregate_id, version) is the optimistic lock; UNIQUE (event_id) makes a re-append of
-- the same event detectable as a duplicate.
-- transaction_id records the writing transaction so readers of the global stream can order by
-- commit-safe position (transaction_id, id): bigserial ids are taken before commit, so they
-- commit out of order and "id > last seen" would skip late committers.
CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    event_id       UUID         NOT NULL,
    aggregate_id   UUID         NOT NULL,
    aggregate_type VARCHAR(50)  NOT NULL,
    event_type     VARCHAR(100) NOT NULL,
    event_data     JSONB        NOT NULL,
    metadata       JSONB,
    version        INT          NOT NULL CHECK (version > 0),
    transaction_id XID8         NOT NULL DEFAULT pg_current_xact_id(),
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (aggregate_id, version)
);

CREATE INDEX events_global_position ON events (transaction_id, id);
