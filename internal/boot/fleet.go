package boot

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The fleet: what the decision knows about machines besides the YAML
// file — each machine's inventory entry (its runtime profile, labels,
// approval state, boot-once), the selectors that pick a profile for a
// machine without one, and what to do with machines nobody approved.

// State is a machine's approval state in the inventory.
type State string

// Approval states.
const (
	StateNew      State = "new"      // seen, never approved (unknown_machines: boot boots it)
	StatePending  State = "pending"  // held: waits for an operator (unknown_machines: hold)
	StateApproved State = "approved" // an operator approved it
	StateDenied   State = "denied"   // an operator denied it: not booted
)

// ValidState reports whether s is one of the four states.
func ValidState(s State) bool {
	return s == StateNew || s == StatePending || s == StateApproved || s == StateDenied
}

// UnknownPolicy is what pxed does with machines that are neither approved
// nor listed under machines: in the configuration.
type UnknownPolicy string

// Unknown machine policies.
const (
	UnknownBoot   UnknownPolicy = "boot"   // boot them as any other ("" too)
	UnknownHold   UnknownPolicy = "hold"   // boot them into a script that waits for approval
	UnknownIgnore UnknownPolicy = "ignore" // do not answer them at all
)

// LocalProfile is the pseudo-profile that boots a machine from its local
// disk: iPXE gets a script that exits to the firmware, PXE firmware gets no
// answer and goes on to its next boot device.
const LocalProfile = "local"

// ThenDefault, as BootOnce.Then, drops the machine's own profile after the
// boot-once: it boots what the configuration gives it (machines:,
// selectors, default profile).
const ThenDefault = "default"

// BootOnce is a profile a machine boots until it checks in, then Then:
// ThenDefault, LocalProfile or a profile name.
type BootOnce struct {
	Profile string `json:"profile"`
	Then    string `json:"then"`
}

// Entry is what the inventory knows of one machine that the decision uses.
type Entry struct {
	Profile  string            // assigned at run time; "" none
	Labels   map[string]string // for selectors and templates
	State    State
	BootOnce *BootOnce
	// Facts seen lately (DHCP): for selectors of requests that carry
	// none (HTTP, TFTP) and for templates.
	Class    string
	UUID     string // canonical form
	IP       string
	Hostname string
}

// Fleet looks machines up in the inventory (MAC in Normalize form). It is
// safe for concurrent use and returns a copy the caller may keep.
type Fleet interface {
	Lookup(mac string) (Entry, bool)
}

// Selector picks Profile for the machines without one that match every
// criterion it sets (matchbox's selectors): labels, architecture class,
// a MAC prefix, a UUID.
type Selector struct {
	Profile   string
	Labels    map[string]string
	Class     string // "bios", "efi-x64", …
	MACPrefix string // lower-case, colon-separated: "52:54:00"
	UUID      string // canonical form
}

// Match reports whether a machine with these facts matches s.
func (s Selector) Match(mac, class, uuid string, labels map[string]string) bool {
	if s.Class != "" && s.Class != class {
		return false
	}
	if s.MACPrefix != "" && !strings.HasPrefix(mac, s.MACPrefix) {
		return false
	}
	if s.UUID != "" && !strings.EqualFold(s.UUID, uuid) {
		return false
	}
	for k, v := range s.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Admission is whether a machine may boot.
type Admission int

// Admissions.
const (
	Admit Admission = iota // boot it
	Hold                   // boot it into the waiting script
	Deny                   // an operator denied it
	Drop                   // unknown_machines: ignore
)

func (c *Config) lookup(mac string) (Entry, bool) {
	if c.Fleet == nil {
		return Entry{}, false
	}
	return c.Fleet.Lookup(mac)
}

// Admission says whether mac may boot: machines listed under machines:
// and approved machines do; denied machines do not; the others follow
// Config.Unknown.
func (c *Config) Admission(mac string) Admission {
	e, _ := c.lookup(mac)
	return c.admission(mac, e)
}

func (c *Config) admission(mac string, e Entry) Admission {
	if _, ok := c.Machines[mac]; ok {
		return Admit
	}
	switch e.State {
	case StateApproved:
		return Admit
	case StateDenied:
		return Deny
	}
	switch c.Unknown {
	case UnknownHold:
		return Hold
	case UnknownIgnore:
		return Drop
	}
	return Admit
}

// profileName is the name of mac's profile: a menu item chosen lately,
// a boot-once, the profile assigned at run time, the machines: entry,
// the first selector that matches, the default profile. class and uuid
// are the request's facts ("" when it carries none: the inventory's are
// used).
func (c *Config) profileName(mac string, e Entry, class, uuid string) string {
	if chosen, ok := c.chosen(mac); ok {
		return chosen
	}
	return c.assignedName(mac, e, class, uuid)
}

// assignedName is the profile mac is given, a menu choice aside: its
// boot-once profile, its runtime assignment, the configuration's
// machines:, the first matching selector, the default.
func (c *Config) assignedName(mac string, e Entry, class, uuid string) string {
	if e.BootOnce != nil && e.BootOnce.Profile != "" {
		return e.BootOnce.Profile
	}
	if e.Profile != "" {
		return e.Profile
	}
	if name, ok := c.Machines[mac]; ok {
		return name
	}
	if class == "" {
		class = e.Class
	}
	if uuid == "" {
		uuid = e.UUID
	}
	for _, s := range c.Selectors {
		if s.Match(mac, class, uuid, e.Labels) {
			return s.Profile
		}
	}
	return c.Default
}

// Special kinds of Profile: not a profile of the configuration but what
// the decision answers a machine that boots none.
const (
	SpecialLocal = "local" // boot the local disk
	SpecialHold  = "hold"  // wait for approval
	SpecialDeny  = "deny"  // denied: leave the network boot
)

// special returns the pseudo-profile of a special kind.
func special(kind string) Profile { return Profile{Name: "(" + kind + ")", Special: kind} }

// profileOf resolves mac's profile with the request's facts.
func (c *Config) profileOf(mac net.HardwareAddr, class, uuid string) (Profile, bool) {
	key := Normalize(mac)
	e, _ := c.lookup(key)
	switch c.admission(key, e) {
	case Hold:
		return special(SpecialHold), true
	case Deny:
		return special(SpecialDeny), true
	case Drop:
		return Profile{}, false
	}
	name := c.profileName(key, e, class, CanonicalUUID(uuid))
	if name == "" {
		return Profile{}, false
	}
	if name == LocalProfile {
		if _, ok := c.Profiles[name]; !ok {
			return special(SpecialLocal), true
		}
	}
	p, ok := c.Profiles[name]
	if ok && p.Name == "" {
		p.Name = name
	}
	return p, ok
}

// specialScript is the iPXE script of a special pseudo-profile.
func specialScript(p Profile, s Server, mac net.HardwareAddr) string {
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	switch p.Special {
	case SpecialHold:
		// Poll: this very script, every few seconds, until an operator
		// approves (the script becomes the machine's profile) or denies.
		fmt.Fprintf(&sb, "echo pxed: machine %s is waiting for approval (pxed machines approve %s)\n", Normalize(mac), Normalize(mac))
		sb.WriteString(":wait\nsleep 5\n")
		sb.WriteString("chain --autofree --replace " + ScriptURL(s, mac) + " || goto wait\n")
	case SpecialDeny:
		fmt.Fprintf(&sb, "echo pxed: machine %s was denied network boot: leaving for the next boot device\n", Normalize(mac))
		sb.WriteString("exit 1\n")
	default:
		fmt.Fprintf(&sb, "echo pxed: %s boots from its local disk\n", Normalize(mac))
		sb.WriteString("exit\n")
	}
	return sb.String()
}

// ErrorScript is the iPXE script a machine gets when its own cannot be
// made (a template that fails for it): it says why and retries later.
func ErrorScript(mac net.HardwareAddr, why string) string {
	why = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, why)
	return "#!ipxe\necho pxed: cannot boot " + Normalize(mac) + ": " + why + "\necho pxed: retrying in 30 seconds\nsleep 30\nreboot\n"
}

// Observer notes the boot clients a DHCP server sees and what it decided
// for them (the machines inventory: fleet.Fleet). ip is the address the
// client uses or is given, hostname its option 12; either may be zero.
type Observer interface {
	Observe(m Machine, ip netip.Addr, hostname string, plan Plan)
}
