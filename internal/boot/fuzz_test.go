package boot

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseConfigPath: any TFTP file name or HTTP path (network input)
// parses without panic; a boot server discovery script request names
// exactly the path DiscoveryURL builds for its machine and type, and its
// script names that type.
func FuzzParseConfigPath(f *testing.F) {
	for _, s := range []string{
		"boot/52-54-00-ab-cd-ef/pxebs-32770.ipxe", "boot/52-54-00-AB-CD-EF/pxebs-1.ipxe", "boot/52-54-00-ab-cd-ef/pxebs-0.ipxe",
		"boot/52-54-00-ab-cd-ef/pxebs-65535.ipxe", "boot/52-54-00-ab-cd-ef/pxebs-+1.ipxe", "boot/52-54-00-ab-cd-ef/grub.cfg",
		"pxelinux.cfg/01-52-54-00-ab-cd-ef", "grub/grub.cfg-01-52-54-00-ab-cd-ef", "boot/x/pxebs-1.ipxe", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		req, ok := ParseConfigPath(name)
		if !ok || req.Discover == 0 {
			return
		}
		want := fmt.Sprintf("%s/pxebs-%d.ipxe", MachineDir(req.MAC), req.Discover)
		if !strings.EqualFold(name, want) {
			t.Fatalf("ParseConfigPath(%q) = discovery of type %d for %s, whose path is %q", name, req.Discover, req.MAC, want)
		}
		again, ok := ParseConfigPath(want)
		if !ok || again.Discover != req.Discover || Normalize(again.MAC) != Normalize(req.MAC) {
			t.Fatalf("round trip of %q: %+v %v", want, again, ok)
		}
		if s := DiscoveryScript(req.MAC, req.Discover); !strings.Contains(s, fmt.Sprintf("type %d", req.Discover)) {
			t.Fatalf("DiscoveryScript for type %d: %q", req.Discover, s)
		}
	})
}
