-- Who may call the HTTP API. A key reads `mos_<key_id>_<secret>`; the secret is 32 random bytes
-- and only its SHA-256 is stored (hex), so the table never holds a usable key. Keys are created,
-- listed and revoked with `npm run keys`; a revoked key keeps its row (revoked_at) so that the
-- API, once it has had a key, never falls back to open when the last one is revoked.
-- A user key acts for its user_id only; an admin key (user_id NULL) for everyone.
CREATE TABLE api_keys (
    key_id     VARCHAR(32)  PRIMARY KEY,
    user_id    VARCHAR(128),
    role       VARCHAR(8)   NOT NULL CHECK (role IN ('user', 'admin')),
    hash       CHAR(64)     NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    label      TEXT,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ,
    CONSTRAINT api_keys_user_key_has_user CHECK ((role = 'user') = (user_id IS NOT NULL))
);

-- A user's keys, for `keys list --user` and support.
CREATE INDEX api_keys_user ON api_keys (user_id);
