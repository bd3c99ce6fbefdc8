package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"pxed/internal/boot"
)

const menuProfiles = "ipxe_dir: {ipxe}\ndefault_profile: linux\nprofiles:\n  linux:\n    kernel: {kernel}\n  rescue:\n    kernel: {kernel}\n"

func TestMenuBoot(t *testing.T) {
	l := newLab(t)
	c, err := Load(l.write(t, "interfaces: [lo]\n"+menuProfiles+`menu:
  prompt: Press F8 for the boot menu
  timeout: 4
  default: rescue
  items:
    - description: Linux
      profile: linux
    - name: rescue
      description: Rescue shell
      profile: rescue
      servers: [198.51.100.7]
    - description: Local disk
      local: true
  discovery: [unicast, multicast]
  multicast_address: 239.0.2.1
`))
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	got := c.Boot().Menus.Default
	want := &boot.Menu{Prompt: "Press F8 for the boot menu", Timeout: 4,
		Items: []boot.MenuItem{ // the default first: firmware boots the first item on timeout
			{Desc: "Rescue shell", Type: 0x8002, Profile: "rescue", Servers: []netip.Addr{netip.MustParseAddr("198.51.100.7")}},
			{Desc: "Linux", Type: 0x8001, Profile: "linux"},
			{Desc: "Local disk", Type: 0},
		},
		Discovery: boot.Discovery{Multicast: true}, MulticastAddr: netip.MustParseAddr("239.0.2.1")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("menu\n%+v\nwant\n%+v", got, want)
	}
	if g := c.MenuMulticastGroups(); len(g) != 1 || g[0] != want.MulticastAddr {
		t.Fatalf("MenuMulticastGroups = %v", g)
	}
}

func TestMenuErrors(t *testing.T) {
	items := func(n int, desc string) string {
		var sb strings.Builder
		sb.WriteString("  items:\n")
		for i := 0; i < n; i++ {
			d := fmt.Sprintf("%s%02d", desc, i)
			sb.WriteString(fmt.Sprintf("    - description: %s\n      profile: linux\n      type: %d\n", d[len(d)-len(desc):], i+1))
		}
		return sb.String()
	}
	tests := []struct {
		name  string
		yaml  string
		field string
		line  int
		fix   string
	}{
		{"no items", "menu:\n  prompt: x\n", "menu.items", 9, "a menu needs items"},
		{"item boots two things", "menu:\n  items:\n    - description: A\n      profile: linux\n      local: true\n", "menu.items[0]", 11, "exactly one of profile:, boot_file: or local: true"},
		{"undefined profile", "menu:\n  items:\n    - description: A\n      profile: nope\n", "menu.items[0].profile", 12, `profile "nope" is not defined`},
		{"missing boot file", "menu:\n  items:\n    - description: A\n      boot_file: memtest.bin\n", "menu.items[0].boot_file", 12, "not found"},
		{"timeout out of range", "menu:\n  timeout: 300\n  items:\n    - description: A\n      profile: linux\n", "menu.timeout", 10, "255 (show the menu and wait)"},
		{"duplicate type", "menu:\n  items:\n    - description: A\n      profile: linux\n      type: 5\n    - description: B\n      profile: linux\n      type: 5\n", "menu.items[1].type", 16, "its own boot server type"},
		{"default names no item", "menu:\n  default: nope\n  items:\n    - description: A\n      profile: linux\n", "menu.default", 10, `no item named "nope"`},
		{"unknown discovery", "menu:\n  discovery: [anycast]\n  items:\n    - description: A\n      profile: linux\n", "menu.discovery", 10, "write a list of unicast, broadcast, multicast"},
		{"multicast without address", "menu:\n  discovery: [multicast]\n  items:\n    - description: A\n      profile: linux\n", "menu.multicast_address", 9, "write one like 239.0.2.1"},
		{"boot server not IPv4", "menu:\n  items:\n    - description: A\n      profile: linux\n      servers: [2001:db8::1]\n", "menu.items[0].servers[0]", 13, "IPv4 address"},
		{"25 items", "menu:\n" + items(25, "xx"), "menu", 9, "at most 24"},
		{"description too long", "menu:\n" + items(1, strings.Repeat("d", 71)), "menu", 9, "at most 70"},
		{"menu longer than option 43", "menu:\n  prompt: " + strings.Repeat("p", 80) + "\n" + items(3, strings.Repeat("d", 50)), "menu", 9, "use fewer or shorter items"},
		{"profile menu", "ipxe_dir: {ipxe}\ndefault_profile: linux\nprofiles:\n  linux:\n    kernel: {kernel}\n    menu:\n      items: []\n", "profiles.linux.menu.items", 8, "a menu needs items"},
		{"interface menu for an interface not served", "interface_menus:\n  eth9:\n    items:\n      - description: A\n        profile: linux\n", "interface_menus.eth9", 10, "not one of interfaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			text := tc.yaml
			if !strings.HasPrefix(text, "ipxe_dir") {
				text = menuProfiles + text
			}
			c, err := Load(l.write(t, "interfaces: [lo]\n"+text))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			c.Defaults()
			var es Errors
			if err := c.Validate(); !errors.As(err, &es) {
				t.Fatalf("Validate = %v, want errors", err)
			}
			var e *Error
			for _, x := range es {
				if x.Field == tc.field {
					e = x
				}
			}
			if e == nil {
				t.Fatalf("no error for %q in:\n%v", tc.field, es)
			}
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.fix) || len(es) != 1 {
				t.Fatalf("error %q (line %d), want line %d saying %q, and only it; all:\n%v", e, e.Line, tc.line, tc.fix, es)
			}
		})
	}
}

// TestMenuNotes: a menu naming boot servers by address reminds the
// operator that the pxed there needs this server's key (machine URL
// tokens); nothing with machine_urls: open or without servers:.
func TestMenuNotes(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		name, extra, servers string
		want                 string
	}{
		{"servers listed", "data_dir: /var/lib/pxed\n", "      servers: [198.51.100.7, 198.51.100.8]\n", "boot servers 198.51.100.7, 198.51.100.8 (servers:): give the pxed there the same server key (copy /var/lib/pxed/secret)"},
		{"no data_dir", "", "      servers: [198.51.100.7]\n", "copy DATA_DIR/secret; set data_dir"},
		{"machine_urls open", "machine_urls: open\n", "      servers: [198.51.100.7]\n", ""},
		{"no servers", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(l.write(t, "interfaces: [lo]\n"+tc.extra+menuProfiles+"menu:\n  items:\n    - description: Linux\n      profile: linux\n"+tc.servers))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			notes := c.MenuNotes()
			switch {
			case tc.want == "" && len(notes) > 0:
				t.Fatalf("MenuNotes = %q, want none", notes)
			case tc.want != "" && (len(notes) != 1 || !strings.Contains(notes[0], tc.want)):
				t.Fatalf("MenuNotes = %q, want one containing %q", notes, tc.want)
			}
		})
	}
}
