-- The machines inventory (internal/fleet): one row per machine seen or
-- set up. Times are Unix nanoseconds (UTC); labels and boot_once are
-- JSON ('{}' and '' when none).
CREATE TABLE machines (
    mac        TEXT    NOT NULL PRIMARY KEY,
    uuid       TEXT    NOT NULL DEFAULT '',
    arch       TEXT    NOT NULL DEFAULT '',
    firmware   TEXT    NOT NULL DEFAULT '',
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    address    TEXT    NOT NULL DEFAULT '',
    hostname   TEXT    NOT NULL DEFAULT '',
    labels     TEXT    NOT NULL DEFAULT '{}',
    profile    TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL CHECK (state IN ('new', 'pending', 'approved', 'denied')),
    boot_once  TEXT    NOT NULL DEFAULT '',
    last_stage TEXT    NOT NULL DEFAULT '',
    last_event INTEGER NOT NULL DEFAULT 0
);

-- Runtime profiles (PUT /api/profiles/NAME): the JSON the API took.
CREATE TABLE profiles (
    name    TEXT    NOT NULL PRIMARY KEY,
    body    TEXT    NOT NULL,
    updated INTEGER NOT NULL
);

-- The last events of each machine's boots, kept across restarts (the
-- newest fleet.KeepEvents of each machine).
CREATE TABLE machine_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    mac      TEXT    NOT NULL,
    time     INTEGER NOT NULL,
    stage    TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT '',
    ip       TEXT    NOT NULL DEFAULT '',
    bytes    INTEGER NOT NULL DEFAULT 0,
    duration INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX machine_events_mac ON machine_events (mac, id);
