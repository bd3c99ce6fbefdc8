package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/httpboot"
	"pxed/internal/tftp"
)

// loaderCounts counts the generated loader configurations served.
type loaderCounts struct{ tftp atomic.Uint64 }

// machineTFTP answers over TFTP what a path names for a machine, as HTTP
// does under /boot/ (boot.Config.Resolve): a loader's generated
// configuration, the kernel and initrds of the machine's profile in its
// directory boot/<mac>/, and any other name there from the boot
// directories (GRUB, shim and PXELINUX load their own files from where
// they were loaded); every other name goes to dirs unchanged.
//
// With per-machine secret URLs (the configuration's MachineToken), a name that names a
// machine is served only with that machine's token in the path, or to
// the address DHCP last saw that machine use (owner; machinesecret.go).
//
// Templates in a generated configuration see the server as the address
// the request was sent to, with the HTTP port httpPort ({{.ServerURL}}).
func machineTFTP(src boot.Source, ev events.Recorder, owner func(netip.Addr) string, n *loaderCounts, httpPort int, dirs tftp.Handler) tftp.Handler {
	return func(req tftp.Request) (tftp.File, int64, error) {
		bc := src.Snapshot() // one snapshot per request
		name := tftp.CleanName(req.Filename)
		res := bc.Resolve(name)
		claimed := ""
		if res.MAC != nil {
			claimed = boot.Normalize(res.MAC)
		}
		if err := tftpOwnerCheck(bc, res, owner, req.Client.Addr(), name); err != nil {
			return nil, 0, err
		}
		switch res.Kind {
		case boot.PathGenerated:
			p := res.Profile
			if res.MAC != nil {
				var err error
				if p, err = bc.Expand(p, tftpServer(req, bc, httpPort), res.MAC); err != nil {
					ev.Record(events.Event{Claimed: claimed, IP: req.Client.Addr(), Stage: events.StageTemplateError, Detail: err.Error()})
					return nil, 0, fmt.Errorf("tftp: %q: %v: %w", name, err, tftp.ErrNotFound)
				}
			}
			text, err := boot.LoaderConfig(p, res.Config, name)
			if err != nil {
				return nil, 0, fmt.Errorf("tftp: %q: %v: %w", name, err, tftp.ErrNotFound)
			}
			n.tftp.Add(1)
			ev.Record(events.Event{Claimed: claimed, IP: req.Client.Addr(), Stage: events.StageLoaderConfig,
				Detail: fmt.Sprintf("%s %s over TFTP (profile %s)", res.Config.Loader, name, profileName(res)), Bytes: int64(len(text))})
			return textFile{strings.NewReader(text)}, int64(len(text)), nil
		case boot.PathProfile:
			f, err := os.Open(res.File)
			if err != nil {
				return nil, 0, fmt.Errorf("tftp: %q: profile %s: %w", name, res.Profile.Name, err)
			}
			st, err := f.Stat()
			if err != nil || !st.Mode().IsRegular() {
				f.Close()
				return nil, 0, fmt.Errorf("tftp: %q: profile %s: not a regular file: %w", name, res.Profile.Name, tftp.ErrAccess)
			}
			return f, st.Size(), nil
		}
		if res.MAC != nil {
			if _, ok := bc.ProfileFor(res.MAC); !ok {
				return nil, 0, fmt.Errorf("tftp: %q: no profile for %s: %w", name, claimed, tftp.ErrNotFound)
			}
		}
		req.Filename = res.Rel
		return dirs(req)
	}
}

// tftpServer is the server a TFTP request reached: its local address and
// the HTTP port, for the URLs a template builds; no address when the
// request's destination is unknown.
func tftpServer(req tftp.Request, bc *boot.Config, httpPort int) boot.Server {
	ip := req.Local.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return boot.Server{}
	}
	return boot.Server{IP: ip, HTTPPort: httpPort, Token: bc.MachineToken}
}

func profileName(r boot.Resolved) string {
	if r.MAC == nil {
		return "any: the GRUB dispatcher"
	}
	return r.Profile.Name
}

type textFile struct{ *strings.Reader }

func (textFile) Close() error { return nil }

func registerLoaderMetrics(reg *prometheus.Registry, n *loaderCounts, h *httpboot.Handler) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_loader_configs_tftp_total",
		Help: "Generated GRUB and PXELINUX configurations served over TFTP."}, func() float64 { return float64(n.tftp.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_loader_configs_http_total",
		Help: "Generated GRUB and PXELINUX configurations served over HTTP."}, func() float64 { return float64(h.LoaderConfigs()) }))
}
