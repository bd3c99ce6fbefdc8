package boot

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

// TestCatalogSwap: requests deciding while the configuration is replaced
// see one whole configuration or the other, never a mix (run with -race).
func TestCatalogSwap(t *testing.T) {
	mk := func(name string) *Config {
		return &Config{BootFiles: map[string]string{"bios": name + ".kpxe"}, Default: name,
			Profiles: map[string]Profile{name: {Name: name, Kernel: "/k-" + name}}}
	}
	k := NewCatalog(mk("a"))
	mac, _ := net.ParseMAC("52:54:00:00:00:01")
	m := Machine{MAC: mac, Firmware: FirmwarePXE, Class: "bios", HasArch: true}
	s := Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				p := k.Snapshot().Decide(m, s)
				if p.BootFile != p.Profile+".kpxe" {
					t.Errorf("mixed snapshot: profile %q with boot file %q", p.Profile, p.BootFile)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		k.Store(mk([]string{"a", "b"}[i%2]))
	}
	wg.Wait()
}
