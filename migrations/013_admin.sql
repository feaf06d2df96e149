-- The admin API (GET /admin/sagas, /admin/dlq).
--
-- Sagas are listed most recently updated first, keyset-paged on (updated_at, order_id): this index
-- serves the unfiltered list and the status filter without sorting every order. Its price is one
-- more index entry per order event; the stuck list starts from open_sagas (small) instead.
CREATE INDEX orders_view_by_update ON orders_view (updated_at DESC, order_id DESC);

-- Dead letters of both buses in one table: the in-process bus writes its own (as before), and on
-- RabbitMQ a keeper moves the messages of each `<queue>.dead` here (src/infra/bus/rabbit/deadLetterKeeper.ts),
-- so an operator lists, replays and drops them the same way whatever the bus.
-- bus: where a replay sends the message back (in-process: the outbox; rabbitmq: `queue` on the broker).
-- queue: the consumer's queue (in-process: the consumer's name).
-- deaths: how many times it was dead-lettered there (RabbitMQ: redrives + 1).
ALTER TABLE dead_letters
    ADD COLUMN bus    TEXT NOT NULL DEFAULT 'in-process' CHECK (bus IN ('in-process', 'rabbitmq')),
    ADD COLUMN queue  TEXT,
    ADD COLUMN deaths INT  NOT NULL DEFAULT 1 CHECK (deaths > 0);

-- Listed newest first.
CREATE INDEX dead_letters_by_time ON dead_letters (dead_lettered_at DESC, id DESC);
