package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// lab6 starts dnsmasq as the DHCPv6 address server and pxed's ProxyDHCPv6
// (TFTP and HTTP on every address, files from --boot-dir), and adds a
// probe host whose interface has no address but its link-local one: the
// probe puts its lease on it, as firmware configures its address.
func lab6(t *testing.T) (*lab.Net, *lab.Host, *lab.Proc) {
	t.Helper()
	n := lab.NewNet(t)
	dnsmasq := startAddressServer6(t, n)
	pxed := startPxed(t, n, "--tftp-addr", ":69", "--http-addr", ":8080", "--boot-dir", ipxeFiles(t))
	if !strings.Contains(pxed.Output(), "ProxyDHCPv6 on") {
		t.Fatalf("pxed did not start ProxyDHCPv6:\n%s", pxed.Output())
	}
	return n, n.AddHost(t, "probe", netip.Prefix{}), dnsmasq
}

// noGlobal6 fails when host h still holds a global IPv6 address (the
// probe's lease must be removed after it).
func noGlobal6(t *testing.T, h *lab.Host) {
	t.Helper()
	if out, err := lab.Run(t, h.NS, "ip", "-6", "-o", "addr", "show", "scope", "global"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("addresses left on the probe host (%v):\n%s", err, out)
	}
}

// TestProbeIPv6 probes pxed's ProxyDHCPv6 beside dnsmasq as EDK II's
// IPv6 PXE client: dnsmasq's Advertise (DhcpOnly) and pxed's (ProxyBinl)
// are chosen by priority 6, the address comes from dnsmasq, the boot file
// URL from pxed's boot service on [2001:db8::1]:4011, and snponly.efi
// over TFTP on IPv6 from the leased address.
func TestProbeIPv6(t *testing.T) {
	_, h, dnsmasq := lab6(t)
	for _, duid := range []string{client.DUIDUUID, client.DUIDLLT} {
		r, code := runProbe(t, h, "--ipv6", "--fetch", "--duid", duid)
		if code != 0 || !r.Boots || r.DHCP6 == nil {
			t.Fatalf("--duid %s: exit %d boots=%v: %s\nwarnings %v", duid, code, r.Boots, r.Verdict, r.Warnings)
		}
		d := r.DHCP6
		sel := d.Selection
		if a, b := d.Offers[sel.Address], d.Offers[sel.Boot]; sel.Rank != 6 || a.Type != client.PXE6DhcpOnly || b.Type != client.PXE6ProxyBinl ||
			!a.Addr.IsValid() || b.BootFileURL == "" {
			t.Errorf("--duid %s: selection %+v: address offer %+v, boot offer %+v; want DhcpOnly (dnsmasq) + ProxyBinl (pxed), priority 6", duid, sel, a, b)
		}
		if d.Lease == nil || !netip.MustParsePrefix("2001:db8::/64").Contains(d.Lease.Addr) {
			t.Errorf("--duid %s: lease %+v", duid, d.Lease)
		}
		if d.BootReply == nil || d.BootReply.From.Addr() != netip.MustParseAddr("2001:db8::1") || d.BootReply.From.Port() != 4011 ||
			d.BootFile != "tftp://[2001:db8::1]/snponly.efi" {
			t.Errorf("--duid %s: boot reply %+v, boot file %q; want pxed's [2001:db8::1]:4011 naming snponly.efi", duid, d.BootReply, d.BootFile)
		}
		if len(r.Downloads) != 1 || r.Downloads[0].SHA256 != fileSHA(t, "/usr/lib/ipxe/snponly.efi") || r.Downloads[0].Server != "2001:db8::1" {
			t.Errorf("--duid %s: downloads %+v", duid, r.Downloads)
		}
		if !strings.Contains(r.Configured, d.Lease.Addr.String()) {
			t.Errorf("--duid %s: configured %q, want the lease put on the interface", duid, r.Configured)
		}
		noGlobal6(t, h)
	}
	if !strings.Contains(dnsmasq.Output(), "DHCPREPLY(") {
		t.Errorf("dnsmasq gave no address:\n%s", dnsmasq.Output())
	}
}

// TestProbeIPv6NoProxy: dnsmasq alone gives addresses but no boot file:
// EDK II chooses nothing and the probe exits 1.
func TestProbeIPv6NoProxy(t *testing.T) {
	n := lab.NewNet(t)
	startAddressServer6(t, n)
	h := n.AddHost(t, "probe", netip.Prefix{})
	r, code := runProbe(t, h, "--ipv6")
	if code != 1 || r.Boots || r.DHCP6 == nil || r.DHCP6.Selection.Address >= 0 || len(r.DHCP6.Offers) == 0 {
		t.Errorf("exit %d boots=%v result %+v; want exit 1, an Advertise and no choice", code, r.Boots, r.DHCP6)
	}
}

// TestProbeHTTPBoot probes pxed as EDK II's HTTP boot client over IPv4
// and IPv6: the address from the network's server (DhcpOnly), the URI
// from pxed's proxy offer (ProxyIpUri), priority 3; the file over HTTP
// with its Content-Type.
func TestProbeHTTPBoot(t *testing.T) {
	n, h6, _ := lab6(t)
	startAddressOnly(t, n, "dhcp4", "192.0.2.3", "192.0.2.100", "192.0.2.200")
	h4 := n.AddHost(t, "probe4", mustPrefix("192.0.2.50/24"))
	want := fileSHA(t, "/usr/lib/ipxe/snponly.efi")
	check := func(name string, r *client.Result, code int, offers []string, url string) {
		t.Helper()
		if code != 0 || !r.Boots {
			t.Fatalf("%s: exit %d: %s\nwarnings %v", name, code, r.Verdict, r.Warnings)
		}
		if len(r.Downloads) != 1 || r.Downloads[0].Proto != "http" || r.Downloads[0].SHA256 != want || r.Downloads[0].ContentType == "" ||
			r.Downloads[0].Name != url {
			t.Errorf("%s: downloads %+v, want %s with its Content-Type", name, r.Downloads, url)
		}
		if offers[0] != client.HTTPDhcpOnly || offers[1] != client.HTTPProxyIpUri {
			t.Errorf("%s: address and boot offer types %v, want DhcpOnly and ProxyIpUri", name, offers)
		}
		if !strings.Contains(r.VendorClass, "HTTPClient:Arch:00016") {
			t.Errorf("%s: vendor class %q", name, r.VendorClass)
		}
	}
	r, code := runProbe(t, h4, "--http", "--fetch")
	if r.DHCP != nil && r.DHCP.Selection.Address >= 0 {
		d := r.DHCP
		check("IPv4", r, code, []string{d.Offers[d.Selection.Address].Type, d.Offers[d.Selection.Boot].Type}, "http://192.0.2.1:8080/files/snponly.efi")
	} else {
		t.Errorf("IPv4: exit %d: %s", code, r.Verdict)
	}
	r, code = runProbe(t, h6, "--http", "--ipv6", "--fetch")
	if d := r.DHCP6; d != nil && d.Selection.Address >= 0 {
		check("IPv6", r, code, []string{d.Offers[d.Selection.Address].Type, d.Offers[d.Selection.Boot].Type}, "http://[2001:db8::1]:8080/files/snponly.efi")
		if d.BootRequests != 0 {
			t.Errorf("IPv6: %d boot service requests; HttpBootDxe sends none", d.BootRequests)
		}
	} else {
		t.Errorf("IPv6: exit %d: %s", code, r.Verdict)
	}
	noGlobal6(t, h6)
}
