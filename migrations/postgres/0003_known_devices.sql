-- Browsers a principal has signed in from (issue 19, DESIGN.md §12): the new-device notice is
-- sent when a sign-in comes from a device not listed here. Keep in step with
-- migrations/sqlite/0003_known_devices.sql. Only a hash of the device cookie's id is kept.
CREATE TABLE known_devices (
    principal   TEXT    NOT NULL,
    device_hash TEXT    NOT NULL,
    first_seen  BIGINT  NOT NULL,
    last_seen   BIGINT  NOT NULL,
    PRIMARY KEY (principal, device_hash)
);
