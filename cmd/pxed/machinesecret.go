package main

import (
	"fmt"
	"net/netip"

	"pxed/internal/boot"
	"pxed/internal/tftp"
)

// tftpOwnerCheck refuses a TFTP name that names a machine (its directory
// boot/<mac>/, a loader configuration by its MAC) without that machine's
// URL token, unless the request comes from the address DHCP last saw that
// machine use (owner): TFTP names the firmware and loaders build
// themselves (pxelinux.cfg/01-<mac>, grub.cfg-01-<mac>) cannot carry a
// token. nil when the request may go on.
func tftpOwnerCheck(bc *boot.Config, res boot.Resolved, owner func(netip.Addr) string, client netip.Addr, name string) error {
	if !bc.NeedsToken(res) {
		return nil
	}
	mac := boot.Normalize(res.MAC)
	if owner != nil && owner(client) == mac {
		return nil
	}
	return fmt.Errorf("tftp: %q names machine %s, which DHCP did not see at %s (a machine's files go only to that machine): %w",
		name, mac, client, tftp.ErrAccess)
}
