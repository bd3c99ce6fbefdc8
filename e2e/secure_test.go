package e2e

import (
	"net"
	"strings"
	"testing"

	"pxed/internal/machinekey"
)

// machinePath is the path of a file in machine mac's directory under its
// secret URL token, from the key pxed keeps in dataDir (machine_urls:
// token, the default).
func machinePath(t *testing.T, dataDir, mac, file string) string {
	t.Helper()
	key, err := machinekey.Load(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	hw, err := net.ParseMAC(strings.ReplaceAll(mac, "-", ":"))
	if err != nil {
		t.Fatal(err)
	}
	return "/boot/" + strings.ReplaceAll(strings.ToLower(hw.String()), ":", "-") + "/" + key.URLToken(hw) + "/" + file
}
