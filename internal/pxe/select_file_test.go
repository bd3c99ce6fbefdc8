package pxe

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// EDK II ranks a plain DHCP offer with a boot file 7th whether the name is
// in option 67 or only in the BOOTP file field of the header.
func TestSelectDhcpOnlyFileField(t *testing.T) {
	o, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 100)))
	if err != nil {
		t.Fatal(err)
	}
	o.BootFileName = "pxelinux.0"
	s := Select([]*dhcpv4.DHCPv4{o})
	if s.Rank != 7 || s.Boot != 0 {
		t.Fatalf("Select = %+v, want rank 7 with offer 0", s)
	}
}
