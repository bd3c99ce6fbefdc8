package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"pxed/internal/lab"
)

// TestBootpc: a real BOOTP client (Debian's bootpc, RFC 951) gets its
// reserved address, the TFTP server and the boot file from pxed in the
// server role, and another one, unreserved, an address from the range
// because the subnet says bootp_dynamic; both leases are kept, for ever,
// in the lease store.
func TestBootpc(t *testing.T) {
	if _, err := exec.LookPath("bootpc"); err != nil {
		t.Skip("needs bootpc (apt-get install bootpc)")
	}
	n := lab.NewNet(t)
	h1 := clientHost(t, n, "bootp1", 7)
	h2 := clientHost(t, n, "bootp2", 8)
	mac1 := macOf(t, h1.NS, h1.Iface)
	kernel, initrd := lab.Assets(t)
	data := t.TempDir()
	startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: `+data+`
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
dhcp:
  mode: server
  probe_timeout: "off"
  subnets:
    - interface: %[1]s
      prefix: 192.0.2.0/24
      ranges: [192.0.2.100-192.0.2.200]
      router: 192.0.2.1
      bootp_dynamic: true
      reservations:
        - {mac: "`+mac1+`", address: 192.0.2.60, hostname: bootp-one}
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
`)
	vars := func(h *lab.Host) map[string]string {
		// bootpc broadcasts through an ordinary UDP socket: the host,
		// which has no IPv4 address yet, needs a route for it.
		if out, err := lab.Run(t, h.NS, "ip", "-4", "route", "add", "255.255.255.255/32", "dev", h.Iface); err != nil {
			t.Fatalf("broadcast route: %v\n%s", err, out)
		}
		// --serverbcast sets the BROADCAST flag (RFC 1542 §3.1.1): bootpc
		// reads with an ordinary socket, which sees no unicast to an
		// address the interface does not have yet.
		out, err := lab.Run(t, h.NS, "bootpc", "--dev", h.Iface, "--serverbcast", "--timeoutwait", "20", "--returniffail")
		if err != nil {
			t.Fatalf("bootpc on %s: %v\n%s", h.Iface, err, out)
		}
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), "'\"")
			}
		}
		return m
	}
	v := vars(h1)
	if v["IPADDR"] != "192.0.2.60" || v["BOOTFILE"] != "undionly.kpxe" || v["SERVER"] != "192.0.2.1" || v["HOSTNAME"] != "bootp-one" {
		t.Errorf("reserved BOOTP client got %v, want 192.0.2.60, undionly.kpxe from 192.0.2.1, hostname bootp-one", v)
	}
	v2 := vars(h2)
	if !strings.HasPrefix(v2["IPADDR"], "192.0.2.1") || v2["IPADDR"] == "192.0.2.1" || v2["BOOTFILE"] != "undionly.kpxe" {
		t.Errorf("dynamic BOOTP client got %v, want an address of the range and undionly.kpxe", v2)
	}
	ls := leases(t, data)
	if l := ls["192.0.2.60"]; l.State != "bound" || l.MAC != mac1 {
		t.Errorf("reserved BOOTP lease %+v, want bound to %s", l, mac1)
	}
	if l := ls[v2["IPADDR"]]; l.State != "bound" {
		t.Errorf("dynamic BOOTP lease %+v, want bound", l)
	}
}
