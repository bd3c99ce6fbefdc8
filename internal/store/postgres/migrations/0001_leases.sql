-- One row per address: the database itself refuses two holders of one
-- address, whichever pxed server asks. version makes every write a
-- compare-and-swap (see lease.Store.Put). Addresses are host addresses
-- (/32, /128) of either family; inet orders IPv4 before IPv6. A hostname
-- is bytes as the client sent them (NUL, not UTF-8): bytea, like the key.
CREATE TABLE leases (
    addr       inet        NOT NULL,
    client_key bytea       NOT NULL,
    mac        bytea,
    hostname   bytea       NOT NULL DEFAULT '',
    state      text        NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
    expires    timestamptz NOT NULL,
    updated    timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    CONSTRAINT leases_addr_unique PRIMARY KEY (addr),
    CONSTRAINT leases_addr_host CHECK (masklen(addr) = CASE family(addr) WHEN 4 THEN 32 ELSE 128 END)
);
CREATE INDEX leases_client_key ON leases (client_key);
CREATE INDEX leases_expires ON leases (expires);
