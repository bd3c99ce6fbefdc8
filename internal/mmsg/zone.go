package mmsg

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// ZoneName is the zone the net package writes for IPv6 scope ID id: the
// name of the interface with that index, or the number when there is none
// (ok false).
func ZoneName(id uint32) (name string, ok bool) {
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name, true
	}
	return strconv.FormatUint(uint64(id), 10), false
}

// ZoneIndex is the IPv6 scope ID a zone names: an interface name, or a
// number.
func ZoneIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}

// Zones is ZoneName and ZoneIndex with what they looked up remembered, both
// ways (an interface's name and index). Its zero value is ready.
type Zones struct {
	m sync.Map // scope ID (uint32) ↔ name (string)
}

// Name is ZoneName(id), remembered.
func (z *Zones) Name(id uint32) string {
	if v, ok := z.m.Load(id); ok {
		return v.(string)
	}
	name, ok := ZoneName(id)
	if ok {
		z.m.Store(name, id)
	}
	z.m.Store(id, name)
	return name
}

// Index is ZoneIndex(zone); an interface's is remembered.
func (z *Zones) Index(zone string) (uint32, error) {
	if v, ok := z.m.Load(zone); ok {
		return v.(uint32), nil
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	id, err := ZoneIndex(zone)
	if err != nil {
		return 0, err
	}
	z.m.Store(zone, id)
	z.m.Store(id, zone)
	return id, nil
}
