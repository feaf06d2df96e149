-- The notifier records several sends in one statement (src/infra/notify/notificationStore.ts):
-- each row as the one-row record did, keyed by its primary key. A function, not one UPDATE …
-- FROM a JSON input: joined to a list of unknown size, the planner picks a sequential scan of
-- notifications whenever its statistics are behind the table (a fresh or fast-growing one), and
-- keeps that plan; looked up one key at a time, each row is an index lookup. Rows are locked in
-- key order, so two batches never wait on each other in a cycle.
CREATE FUNCTION record_notifications(batch jsonb) RETURNS TABLE (ord int, held boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  before_token uuid;
BEGIN
  FOR r IN
    SELECT x.ord AS i, x.event_id, x.channel, x.status, x.sent_at, x.error, x.token
    FROM jsonb_to_recordset(batch)
      AS x(ord int, event_id uuid, channel text, status text, sent_at timestamptz, error text, token uuid)
    ORDER BY x.event_id, x.channel
  LOOP
    SELECT n.lease_token INTO before_token FROM notifications n
    WHERE n.event_id = r.event_id AND n.channel = r.channel
    FOR UPDATE;
    CONTINUE WHEN NOT FOUND;
    -- A send is recorded whoever holds the row now (the message went out); a failure only by
    -- the holder of the lease. `held`: the lease was still this record's.
    UPDATE notifications n
    SET status = r.status, sent_at = r.sent_at, error = r.error, lease_token = NULL,
        lease_until = NULL, next_attempt_at = NULL
    WHERE n.event_id = r.event_id AND n.channel = r.channel AND n.status = 'sending'
      AND (r.status = 'sent' OR n.lease_token = r.token);
    CONTINUE WHEN NOT FOUND;
    ord := r.i;
    held := coalesce(before_token = r.token, false);
    RETURN NEXT;
  END LOOP;
END
$$;
