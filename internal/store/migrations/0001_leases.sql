-- One row per address: the database itself refuses two holders of one
-- address. Times are Unix nanoseconds (UTC). version makes every write a
-- compare-and-swap (see lease.Store.Put).
CREATE TABLE leases (
    addr       BLOB    NOT NULL,
    client_key BLOB    NOT NULL,
    mac        BLOB,
    hostname   TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
    expires    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    CONSTRAINT leases_addr_unique UNIQUE (addr)
);
CREATE INDEX leases_client_key ON leases (client_key);
CREATE INDEX leases_expires ON leases (expires);
