-- Where each user wants to hear about their orders: one address per channel (a Telegram chat id,
-- an email address), managed by PUT /users/:userId/channels. A removed channel is a deleted row.
CREATE TABLE user_channels (
    user_id    VARCHAR(128) NOT NULL,
    channel    VARCHAR(16)  NOT NULL CHECK (channel IN ('telegram', 'email')),
    address    TEXT         NOT NULL,
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel)
);

-- One row per terminal event per channel, whatever happened to it: the primary key is what makes
-- "exactly one notification per terminal order per channel" hold across notifier processes.
-- A notifier claims the row (status 'sending', a lease until lease_until) before it sends, sends
-- outside any transaction, then records the outcome. A lease that expires (its holder crashed)
-- lets another notifier claim the row again: attempts counts the claims, so attempts > 1 on a
-- 'sent' row marks the only place a duplicate can come from.
CREATE TABLE notifications (
    event_id    UUID         NOT NULL,
    channel     VARCHAR(16)  NOT NULL CHECK (channel IN ('telegram', 'email')),
    order_id    UUID         NOT NULL,
    user_id     VARCHAR(128) NOT NULL,
    -- The chat id or email address it went to; NULL when the user had none for this channel.
    recipient   TEXT,
    status      VARCHAR(16)  NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'skipped')),
    text        TEXT         NOT NULL,
    -- Why it failed or was skipped; while 'sending', the last transient error, if any.
    error       TEXT,
    attempts    INT          NOT NULL DEFAULT 0,
    -- Who holds the claim and until when; both NULL once the row is final or the lease is released.
    lease_token UUID,
    lease_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ,
    PRIMARY KEY (event_id, channel),
    -- Only a row being sent can be claimed.
    CONSTRAINT notifications_lease_while_sending
        CHECK (status = 'sending' OR (lease_token IS NULL AND lease_until IS NULL))
);

-- An order's notifications, for support ("did the user hear about order X?").
CREATE INDEX notifications_order ON notifications (order_id);
-- Rows still sending are few; operators and the guarantee check look for them.
CREATE INDEX notifications_sending ON notifications (lease_until) WHERE status = 'sending';
