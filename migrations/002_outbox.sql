-- Transactional outbox: written in the same statement as the events it carries, published by the
-- relay. Beyond the original columns it keeps aggregate_type, version and metadata so the relay
-- can build message headers without joining events.
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    event_id       UUID         NOT NULL UNIQUE,
    aggregate_id   UUID         NOT NULL,
    aggregate_type VARCHAR(50)  NOT NULL,
    event_type     VARCHAR(100) NOT NULL,
    version        INT          NOT NULL,
    event_data     JSONB        NOT NULL,
    metadata       JSONB,
    published      BOOLEAN      NOT NULL DEFAULT FALSE,
    published_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);

-- Claims scan only unpublished rows; published rows pile up and must not slow them down.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE NOT published;
