-- Alerts an operator must act on (src/app/alerts.ts): a stuck saga, a dead-lettered message, a
-- reconciliation anomaly, a notification channel refusing the configuration. A row per alert
-- raised; active while resolved_at is NULL. At most one active row per (kind, subject): every
-- process that notices the same condition inserts with ON CONFLICT DO NOTHING, and only the one
-- whose insert took logs it and messages the operator; resolving is an UPDATE only one can win.
-- Resolved rows stay as the alerts' history.
CREATE TABLE alerts (
    id          BIGSERIAL    PRIMARY KEY,
    kind        VARCHAR(40)  NOT NULL,
    subject     TEXT         NOT NULL,
    detail      TEXT         NOT NULL,
    raised_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX alerts_active ON alerts (kind, subject) WHERE resolved_at IS NULL;
