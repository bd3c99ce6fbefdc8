-- The same table with its state CHECK written as comparisons: SQLite
-- evaluated `state IN (...)` by building a temporary index for every row
-- written, a quarter of the CPU of each lease INSERT (bench/README-dhcp.md).
-- SQLite cannot change a CHECK in place: the table is rebuilt, rows kept.
CREATE TABLE leases_new (
    addr       BLOB    NOT NULL,
    client_key BLOB    NOT NULL,
    mac        BLOB,
    hostname   TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL CHECK (state = 'offered' OR state = 'bound' OR state = 'released'
                                       OR state = 'expired' OR state = 'declined'),
    expires    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    CONSTRAINT leases_addr_unique UNIQUE (addr)
);
INSERT INTO leases_new (addr, client_key, mac, hostname, state, expires, updated, version)
    SELECT addr, client_key, mac, hostname, state, expires, updated, version FROM leases ORDER BY addr;
DROP TABLE leases;
ALTER TABLE leases_new RENAME TO leases;
CREATE INDEX leases_client_key ON leases (client_key);
CREATE INDEX leases_expires ON leases (expires);
