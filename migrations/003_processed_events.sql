-- The consumers' inbox: a row per (event, consumer), written in the same transaction as the
-- handler's effects. The original made event_id alone unique; with several consumers of one event
-- (saga, notifier, projections) each needs its own record, so the key includes processed_by.
CREATE TABLE processed_events (
    id           BIGSERIAL PRIMARY KEY,
    event_id     UUID         NOT NULL,
    aggregate_id UUID         NOT NULL,
    event_type   VARCHAR(100) NOT NULL,
    processed_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    processed_by VARCHAR(100) NOT NULL,
    CONSTRAINT processed_events_event_consumer_key UNIQUE (event_id, processed_by)
);
