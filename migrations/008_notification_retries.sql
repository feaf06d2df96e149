-- Notifications that wait for a retry (issue 9): a channel whose provider fails for a while (Telegram
-- down, a bot token revoked) no longer fails its message on the bus. The row stays 'sending' with
-- no lease and waits until next_attempt_at; the notifier's retry loop claims it then, and records it
-- failed with the last error once the retry horizon (NOTIFY_RETRY_FOR_MS after created_at) is over.
--
-- A row still 'sending' is due for the retry loop at coalesce(lease_until, next_attempt_at,
-- created_at): the end of its lease while a notifier holds it (so a holder that crashed is taken
-- over then), its next attempt while it waits, or at once for a row released without one. Both
-- columns are nullable and unchecked, so that notifiers of the previous release, which know neither,
-- keep working on the same table while a deployment rolls.
ALTER TABLE notifications ADD COLUMN next_attempt_at TIMESTAMPTZ;

-- What an email retried by the loop is titled: the loop has the row, not the message. NULL on rows
-- written before this migration (their retry uses the text as the subject).
ALTER TABLE notifications ADD COLUMN subject TEXT;

-- The retry loop's claim: due rows of one channel, oldest first.
CREATE INDEX notifications_due ON notifications (channel, (coalesce(lease_until, next_attempt_at, created_at)))
    WHERE status = 'sending';
-- The retry loop's give-up: rows of one channel past the retry horizon, found without reading the
-- many that may be waiting during an outage.
CREATE INDEX notifications_sending_since ON notifications (channel, created_at) WHERE status = 'sending';
