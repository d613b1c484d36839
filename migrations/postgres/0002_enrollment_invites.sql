-- Enrollment invitations (DESIGN.md §6, `[mfa] enrollment = "invite"`). Keep in step with
-- migrations/sqlite/0002_enrollment_invites.sql. The link's token is stored hashed; an
-- invitation is single-use (used_at) and expires.
CREATE TABLE enrollment_invites (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    username   TEXT   COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX enrollment_invites_username ON enrollment_invites (username);
