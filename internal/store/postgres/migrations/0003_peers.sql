-- One row per pxed server sharing this database: its heartbeat, by the
-- database's clock (see internal/peers). Version 2 is kept for the
-- machines inventory, which comes to SQLite first.
CREATE TABLE peers (
    id        text        PRIMARY KEY,
    addr      text        NOT NULL DEFAULT '',
    config    text        NOT NULL DEFAULT '',  -- hash of its lease configuration (internal/cluster)
    server_ids text       NOT NULL DEFAULT '',  -- its DHCPv4 server identifiers, comma-separated
    heartbeat timestamptz NOT NULL
);
