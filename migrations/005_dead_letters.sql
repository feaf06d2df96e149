-- The in-process bus's dead-letter queue (RabbitMQ keeps its dead letters in `<queue>.dead`):
-- messages a consumer can never handle (malformed, outside the catalogue, refused by the handler)
-- or gave up on after the delivery limit, kept with the reason and the last error for an operator.
-- One row per (event, consumer): a poison message delivered again (after a restart, by a second
-- process) is recorded once (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE dead_letters (
    id               BIGSERIAL PRIMARY KEY,
    consumer         VARCHAR(100) NOT NULL,
    event_id         UUID         NOT NULL,
    event_type       VARCHAR(100),
    aggregate_id     UUID,
    -- The message as it was delivered, so it can be inspected and replayed.
    message          JSONB        NOT NULL,
    -- invalid-message | poison | delivery-limit (src/infra/bus/deliveryPolicy.ts)
    reason           TEXT         NOT NULL,
    error            TEXT         NOT NULL,
    attempts         INT          NOT NULL CHECK (attempts > 0),
    dead_lettered_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_event_consumer_key UNIQUE (event_id, consumer)
);
