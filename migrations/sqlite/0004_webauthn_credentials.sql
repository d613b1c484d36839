-- Passkeys (issue 16, DESIGN.md §10): a principal's WebAuthn credentials. Keep in step with
-- migrations/postgres/0004_webauthn_credentials.sql. No secret is kept: `passkey` is the
-- library's public-key record (JSON), which the admin API never shows. A credential id is
-- unique in the whole store, so one authenticator's credential never belongs to two users.
CREATE TABLE webauthn_credentials (
    credential_id TEXT    NOT NULL PRIMARY KEY,
    principal     TEXT    NOT NULL,
    user_handle   TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    passkey       TEXT    NOT NULL,
    sign_count    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX webauthn_credentials_principal ON webauthn_credentials (principal);
