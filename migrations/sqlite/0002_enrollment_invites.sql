-- Enrollment invitations (DESIGN.md §6, `[mfa] enrollment = "invite"`). Keep in step with
-- migrations/postgres/0002_enrollment_invites.sql. The link's token is stored hashed; an
-- invitation is single-use (used_at) and expires.
CREATE TABLE enrollment_invites (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX enrollment_invites_username ON enrollment_invites (username);
