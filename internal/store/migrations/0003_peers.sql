-- One row per pxed server sharing this database: its heartbeat (Unix
-- nanoseconds, UTC; see internal/peers). Version 2 is the machines
-- inventory's.
CREATE TABLE peers (
    id        TEXT    PRIMARY KEY,
    addr      TEXT    NOT NULL DEFAULT '',
    config    TEXT    NOT NULL DEFAULT '',   -- hash of its lease configuration (internal/cluster)
    server_ids TEXT   NOT NULL DEFAULT '',   -- its DHCPv4 server identifiers, comma-separated
    heartbeat INTEGER NOT NULL
);
