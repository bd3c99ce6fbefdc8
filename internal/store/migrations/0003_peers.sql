-- One row per pxed server sharing this database: its heartbeat (Unix
-- nanoseconds, UTC; see internal/peers). Version 2 is the machines
-- inventory's.
CREATE TABLE peers (
    id        TEXT    PRIMARY KEY,
    addr      TEXT    NOT NULL DEFAULT '',
    heartbeat INTEGER NOT NULL
);
