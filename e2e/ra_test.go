package e2e

import (
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// TestRouterAdvertisementsAnswerEverySolicitation solicits pxed's router
// advertisements with rdisc6 (ndisc6), a client nobody here wrote, five
// times in a row from one host, each solicitation sent once and given 3 s
// (RFC 4861 §6.2.6 answers within 0.5 s): every one must be answered, with
// the segment's prefix and the O flag. pxed used to drop a solicitation
// that came within 3 s of its previous advertisement, so iPXE, which
// solicits right after the NBP starts, waited up to 3.8 s for its answer.
func TestRouterAdvertisementsAnswerEverySolicitation(t *testing.T) {
	if _, err := exec.LookPath("rdisc6"); err != nil {
		t.Skip("needs rdisc6 (apt-get install ndisc6) to send router solicitations")
	}
	n := lab.NewNet(t)
	pxed := startPxed(t, n, "--router-advertisements")
	h := n.AddHost(t, "host", netip.Prefix{})
	// rdisc6 solicits from the host's link-local address, usable once its DAD is done.
	lab.WaitFor(t, 10*time.Second, "the host's link-local address", func() bool {
		out, err := lab.Run(t, h.NS, "ip", "-6", "-o", "addr", "show", "dev", h.Iface, "scope", "link")
		return err == nil && strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
	})
	for i := range 5 {
		out, err := lab.Run(t, h.NS, "rdisc6", "-1", "-n", "-r", "1", "-w", "3000", h.Iface)
		if err != nil {
			t.Fatalf("solicitation %d unanswered: %v\n%s\npxed:\n%s", i+1, err, out, tail(pxed.Output(), 2<<10))
		}
		if !strings.Contains(out, "2001:db8::/64") || !otherFlag.MatchString(out) {
			t.Errorf("solicitation %d: the advertisement lacks the prefix 2001:db8::/64 or the O flag:\n%s", i+1, out)
		}
	}
}

// otherFlag is how rdisc6 shows an advertisement's O flag.
var otherFlag = regexp.MustCompile(`Stateful other conf\.\s*:\s*Yes`)
