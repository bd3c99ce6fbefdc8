-- One row per pxed server sharing this database (internal/cluster): its
-- heartbeat, written every second, tells the others it is alive. Times are
-- Unix nanoseconds by the database host's clock.
CREATE TABLE peers (
    id        TEXT    NOT NULL PRIMARY KEY,
    addr      TEXT    NOT NULL,
    server_ids TEXT   NOT NULL DEFAULT '',
    config    TEXT    NOT NULL,
    heartbeat INTEGER NOT NULL
);
