package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"pxed/internal/config"
	"pxed/internal/events"

	"pxed/internal/boot"
	"pxed/internal/tftp"
)

// tftpOwnerCheck refuses a TFTP name that names a machine (its directory
// boot/<mac>/, a loader configuration by its MAC) without that machine's
// URL token, unless the request comes from the address DHCP last saw that
// machine use (owner): TFTP names the firmware and loaders build
// themselves (pxelinux.cfg/01-<mac>, grub.cfg-01-<mac>) cannot carry a
// token. nil when the request may go on. owner nil (pxed runs no DHCP
// and so cannot know the machines' addresses): no check over TFTP.
func tftpOwnerCheck(bc *boot.Config, res boot.Resolved, owner func(netip.Addr) string, client netip.Addr, name string) error {
	if !bc.NeedsToken(res) || owner == nil {
		return nil
	}
	mac := boot.Normalize(res.MAC)
	if owner(client) == mac {
		return nil
	}
	return fmt.Errorf("tftp: %q names machine %s, which DHCP did not see at %s (a machine's files go only to that machine): %w",
		name, mac, client, tftp.ErrAccess)
}

// tftpOwner is how machineTFTP knows which machine an address is: the
// event log's DHCP-learned addresses, nil when pxed answers no DHCP at
// all (then a machine's files over TFTP are not tied to its address;
// logged).
func tftpOwner(cfg *config.Config, ev *events.Log, log *slog.Logger) func(netip.Addr) string {
	if cfg.DHCP.Mode == config.ModeOff && cfg.DHCP6.Mode == config.ModeOff {
		if cfg.MachineURLs == config.MachineURLToken && cfg.TFTPAddr != "off" {
			log.Warn("dhcp and dhcp6 are off: pxed cannot tell which address is which machine, so files under boot/MAC/ over TFTP go to anybody who names the MAC (HTTP still needs the machine's URL token)")
		}
		return nil
	}
	return ev.MACForIP
}
