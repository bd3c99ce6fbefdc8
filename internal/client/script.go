package client

import (
	"fmt"
	"net/url"
	"strings"
)

// ScriptFile is a file an iPXE script loads.
type ScriptFile struct {
	Command string `json:"command"` // "kernel", "initrd", "chain", "imgfetch", "module"
	URL     string `json:"url"`     // resolved against the script's URL
	Args    string `json:"args,omitempty"`
	// Unresolved is true when the URL uses ${variables} the probe cannot
	// expand; such files are listed, not fetched.
	Unresolved bool `json:"unresolved,omitempty"`
}

// Script is a parsed iPXE script.
type Script struct {
	Files []ScriptFile `json:"files"`
	Boots bool         `json:"boots"` // has a boot, chain or imgexec command
}

// loadCommands are the iPXE commands that fetch an image, with aliases
// (iPXE core/image commands: imgfetch/module/initrd, imgselect/kernel,
// imgexec/chain/boot).
var loadCommands = map[string]bool{
	"kernel": true, "imgselect": true, "initrd": true, "module": true,
	"imgfetch": true, "chain": true, "imgexec": true, "imgload": true,
}

// optionsWithArg are image command options that take a value.
var optionsWithArg = map[string]bool{"--name": true, "-n": true, "--timeout": true, "-t": true}

// ParseScript reads an iPXE script fetched from base and lists the files
// it loads. Comments, labels and other commands are skipped; "cmd || goto
// x" keeps cmd. A text that does not start with #!ipxe is an error: iPXE
// would try to run it as a binary.
func ParseScript(text, base string) (Script, error) {
	var s Script
	if !strings.HasPrefix(strings.TrimLeft(text, "\ufeff"), "#!ipxe") {
		return s, fmt.Errorf("client: %s is not an iPXE script (no #!ipxe first line)", base)
	}
	b, err := url.Parse(base)
	if err != nil {
		return s, fmt.Errorf("client: script URL %q: %w", base, err)
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if i := strings.Index(line, "||"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if i := strings.Index(line, "&&"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" || line[0] == '#' || line[0] == ':' {
			continue
		}
		f := strings.Fields(line)
		cmd := f[0]
		if cmd == "boot" || cmd == "imgexec" || cmd == "chain" {
			s.Boots = true
		}
		if !loadCommands[cmd] {
			continue
		}
		args := f[1:]
		var target string
		var rest []string
		for i := 0; i < len(args); i++ {
			a := args[i]
			if target == "" && strings.HasPrefix(a, "-") {
				if optionsWithArg[a] {
					i++
				}
				continue
			}
			if target == "" {
				target = a
				continue
			}
			rest = append(rest, a)
		}
		if target == "" {
			continue // "boot"-like use without an image (imgexec alone)
		}
		sf := ScriptFile{Command: cmd, Args: strings.Join(rest, " ")}
		switch cmd {
		case "imgselect":
			sf.Command = "kernel"
		case "module", "imgfetch", "imgload":
			sf.Command = "initrd"
		case "imgexec":
			sf.Command = "chain"
		}
		if strings.Contains(target, "${") {
			sf.URL, sf.Unresolved = target, true
		} else if u, err := b.Parse(target); err == nil {
			sf.URL = u.String()
		} else {
			return s, fmt.Errorf("client: script %s: %s: bad URL %q: %w", base, cmd, target, err)
		}
		s.Files = append(s.Files, sf)
	}
	return s, nil
}
