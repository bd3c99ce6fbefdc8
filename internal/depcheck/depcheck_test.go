package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "pxed/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(out)
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// TestImportGraph enforces DESIGN.md: the boot decision depends on the
// standard library only, protocol packages never import the API, the web
// page, the store, the configuration or the command, and the socket loop
// they share (udploop) knows no protocol: of pxed it imports only lease
// (the writes a reply waits for), lograte and mmsg (batched system calls).
func TestImportGraph(t *testing.T) {
	protocol := []string{"pxed/internal/boot", "pxed/internal/pxe", "pxed/internal/dhcp4", "pxed/internal/dhcp6",
		"pxed/internal/tftp", "pxed/internal/httpboot", "pxed/internal/lease", "pxed/internal/events", "pxed/internal/udploop", "pxed/internal/rogue"}
	forbidden := []string{"pxed/internal/api", "pxed/internal/web", "pxed/internal/store", "pxed/internal/config", "pxed/cmd/"}
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			if p.ImportPath == "pxed/internal/boot" && strings.Contains(strings.Split(imp, "/")[0], ".") {
				t.Errorf("internal/boot imports %s: the boot decision may use the standard library only", imp)
			}
			if p.ImportPath == "pxed/internal/boot" && strings.HasPrefix(imp, "pxed/") {
				t.Errorf("internal/boot imports %s: the boot decision may use the standard library only", imp)
			}
			if p.ImportPath == "pxed/internal/udploop" && strings.HasPrefix(imp, "pxed/") &&
				imp != "pxed/internal/lease" && imp != "pxed/internal/lograte" && imp != "pxed/internal/mmsg" {
				t.Errorf("internal/udploop imports %s: the shared loop is protocol-neutral, the protocol plugs in a Handler", imp)
			}
			for _, pr := range protocol {
				if !strings.HasPrefix(p.ImportPath, pr) {
					continue
				}
				for _, f := range forbidden {
					if strings.HasPrefix(imp, f) {
						t.Errorf("%s imports %s: protocol packages take small interfaces instead", p.ImportPath, imp)
					}
				}
			}
		}
	}
}

// TestPackagesDocumented checks every package has a package doc comment.
func TestPackagesDocumented(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment", p.ImportPath)
		}
	}
}
