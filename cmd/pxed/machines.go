package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

const machinesHelp = `Usage:
  pxed machines list [--state new|pending|approved|denied] [--label KEY=VALUE]
  pxed machines show MAC
  pxed machines set MAC [--profile NAME | --no-profile] [--label KEY=VALUE]... [--no-labels]
  pxed machines approve MAC
  pxed machines deny MAC
  pxed machines boot-once MAC --profile NAME [--then default|local|PROFILE]
  pxed machines forget MAC
Every command takes --server HOST:PORT (default 127.0.0.1:8080), --token T
(default $PXED_TOKEN) and --json.
`

// runMachines is `pxed machines`: the inventory of a running pxed.
func runMachines(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, machinesHelp)
		if len(args) == 0 {
			return usagef("machines: give a command")
		}
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("machines "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c apiClient
	c.register(fs)
	var state, label, profile, then *string
	var noProfile, noLabels *bool
	var labels stringList
	switch cmd {
	case "list":
		state = fs.String("state", "", "only machines in this state: new, pending, approved, denied")
		label = fs.String("label", "", "only machines with this label (KEY=VALUE)")
	case "set":
		profile = fs.String("profile", "", "the machine's own profile")
		noProfile = fs.Bool("no-profile", false, "remove the machine's own profile (it boots what the configuration gives it)")
		fs.Var(&labels, "label", "a label KEY=VALUE (repeatable; replaces the machine's labels)")
		noLabels = fs.Bool("no-labels", false, "remove every label")
	case "boot-once":
		profile = fs.String("profile", "", "the profile booted until the machine checks in")
		then = fs.String("then", "default", "after the check-in: default (the configuration's profile), local (the disk) or a profile")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	needMAC := func() (string, error) {
		if len(pos) != 1 {
			return "", usagef("machines %s: give one MAC (aa:bb:cc:dd:ee:ff)", cmd)
		}
		key, err := fleet.Key(pos[0])
		if err != nil {
			return "", usageError{err}
		}
		return key, nil
	}
	var m fleet.Machine
	var raw []byte
	switch cmd {
	case "list":
		if len(pos) > 0 {
			return usagef("machines list: unexpected argument %q", pos[0])
		}
		q := url.Values{}
		if *state != "" {
			q.Set("state", *state)
		}
		if *label != "" {
			q.Set("label", *label)
		}
		path := "/api/machines"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var ms []fleet.Machine
		raw, err = c.do(ctx, "GET", path, nil, &ms)
		if err != nil {
			return err
		}
		if c.json {
			return printRaw(stdout, raw)
		}
		return printMachines(stdout, ms)
	case "show":
		mac, err := needMAC()
		if err != nil {
			return err
		}
		if raw, err = c.do(ctx, "GET", "/api/machines/"+mac, nil, &m); err != nil {
			return err
		}
		var tl []events.Event
		if _, err := c.do(ctx, "GET", "/api/machines/"+mac+"/timeline", nil, &tl); err != nil && !strings.Contains(err.Error(), "404") {
			return err
		}
		if c.json {
			return printRaw(stdout, raw)
		}
		return printMachine(stdout, m, tl)
	case "set":
		mac, err := needMAC()
		if err != nil {
			return err
		}
		body := map[string]any{}
		switch {
		case *noProfile && *profile != "":
			return usagef("machines set: give --profile NAME or --no-profile, not both")
		case *noProfile:
			body["profile"] = nil
		case *profile != "":
			body["profile"] = *profile
		}
		if len(labels) > 0 || *noLabels {
			l := map[string]string{}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("machines set: --label %q: write KEY=VALUE", kv)
				}
				l[k] = v
			}
			body["labels"] = l
		}
		if len(body) == 0 {
			return usagef("machines set: nothing to change: give --profile, --no-profile, --label or --no-labels")
		}
		raw, err = c.do(ctx, "PATCH", "/api/machines/"+mac, body, &m)
		if err != nil {
			return err
		}
	case "approve", "deny", "forget":
		mac, err := needMAC()
		if err != nil {
			return err
		}
		if cmd == "forget" {
			if _, err := c.do(ctx, "DELETE", "/api/machines/"+mac, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "forgot", mac)
			return nil
		}
		if raw, err = c.do(ctx, "POST", "/api/machines/"+mac+"/"+cmd, nil, &m); err != nil {
			return err
		}
	case "boot-once":
		mac, err := needMAC()
		if err != nil {
			return err
		}
		if *profile == "" {
			return usagef("machines boot-once: give --profile NAME (the profile booted until the machine checks in)")
		}
		if raw, err = c.do(ctx, "POST", "/api/machines/"+mac+"/boot-once", boot.BootOnce{Profile: *profile, Then: *then}, &m); err != nil {
			return err
		}
	default:
		fmt.Fprint(stderr, machinesHelp)
		return usagef("machines: unknown command %q", cmd)
	}
	if c.json {
		return printRaw(stdout, raw)
	}
	return printMachine(stdout, m, nil)
}

func printMachines(w io.Writer, ms []fleet.Machine) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tSTATE\tPROFILE\tARCH\tADDRESS\tHOSTNAME\tLAST SEEN\tLAST STAGE")
	for _, m := range ms {
		p := m.EffectiveProfile
		if m.BootOnce != nil {
			p += " (once; then " + m.BootOnce.Then + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", termSafe(m.MAC), termSafe(string(m.State)), termSafe(p), termSafe(m.Arch),
			termSafe(m.Address), termSafe(m.Hostname), m.LastSeen.Local().Format(time.DateTime), termSafe(m.LastStage))
	}
	return tw.Flush()
}

func printMachine(w io.Writer, m fleet.Machine, tl []events.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, termSafe(v)) }
	row("mac", m.MAC)
	row("state", string(m.State))
	row("profile", m.Profile)
	row("effective profile", m.EffectiveProfile)
	if m.BootOnce != nil {
		row("boot-once", m.BootOnce.Profile+", then "+m.BootOnce.Then)
	}
	row("uuid", m.UUID)
	row("arch", m.Arch)
	row("firmware", m.Firmware)
	row("address", m.Address)
	row("hostname", m.Hostname)
	var ls []string
	for k, v := range m.Labels {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	row("labels", strings.Join(ls, " "))
	if !m.FirstSeen.IsZero() {
		row("first seen", m.FirstSeen.Local().Format(time.DateTime))
		row("last seen", m.LastSeen.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(tl) > 0 {
		fmt.Fprintln(w, "\ntimeline:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range tl {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Time.Local().Format("15:04:05.000"), termSafe(string(e.Stage)), termSafe(e.Detail))
		}
		return tw.Flush()
	}
	return nil
}
