-- portcullis user store, PostgreSQL. Keep in step with migrations/sqlite/0001_user_store.sql.
-- Times are Unix seconds (BIGINT). Principals are `native:<user>`, `oidc:<issuer>#<sub>`
-- or `saml:<idp>#<nameid>`; factor tables are keyed by principal, not by users, because
-- SSO users (step-up) have factors but no user row.
-- Ordered key columns are COLLATE "C": byte order, as SQLite's BINARY, whatever the database
-- locale, so listings and keyset cursors behave the same on both stores.

CREATE TABLE users (
    username      TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    email         TEXT,
    roles         TEXT    NOT NULL DEFAULT '[]',   -- JSON array of role names
    password_hash TEXT,                            -- argon2id PHC string
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL
);

-- One TOTP factor per principal. last_step is the replay guard (DESIGN.md §6).
CREATE TABLE totp_factors (
    principal   TEXT    NOT NULL PRIMARY KEY,
    sealed_seed BYTEA   NOT NULL,                  -- sealed by storage::seal, never plaintext
    confirmed   BOOLEAN NOT NULL DEFAULT FALSE,
    last_step   BIGINT,
    created_at  BIGINT  NOT NULL
);

-- Recovery codes, stored hashed; single use, optional expiry.
CREATE TABLE recovery_codes (
    principal  TEXT   NOT NULL,
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    used_at    BIGINT,
    PRIMARY KEY (principal, code_hash)
);

-- Remembered devices; the token is stored hashed.
CREATE TABLE remembered_devices (
    id         TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    principal  TEXT   NOT NULL,
    token_hash TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT
);
CREATE INDEX remembered_devices_principal ON remembered_devices (principal);

-- Append-only audit log. Identity values are never reused, so `after_id` cursors are stable.
CREATE TABLE audit_log (
    id          BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    username    TEXT,
    method      TEXT,
    outcome     TEXT   NOT NULL,
    reason      TEXT,
    ip          TEXT,
    session_id  TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX audit_log_username ON audit_log (username, id);
CREATE INDEX audit_log_kind ON audit_log (kind, id);
