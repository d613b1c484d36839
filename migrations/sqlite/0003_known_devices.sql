-- Browsers a principal has signed in from (issue 19, DESIGN.md §12): the new-device notice is
-- sent when a sign-in comes from a device not listed here. Keep in step with
-- migrations/postgres/0003_known_devices.sql. Only a hash of the device cookie's id is kept.
CREATE TABLE known_devices (
    principal   TEXT    NOT NULL,
    device_hash TEXT    NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (principal, device_hash)
);
