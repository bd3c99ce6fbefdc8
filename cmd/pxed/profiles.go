package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"pxed/internal/fleet"
)

const profilesHelp = `Usage:
  pxed profiles list
  pxed profiles show NAME
  pxed profiles set NAME [--kernel FILE] [--initrd FILE]... [--cmdline STR] [--image FILE]
                         [--loader ipxe|grub|pxelinux] [--from FILE.json]
  pxed profiles delete NAME
Files are named relative to the server's boot directory. Every command takes
--server HOST:PORT (default 127.0.0.1:8080), --token T (default $PXED_TOKEN)
and --json.
`

// runProfiles is `pxed profiles`: the runtime profiles of a running pxed.
func runProfiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, profilesHelp)
		if len(args) == 0 {
			return usagef("profiles: give a command")
		}
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("profiles "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c apiClient
	c.register(fs)
	var p fleet.Profile
	var initrds stringList
	from := ""
	if cmd == "set" {
		fs.StringVar(&p.Kernel, "kernel", "", "kernel, relative to the boot directory")
		fs.Var(&initrds, "initrd", "initrd, relative to the boot directory (repeatable, in order)")
		fs.StringVar(&p.Cmdline, "cmdline", "", "kernel command line (may use {{.MAC}}, {{.Hostname}}, … see README)")
		fs.StringVar(&p.Image, "image", "", "bootable .iso or .img, relative to the boot directory")
		fs.StringVar(&p.Loader, "loader", "", "ipxe (default), grub or pxelinux")
		fs.StringVar(&from, "from", "", "read the profile from this JSON file (the configuration's profile keys); flags override it")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	name := ""
	if cmd != "list" {
		if len(pos) != 1 {
			return usagef("profiles %s: give one profile name", cmd)
		}
		name = pos[0]
	} else if len(pos) > 0 {
		return usagef("profiles list: unexpected argument %q", pos[0])
	}
	path := "/api/profiles/" + name
	var raw []byte
	switch cmd {
	case "list":
		var ps []fleet.ProfileView
		if raw, err = c.do(ctx, "GET", "/api/profiles", nil, &ps); err != nil {
			return err
		}
		if c.json {
			return printRaw(stdout, raw)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSOURCE")
		for _, v := range ps {
			fmt.Fprintf(tw, "%s\t%s\n", termSafe(v.Name), termSafe(v.Source))
		}
		return tw.Flush()
	case "show":
		if raw, err = c.do(ctx, "GET", path, nil, nil); err != nil {
			return err
		}
		return printRaw(stdout, raw)
	case "set":
		body := p
		if from != "" {
			b, err := os.ReadFile(from)
			if err != nil {
				return usagef("profiles set: --from: %v", err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				return usagef("profiles set: --from %s: %v", from, err)
			}
			fs.Visit(func(f *flag.Flag) { // flags given override the file
				switch f.Name {
				case "kernel":
					body.Kernel = p.Kernel
				case "cmdline":
					body.Cmdline = p.Cmdline
				case "image":
					body.Image = p.Image
				case "loader":
					body.Loader = p.Loader
				}
			})
		}
		if len(initrds) > 0 {
			body.Initrds = initrds
		}
		if raw, err = c.do(ctx, "PUT", path, body, nil); err != nil {
			return err
		}
		return printRaw(stdout, raw)
	case "delete":
		if _, err := c.do(ctx, "DELETE", path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted", name)
		return nil
	}
	fmt.Fprint(stderr, profilesHelp)
	return usagef("profiles: unknown command %q", cmd)
}
