-- The machines inventory (internal/fleet), shared by every pxed server on
-- this database. labels and boot_once are JSON text ('{}' and '' when
-- none), as in the SQLite schema. txid is the writing transaction's id:
-- each server polls the rows written since its last poll (peers' changes
-- reach its memory within a couple of seconds, see internal/fleet).
CREATE TABLE machines (
    mac        text        PRIMARY KEY,
    uuid       text        NOT NULL DEFAULT '',
    arch       text        NOT NULL DEFAULT '',
    firmware   text        NOT NULL DEFAULT '',
    first_seen timestamptz,
    last_seen  timestamptz,
    address    text        NOT NULL DEFAULT '',
    hostname   text        NOT NULL DEFAULT '',
    labels     text        NOT NULL DEFAULT '{}',
    profile    text        NOT NULL DEFAULT '',
    state      text        NOT NULL CHECK (state IN ('new', 'pending', 'approved', 'denied')),
    boot_once  text        NOT NULL DEFAULT '',
    last_stage text        NOT NULL DEFAULT '',
    last_event timestamptz,
    txid       xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX machines_txid ON machines (txid);

-- Machines forgotten (or evicted), so that the other servers forget them
-- too; kept a day.
CREATE TABLE machines_forgotten (
    mac  text        PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX machines_forgotten_txid ON machines_forgotten (txid);

-- Runtime profiles (PUT /api/profiles/NAME): the JSON the API took.
CREATE TABLE profiles (
    name    text        PRIMARY KEY,
    body    text        NOT NULL,
    updated timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The last events of each machine's boots, written by whichever server
-- saw them (server: the writing process's random id).
CREATE TABLE machine_events (
    id       bigserial   PRIMARY KEY,
    mac      text        NOT NULL,
    time     timestamptz NOT NULL,
    stage    text        NOT NULL,
    detail   text        NOT NULL DEFAULT '',
    ip       text        NOT NULL DEFAULT '',
    bytes    bigint      NOT NULL DEFAULT 0,
    duration bigint      NOT NULL DEFAULT 0,
    server   text        NOT NULL DEFAULT '',
    txid     xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX machine_events_mac ON machine_events (mac, id);
CREATE INDEX machine_events_txid ON machine_events (txid);
