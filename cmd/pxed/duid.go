package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/config"
)

// duidFile is the DHCPv6 server identifier's file inside --data-dir.
const duidFile = "dhcp6-duid"

// duidFileFor is the DUID file of cfg's server: dhcp6-duid, or in a
// cluster dhcp6-duid.<server-id>, so that members sharing a data
// directory (SQLite on one host) have DUIDs of their own: a Request names
// one server, and one only must answer it.
func duidFileFor(cfg *config.Config) (string, error) {
	if !cfg.Cluster.Enabled {
		return duidFile, nil
	}
	id, err := serverID(cfg)
	if err != nil {
		return "", err
	}
	return duidFile + "." + id, nil
}

// duidEpoch is DUID-LLT's time origin (RFC 8415 §11.2).
var duidEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// serverDUID returns pxed's DHCPv6 server identifier, kept in
// dataDir/file (RFC 8415 §11: a server's DUID must not change): read
// when the file exists, else made once, a DUID-LLT of the first of ifaces
// that has an Ethernet address and now, and written there.
func serverDUID(dataDir, file string, ifaces []string, now time.Time) (dhcpv6.DUID, error) {
	path := filepath.Join(dataDir, file)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		raw, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), ":", ""))
		if err != nil || len(raw) < 3 {
			return nil, fmt.Errorf("dhcp6: server DUID %s: not hex bytes (delete the file to make a new one; clients holding leases then ask again)", path)
		}
		d, err := dhcpv6.DUIDFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("dhcp6: server DUID %s: %w", path, err)
		}
		return d, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("dhcp6: server DUID: %w", err)
	}
	var mac net.HardwareAddr
	for _, name := range ifaces {
		if ifi, err := net.InterfaceByName(name); err == nil && len(ifi.HardwareAddr) == 6 {
			mac = ifi.HardwareAddr
			break
		}
	}
	if mac == nil {
		return nil, fmt.Errorf("dhcp6: no interface of %v has an Ethernet address to make a DUID from", ifaces)
	}
	d := &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: uint32(now.Sub(duidEpoch) / time.Second), LinkLayerAddr: mac}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("dhcp6: server DUID: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(net.HardwareAddr(d.ToBytes()).String()+"\n"), 0o640); err != nil {
		return nil, fmt.Errorf("dhcp6: server DUID: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("dhcp6: server DUID: %w", err)
	}
	return d, nil
}
