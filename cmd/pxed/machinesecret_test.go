package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/machinekey"
	"pxed/internal/tftp"
)

// TestMachineTFTPSecret: over TFTP a machine's loader configuration and
// directory go to the address DHCP saw that machine use, or to a path
// with its URL token; another machine gets "access violation" and the
// event joins its own timeline.
func TestMachineTFTPSecret(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("KERNEL"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := machinekey.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	bc := &boot.Config{
		Profiles: map[string]boot.Profile{
			"p": {Name: "p", Kernel: filepath.Join(dir, "vmlinuz"), Cmdline: "console=ttyS0 root_password=hunter2", Loader: boot.LoaderPXELINUX},
			"g": {Name: "g", Kernel: filepath.Join(dir, "vmlinuz"), Cmdline: "secret=s3", Loader: boot.LoaderGRUB},
		},
		Machines:     map[string]string{"52:54:00:00:00:23": "p", "52:54:00:00:00:24": "g"},
		MachineToken: key.URLToken,
	}
	victimIP, otherIP, unknownIP := netip.MustParseAddr("192.0.2.23"), netip.MustParseAddr("192.0.2.24"), netip.MustParseAddr("192.0.2.99")
	log := &events.Log{}
	log.Learn(victimIP, "52:54:00:00:00:23")
	log.Learn(otherIP, "52:54:00:00:00:24")
	var n loaderCounts
	h := machineTFTP(bc, log, log.MACForIP, &n, 8080, tftp.Dir(dir))
	tok := key.URLToken(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x23})
	tests := []struct {
		from netip.Addr
		file string
		body string // "" wants access violation
	}{
		{victimIP, "boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23", "root_password=hunter2"},
		{victimIP, "pxelinux.cfg/01-52-54-00-00-00-23", "root_password=hunter2"},
		{victimIP, "boot/52-54-00-00-00-23/vmlinuz", "KERNEL"},
		{otherIP, "boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23", ""},
		{otherIP, "pxelinux.cfg/01-52-54-00-00-00-23", ""},
		{otherIP, "boot/52-54-00-00-00-23/pxelinux.cfg/default", ""},
		{otherIP, "boot/52-54-00-00-00-23/vmlinuz", ""},
		{unknownIP, "pxelinux.cfg/01-52-54-00-00-00-23", ""},
		{victimIP, "grub/grub.cfg-01-52-54-00-00-00-24", ""},
		{otherIP, "grub/grub.cfg-01-52-54-00-00-00-24", "secret=s3"},
		{unknownIP, "grub/grub.cfg", "configfile"}, // the dispatcher: the same for every machine
		{unknownIP, "boot/52-54-00-00-00-23/" + tok + "/pxelinux.cfg/01-52-54-00-00-00-23", "root_password=hunter2"},
		{unknownIP, "boot/52-54-00-00-00-23/" + tok + "x/pxelinux.cfg/01-52-54-00-00-00-23", ""},
	}
	for _, tc := range tests {
		t.Run(tc.from.String()+" "+tc.file, func(t *testing.T) {
			checkTFTP(t, h, tftp.Request{Filename: tc.file, Client: netip.AddrPortFrom(tc.from, 2000)}, tc.body, tftp.ErrAccess)
		})
	}
	// pxed answering no DHCP knows no addresses: TFTP is not tied to them.
	open := machineTFTP(bc, log, nil, &n, 8080, tftp.Dir(dir))
	if _, _, err := open(tftp.Request{Filename: "pxelinux.cfg/01-52-54-00-00-00-23", Client: netip.AddrPortFrom(unknownIP, 2000)}); err != nil {
		t.Errorf("no DHCP (owner nil): %v, want served", err)
	}
}
