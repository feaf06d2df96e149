-- Sagas that have not ended: one row per order from its OrderAccepted until its OrderCompleted
-- or OrderFailed. The sweeper reads it to find sagas that stopped making progress without
-- scanning every order ever accepted.
-- A trigger keeps it in the transaction that appends the events, so it can never disagree with the
-- events: no code path can forget it, and it costs no extra round trip. `npm run check` verifies
-- that it equals a replay of the events (guarantee 6).
-- checked_at is when the sweeper last looked at the saga; until then, its acceptance.
-- resumes counts the times the sweeper found it stalled and resumed it.
CREATE TABLE open_sagas (
    order_id    UUID        PRIMARY KEY,
    accepted_at TIMESTAMPTZ NOT NULL,
    checked_at  TIMESTAMPTZ NOT NULL,
    resumes     INT         NOT NULL DEFAULT 0
);

-- No index on checked_at: the table holds only the sagas in flight, usually a few hundred rows,
-- and a sweep every few seconds can scan even a backlog of 100,000; an index would cost every order
-- one more write.

CREATE FUNCTION track_open_sagas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type = 'OrderAccepted' THEN
        INSERT INTO open_sagas (order_id, accepted_at, checked_at)
        VALUES (NEW.aggregate_id, NEW.created_at, NEW.created_at)
        ON CONFLICT (order_id) DO NOTHING;
    ELSE
        DELETE FROM open_sagas WHERE order_id = NEW.aggregate_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_track_open_sagas
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.aggregate_type = 'order' AND NEW.event_type IN ('OrderAccepted', 'OrderCompleted', 'OrderFailed'))
    EXECUTE FUNCTION track_open_sagas();

-- Orders accepted before this migration that have not ended yet.
INSERT INTO open_sagas (order_id, accepted_at, checked_at)
SELECT a.aggregate_id, min(a.created_at), min(a.created_at)
FROM events a
WHERE a.aggregate_type = 'order' AND a.event_type = 'OrderAccepted'
  AND NOT EXISTS (
      SELECT 1 FROM events t
      WHERE t.aggregate_id = a.aggregate_id AND t.event_type IN ('OrderCompleted', 'OrderFailed'))
GROUP BY a.aggregate_id;
