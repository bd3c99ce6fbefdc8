package config

import (
	"net/url"
	"strings"
)

// IsPostgres reports whether store names a PostgreSQL database (a
// postgres:// or postgresql:// URL).
func IsPostgres(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// validateStore checks store: empty (the SQLite file leases.db in
// data_dir) or a PostgreSQL URL. Whether the database answers is checked
// when the server opens it.
func (c *Config) validateStore() Errors {
	if c.Store == "" {
		return nil
	}
	if !IsPostgres(c.Store) {
		return Errors{c.errorf("store", "%q is not a PostgreSQL URL: write postgres://USER:PASSWORD@HOST:PORT/DATABASE, "+
			"or leave store out to keep the leases in data_dir/leases.db (SQLite)", redactURL(c.Store))}
	}
	if _, err := url.Parse(c.Store); err != nil {
		return Errors{c.errorf("store", "not a valid URL (%v): write postgres://USER:PASSWORD@HOST:PORT/DATABASE; "+
			"percent-encode special characters in the password", strings.ReplaceAll(err.Error(), c.Store, redactURL(c.Store)))}
	}
	return nil
}

// redactURL hides the password of a URL-like string for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "…@" + s[i+1:]
		}
		return s
	}
	return u.Redacted()
}
