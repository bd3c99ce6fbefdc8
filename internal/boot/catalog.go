package boot

import "sync/atomic"

// Source gives the boot decision its configuration: the DHCP, TFTP and
// HTTP paths take one Snapshot per request and decide from it alone, so
// a configuration swapped meanwhile (a reload, an API change) never
// mixes with the one a request started with. A *Config is a Source of
// itself (a configuration that never changes, as tests use).
type Source interface {
	Snapshot() *Config
}

// Snapshot implements Source: a fixed configuration is its own snapshot.
func (c *Config) Snapshot() *Config { return c }

// Catalog is a Source whose configuration is replaced as a whole at run
// time. A snapshot is never modified once stored: whoever changes the
// configuration builds a new one and stores it. The zero value holds
// nil.
type Catalog struct {
	p atomic.Pointer[Config]
}

// NewCatalog returns a catalog holding c.
func NewCatalog(c *Config) *Catalog {
	k := &Catalog{}
	k.p.Store(c)
	return k
}

// Snapshot implements Source: the configuration stored last.
func (k *Catalog) Snapshot() *Config { return k.p.Load() }

// Store replaces the configuration; requests already deciding keep the
// snapshot they took.
func (k *Catalog) Store(c *Config) { k.p.Store(c) }
