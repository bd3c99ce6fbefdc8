package boot

import (
	"net"
	"strings"
	"testing"
)

func fakeToken(mac net.HardwareAddr) string { return "t" + strings.ReplaceAll(mac.String(), ":", "") }

// TestDecideSecure: with a machine token every URL a machine is given for
// its own files carries the token; NBP paths over TFTP and boot
// directory files do not; UEFI HTTP Boot gets https:// URLs when an
// HTTPS port is set.
func TestDecideSecure(t *testing.T) {
	c := testConfig()
	c.MachineToken = fakeToken
	c.Profiles["grub"] = Profile{Kernel: "/srv/linux/vmlinuz", Loader: LoaderGRUB}
	c.Machines["52:54:00:00:00:0c"] = "grub"
	macG := net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x0c}
	https := testConfig()
	https.MachineToken, https.HTTPSPort = fakeToken, 4433
	tests := []struct {
		name string
		c    *Config
		m    Machine
		want string
	}{
		{"iPXE script URL carries the token", c, Machine{MAC: macB, Firmware: FirmwareIPXE},
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/t525400abcdef/script.ipxe"},
		{"PXE NBP over TFTP unchanged", c, pxeMachine(macB, 7, "efi-x64"), "snponly.efi"},
		{"GRUB NBP over TFTP unchanged (loaders build their own names)", c, pxeMachine(macG, 7, "efi-x64"), "boot/52-54-00-00-00-0c/grubx64.efi"},
		{"HTTP Boot image under the token", c, Machine{MAC: macJ, Firmware: FirmwareHTTP, Class: "efi-x64", HasArch: true, Arch: 16},
			"http://192.0.2.1:8080/boot/52-54-00-00-00-0b/t52540000000b/disk.img"},
		{"HTTP Boot NBP from the boot directory: no token", c, Machine{MAC: macB, Firmware: FirmwareHTTP, Class: "efi-x64", HasArch: true, Arch: 16},
			"http://192.0.2.1:8080/files/snponly.efi"},
		{"HTTPS Boot NBP", https, Machine{MAC: macB, Firmware: FirmwareHTTP, Class: "efi-x64", HasArch: true, Arch: 16},
			"https://192.0.2.1:4433/files/snponly.efi"},
		{"HTTPS Boot image", https, Machine{MAC: macJ, Firmware: FirmwareHTTP, Class: "efi-x64", HasArch: true, Arch: 16},
			"https://192.0.2.1:4433/boot/52-54-00-00-00-0b/t52540000000b/disk.img"},
		{"HTTPS port leaves iPXE on HTTP", https, Machine{MAC: macB, Firmware: FirmwareIPXE},
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/t525400abcdef/script.ipxe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Decide(tc.m, srv).BootFile; got != tc.want {
				t.Errorf("BootFile %q, want %q", got, tc.want)
			}
		})
	}
}

// TestResolveSecure: Resolve strips a machine's valid token and says so;
// any other segment, another machine's token, or none leaves the path
// naming the machine without it (Config.NeedsToken).
func TestResolveSecure(t *testing.T) {
	c := testConfig()
	c.MachineToken = fakeToken
	c.Profiles["grub"] = Profile{Kernel: "/srv/linux/vmlinuz", Loader: LoaderGRUB}
	c.Machines["52:54:00:00:00:0c"] = "grub"
	tests := []struct {
		path      string
		kind      PathKind
		needToken bool
	}{
		{"boot/52-54-00-ab-cd-ef/t525400abcdef/vmlinuz", PathProfile, false},
		{"boot/52-54-00-ab-cd-ef/vmlinuz", PathProfile, true},
		{"boot/52-54-00-ab-cd-ef/t525400123456/vmlinuz", PathBootDir, true}, // another machine's token
		{"boot/52-54-00-ab-cd-ef/T525400ABCDEF/vmlinuz", PathBootDir, true},
		{"boot/52-54-00-ab-cd-ef/t525400abcdef", PathBootDir, true},
		{"boot/52-54-00-00-00-0c/t52540000000c/grub.cfg", PathGenerated, false},
		{"boot/52-54-00-00-00-0c/grub.cfg", PathGenerated, true},
		{"grub/grub.cfg-01-52-54-00-00-00-0c", PathGenerated, true},
		{"grub/grub.cfg", PathGenerated, false}, // the dispatcher: the same for all
		{"snponly.efi", PathBootDir, false},
	}
	for _, tc := range tests {
		res := c.Resolve(tc.path)
		if res.Kind != tc.kind || c.NeedsToken(res) != tc.needToken {
			t.Errorf("%s: kind %v needs token %v, want %v %v", tc.path, res.Kind, c.NeedsToken(res), tc.kind, tc.needToken)
		}
	}
	// A GRUB configuration asked for under the token names the files
	// under it; asked for by its MAC name (over TFTP) it cannot.
	res := c.Resolve("boot/52-54-00-00-00-0c/t52540000000c/grub.cfg")
	text, err := LoaderConfig(res.Profile, res.Config, "boot/52-54-00-00-00-0c/grub.cfg")
	if err != nil || !strings.Contains(text, "linux '/boot/52-54-00-00-00-0c/t52540000000c/vmlinuz'") {
		t.Errorf("GRUB config under the token: %v\n%s", err, text)
	}
	// PXELINUX loaded from under the token names its files relative to
	// it (pxelinux.0 was loaded from there), never by a tokenless path.
	c.Profiles["pxl"] = Profile{Kernel: "/srv/linux/vmlinuz", Loader: LoaderPXELINUX}
	c.Machines["52:54:00:00:00:0d"] = "pxl"
	name := "boot/52-54-00-00-00-0d/t52540000000d/pxelinux.cfg/01-52-54-00-00-00-0d"
	res = c.Resolve(name)
	text, err = LoaderConfig(res.Profile, res.Config, name)
	if err != nil || !strings.Contains(text, "KERNEL vmlinuz\n") {
		t.Errorf("PXELINUX config under the token: %v\n%s", err, text)
	}
}
