package boot

import (
	"fmt"
	"net"
	"strings"
	"text/template"
)

// Templates: a profile's kernel command line and script may use the
// machine's facts through text/template ({{.MAC}}, {{.Labels.rack}}, …).
// They are checked when the configuration is loaded (CheckTemplate) and
// rendered for each machine (Expand); a template that still fails for one
// machine gives it ErrorScript.

// Facts are what a template knows of the machine it is rendered for.
type Facts struct {
	MAC        string            // aa:bb:cc:dd:ee:ff
	UUID       string            // SMBIOS UUID, canonical form; "" unknown
	IP         string            // its address, as DHCP last saw it
	Hostname   string            // as DHCP last saw it
	Arch       string            // architecture class: bios, efi-x64, …
	Labels     map[string]string // the inventory's labels
	ServerURL  string            // http://SERVER:PORT of the request
	CheckinURL string            // where the booted system checks in (POST)
}

var sampleFacts = Facts{MAC: "52:54:00:12:34:56", UUID: "00000000-0000-0000-0000-000000000000", IP: "192.0.2.10",
	Hostname: "host", Arch: "efi-x64", Labels: map[string]string{}, ServerURL: "http://192.0.2.1:8080",
	CheckinURL: "http://192.0.2.1:8080/api/machines/52:54:00:12:34:56/checkin"}

func parse(text string) (*template.Template, error) {
	return template.New("").Option("missingkey=zero").Parse(text)
}

// CheckTemplate parses text and renders it once with sample facts: a
// syntax error or an unknown field is found when the configuration is
// loaded, not when a machine boots.
func CheckTemplate(text string) error {
	if !strings.Contains(text, "{{") {
		return nil
	}
	t, err := parse(text)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	if err := t.Execute(&strings.Builder{}, sampleFacts); err != nil {
		return fmt.Errorf("template: %w (fields: .MAC .UUID .IP .Hostname .Arch .Labels.NAME .ServerURL .CheckinURL)", err)
	}
	return nil
}

// Render renders text with f; text without "{{" is returned as is.
func Render(text string, f Facts) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := parse(text)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	var sb strings.Builder
	if err := t.Execute(&sb, f); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return sb.String(), nil
}

// FactsFor returns mac's facts from the inventory, with the URLs of
// server s.
func (c *Config) FactsFor(mac net.HardwareAddr, s Server) Facts {
	key := Normalize(mac)
	e, _ := c.lookup(key)
	f := Facts{MAC: key, UUID: e.UUID, IP: e.IP, Hostname: e.Hostname, Arch: e.Class, Labels: e.Labels}
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	if s.IP.IsValid() {
		f.ServerURL = base(s)
		f.CheckinURL = CheckinURL(s, mac, c.CheckinToken)
	}
	return f
}

// CheckinURL is where the system mac booted reports that it is installed:
// POST http://SERVER/api/machines/MAC/checkin?token=T, T from token (nil:
// no token).
func CheckinURL(s Server, mac net.HardwareAddr, token func(string) string) string {
	u := base(s) + "/api/machines/" + Normalize(mac) + "/checkin"
	if token != nil {
		if t := token(Normalize(mac)); t != "" {
			u += "?token=" + t
		}
	}
	return u
}

// Expand renders the templates of p (command line and script) for mac.
func (c *Config) Expand(p Profile, s Server, mac net.HardwareAddr) (Profile, error) {
	if !strings.Contains(p.Cmdline, "{{") && !strings.Contains(p.Script, "{{") {
		return p, nil
	}
	f := c.FactsFor(mac, s)
	var err error
	if p.Cmdline, err = Render(p.Cmdline, f); err != nil {
		return p, fmt.Errorf("profile %s: cmdline: %w", p.Name, err)
	}
	if p.Script, err = Render(p.Script, f); err != nil {
		return p, fmt.Errorf("profile %s: script: %w", p.Name, err)
	}
	return p, nil
}
