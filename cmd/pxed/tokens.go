package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"pxed/internal/apiauth"
)

// runTokens is `pxed tokens create|list|revoke`: the API tokens kept (as
// hashes) in the data directory's file "tokens".
func runTokens(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("tokens: say create, list or revoke (pxed tokens create --scope read|admin [--name N] [--data-dir DIR])")
	}
	fs := flag.NewFlagSet("tokens "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/pxed", "pxed's data directory (the server's --data-dir)")
	switch args[0] {
	case "create":
		scope := fs.String("scope", "", "read (GET and HEAD) or admin (everything)")
		name := fs.String("name", "", "a label for the token, shown by list, usable by revoke")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		sc, err := apiauth.ParseScope(*scope)
		if err != nil {
			return usagef("tokens create: --scope: %v", err)
		}
		tok, t, err := apiauth.Open(*dataDir).Create(sc, *name, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "pxed: token %s (%s scope) created; it is shown only now: send it as Authorization: Bearer <token>\n", t.ID, t.Scope)
		return nil
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		ts, err := apiauth.Open(*dataDir).List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPE\tCREATED\tNAME")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Scope, t.Created.Format(time.RFC3339), t.Name)
		}
		return tw.Flush()
	case "revoke":
		if len(args) < 2 || args[1] == "" || args[1][0] == '-' {
			return usagef("tokens revoke: name the token: pxed tokens revoke ID|NAME [--data-dir DIR]")
		}
		if err := parseFlags(fs, args[2:]); err != nil {
			return err
		}
		n, err := apiauth.Open(*dataDir).Revoke(args[1])
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("tokens revoke: no token has ID or name " + args[1] + " (pxed tokens list)")
		}
		fmt.Fprintf(stderr, "pxed: %d token(s) revoked\n", n)
		return nil
	}
	return usagef("tokens: unknown action %q: say create, list or revoke", args[0])
}
