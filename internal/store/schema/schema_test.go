package schema

import (
	"errors"
	"testing"
	"testing/fstest"
)

func TestLoadAndPending(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_two.sql": {Data: []byte("two")},
		"m/0001_one.sql": {Data: []byte("one")},
		"m/README":       {Data: []byte("not a migration")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "0001_one.sql" || ms[1].SQL != "two" || Latest(ms) != 2 {
		t.Fatalf("Load = %+v", ms)
	}
	cases := []struct {
		name    string
		applied []int
		want    int // pending migrations; -1: too new
	}{
		{"fresh", nil, 2},
		{"half", []int{1}, 1},
		{"current", []int{1, 2}, 0},
		{"newer", []int{1, 2, 3}, -1},
	}
	for _, c := range cases {
		p, err := Pending("db", ms, c.applied)
		var tn *TooNewError
		switch {
		case c.want < 0 && (!errors.As(err, &tn) || tn.Version != 3 || tn.Known != 2):
			t.Errorf("%s: err = %v, want TooNewError 3 > 2", c.name, err)
		case c.want >= 0 && (err != nil || len(p) != c.want):
			t.Errorf("%s: %d pending, %v; want %d", c.name, len(p), err, c.want)
		}
	}
	if _, err := Load(fstest.MapFS{"m/x.sql": {}}, "m"); err == nil {
		t.Error("Load accepted x.sql")
	}
	if _, err := Load(fstest.MapFS{"m/0001_a.sql": {}, "m/1_b.sql": {}}, "m"); err == nil {
		t.Error("Load accepted two migrations of version 1")
	}
}
