package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"pxed/internal/config"
)

// runBoot is the one-command path: a kernel, initrds and a command line
// (and an image for UEFI HTTP Boot) become the default profile of every
// PXE machine on the interface.
func runBoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf serverFlags
	sf.register(fs)
	kernel := fs.String("kernel", "", "kernel image to boot (required)")
	var initrds stringList
	fs.Var(&initrds, "initrd", "initrd to load (repeatable, in order)")
	cmdline := fs.String("cmdline", "", "kernel command line")
	image := fs.String("image", "", "bootable ISO (.iso) or disk image (.img) for UEFI HTTP Boot clients (a RAM disk)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *kernel == "" && *image == "" {
		return usagef("boot: --kernel is required: write --kernel /path/to/vmlinuz (or --image /path/to/live.iso)")
	}
	if len(sf.interfaces) == 0 && sf.dhcp != config.ModeOff {
		return usagef("boot: --interface is required: the network the machines boot on, e.g. --interface eth1")
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	p := config.Profile{Cmdline: *cmdline}
	if *kernel != "" {
		p.Kernel = abs(*kernel)
	}
	if *image != "" {
		p.Image = abs(*image)
	}
	for _, i := range initrds {
		p.Initrds = append(p.Initrds, abs(i))
	}
	cfg := &config.Config{Profiles: map[string]config.Profile{"default": p}, Default: "default"}
	sf.apply(cfg)
	cfg.Host = config.SystemHost{} // validate against this machine's interfaces
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return usageError{fmt.Errorf("boot:\n%w", flagNames(err))}
	}
	return serve(ctx, cfg, stderr, "", nil)
}

// flagNames renames the configuration fields that `pxed boot` fills from
// its flags, so its errors name the flag the user typed.
func flagNames(err error) error {
	var es config.Errors
	if !errors.As(err, &es) {
		return err
	}
	for _, e := range es {
		if e.File != "" {
			continue
		}
		switch {
		case e.Field == "profiles.default.kernel":
			e.Field = "--kernel"
		case e.Field == "profiles.default.image":
			e.Field = "--image"
		case strings.HasPrefix(e.Field, "profiles.default.initrds["):
			e.Field = "--initrd"
		case strings.HasPrefix(e.Field, "interfaces["):
			e.Field = "--interface"
		case e.Field == "unknown_machines":
			e.Field = "--unknown-machines"
		case e.Field == "profiles.default":
			e.Field = "--kernel/--initrd"
		default:
			if f, ok := securityFlagNames[e.Field]; ok { // security.go
				e.Field = f
			}
		}
	}
	return es
}
