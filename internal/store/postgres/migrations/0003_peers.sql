-- One row per pxed server sharing this database: its heartbeat, by the
-- database's clock (see internal/peers). Version 2 is kept for the
-- machines inventory, which comes to SQLite first.
CREATE TABLE peers (
    id        text        PRIMARY KEY,
    addr      text        NOT NULL DEFAULT '',
    heartbeat timestamptz NOT NULL
);
