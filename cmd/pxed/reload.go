package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"pxed/internal/config"
	"pxed/internal/events"
)

// reloader reads the configuration file again on SIGHUP and when the file
// changes, and hands the boot part of a valid one to apply: profiles,
// machines, boot files, menus, selectors, unknown_machines. Leases,
// transfers and sockets are untouched; settings that need new sockets
// or stores (interfaces, dhcp, addresses, directories, limits) are
// reported as waiting for a restart. A file with mistakes is refused
// with their file:line, and the running configuration stays.
type reloader struct {
	file    string
	flags   *serverFlags
	running *config.Config
	apply   func(*config.Config)
	log     *slog.Logger
	ev      events.Recorder
	// poll is how often the file's modification time is checked; 0
	// means 2 s, negative never.
	poll time.Duration

	mtime time.Time
	size  int64
}

// load parses, completes and validates the file as `pxed serve` does.
func (r *reloader) load() (*config.Config, error) {
	cfg, err := config.Load(r.file)
	if err != nil {
		return nil, err
	}
	r.flags.apply(cfg)
	cfg.Host = r.running.Host
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// reload reads the file once; why names what asked for it.
func (r *reloader) reload(why string) error {
	cfg, err := r.load()
	if err != nil {
		r.log.Error("configuration reload refused; the running configuration stays", "file", r.file, "why", why, "err", err.Error())
		r.ev.Record(events.Event{Stage: events.StageConfigReload, Detail: "refused (" + why + "): " + err.Error()})
		return err
	}
	for _, f := range restartFields(r.running, cfg) {
		r.log.Warn("configuration reload: this setting changes at the next restart", "field", f)
	}
	r.apply(cfg)
	r.log.Info("configuration reloaded", "file", r.file, "why", why, "profiles", len(cfg.Profiles))
	r.ev.Record(events.Event{Stage: events.StageConfigReload, Detail: fmt.Sprintf("reloaded (%s): %d profiles", why, len(cfg.Profiles))})
	return nil
}

// restartFields names the settings that differ and need a restart.
func restartFields(a, b *config.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"interfaces", a.Interfaces, b.Interfaces}, {"dhcp", a.DHCP, b.DHCP}, {"dhcp6", a.DHCP6, b.DHCP6},
		{"tftp_addr", a.TFTPAddr, b.TFTPAddr}, {"http_addr", a.HTTPAddr, b.HTTPAddr}, {"data_dir", a.DataDir, b.DataDir},
		{"boot_dir", a.BootDir, b.BootDir}, {"ipxe_dir", a.IPXEDir, b.IPXEDir}, {"limits", a.Limits, b.Limits},
		{"tftp_multicast", a.TFTPMulticast, b.TFTPMulticast}, {"tftp_shared_port", a.TFTPSharedPort, b.TFTPSharedPort}, {"router_advertisements", a.RouterAdvertisements, b.RouterAdvertisements},
		{"log_format", a.LogFormat, b.LogFormat}, {"log_level", a.LogLevel, b.LogLevel},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}

func (r *reloader) stat() (time.Time, int64) {
	st, err := os.Stat(r.file)
	if err != nil {
		return time.Time{}, -1
	}
	return st.ModTime(), st.Size()
}

// run reloads on SIGHUP and on a change of the file until ctx ends.
func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	r.mtime, r.size = r.stat()
	every := r.poll
	if every == 0 {
		every = 2 * time.Second
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.mtime, r.size = r.stat()
			_ = r.reload("SIGHUP")
		case <-tick:
			m, s := r.stat()
			if s < 0 || (m.Equal(r.mtime) && s == r.size) {
				continue
			}
			r.mtime, r.size = m, s
			_ = r.reload("file changed")
		}
	}
}
