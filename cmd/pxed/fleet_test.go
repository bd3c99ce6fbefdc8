package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"pxed/internal/api"
	"pxed/internal/boot"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/store/pgtest"
	"pxed/internal/store/postgres"
)

// TestInventoryOnPostgres: with store: a PostgreSQL URL, openFleet keeps
// the inventory there (not in DATA_DIR/machines.db), and a machine
// approved through one server's API is approved on another server on the
// same database within the documented delay (README: about 1.5 s).
func TestInventoryOnPostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	log := slog.New(slog.DiscardHandler)
	open := func() (*api.Handler, func() boot.State) {
		cfg := &config.Config{Store: dsn, DataDir: t.TempDir()}
		cfg.Defaults()
		inv, closeInv, err := openFleet(context.Background(), cfg, &boot.Catalog{}, cfg.Boot(), &events.Log{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := inv.Store.(*postgres.Machines); !ok {
			t.Fatalf("inventory store %T, want PostgreSQL", inv.Store)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { inv.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; closeInv() })
		return &api.Handler{Fleet: inv}, func() boot.State {
			m, err := inv.Get("52:54:00:00:00:77")
			if err != nil {
				return ""
			}
			return m.State
		}
	}
	a, _ := open()
	_, stateOnB := open()
	mux := http.NewServeMux()
	a.Register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/api/machines/52-54-00-00-00-77/approve", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("approve through A: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(3 * time.Second) // 1.5 s documented, room for a loaded machine
	for stateOnB() != boot.StateApproved {
		if time.Now().After(deadline) {
			t.Fatalf("B: state %q 3 s after the approval through A's API", stateOnB())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
