package config

import (
	"strings"
	"testing"
)

func TestValidateStore(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // "" valid, else in the error
	}{
		{"absent", "log_format: text\n", ""},
		{"postgres", "store: postgres://pxed:secret@db.example:5432/pxed\n", ""},
		{"postgresql", "store: postgresql://pxed@db.example/pxed?sslmode=require\n", ""},
		{"a file", "log_format: text\nstore: /var/lib/pxed/leases.db\n", "t.yaml:2: store"},
		{"mysql", "store: mysql://pxed:secret@db/pxed\n", "postgres://USER:PASSWORD@HOST:PORT/DATABASE"},
		{"bad url", "store: \"postgres://pxed:se%cret@db/pxed\"\n", "percent-encode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			es := cfg.validateStore()
			switch {
			case c.want == "" && len(es) > 0:
				t.Fatalf("valid store refused: %v", es)
			case c.want != "" && (len(es) == 0 || !strings.Contains(es.Error(), c.want)):
				t.Fatalf("errors %v, want one mentioning %q", es, c.want)
			}
			if len(es) > 0 && strings.Contains(es.Error(), "secret") {
				t.Errorf("error shows the password: %v", es)
			}
		})
	}
}
