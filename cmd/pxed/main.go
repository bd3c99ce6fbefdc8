// Command pxed is a network boot server: ProxyDHCP or full DHCP, PXE boot
// server, TFTP and HTTP, so BIOS, UEFI and iPXE machines boot a kernel from
// the network. Run `pxed help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes (DESIGN.md "Contracts").
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in flags or configuration: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const help = `pxed — network boot server

Usage:
  pxed boot  --interface IF --kernel FILE --initrd FILE [--cmdline STR] [flags]
             boot every PXE machine on IF into that kernel (ProxyDHCP by default)
  pxed serve [--config FILE] [flags]
             run the server from a YAML configuration
  pxed probe --interface IF [--arch A] [--fetch] [--json] [--expect-server IP]
             act as a PXE client and report what a machine would boot
  pxed storm --interface IF --clients N [--arch mix|A] [--fetch] [--rate R] [--json]
             boot N simulated machines at once and report latencies and failures
  pxed leases [--data-dir DIR | --store DSN | --server HOST:PORT] [--json]
             list the leases of mode server (table or JSON)
  pxed tokens create --scope read|admin [--name N] [--data-dir DIR] | list | revoke ID|NAME
             API tokens (shown once at create; only their hashes are kept)
  pxed migrate [--data-dir DIR | --store DSN]
             create or upgrade the lease database's schema, then exit
  pxed machines list|show|set|approve|deny|boot-once|forget [MAC] [--server HOST:PORT]
             the machines inventory of a running pxed
  pxed profiles list|show|set|delete [NAME] [--server HOST:PORT]
             the runtime profiles of a running pxed
  pxed version

Run 'pxed COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, help)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "boot":
		err = runBoot(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "probe":
		err = runProbe(ctx, args[1:], stdout, stderr)
	case "storm":
		err = runStorm(ctx, args[1:], stdout, stderr)
	case "leases":
		err = runLeases(ctx, args[1:], stdout, stderr)
	case "tokens":
		err = runTokens(ctx, args[1:], stdout, stderr) // tokens.go
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "machines":
		err = runMachines(ctx, args[1:], stdout, stderr)
	case "profiles":
		err = runProfiles(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "pxed", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, help)
	default:
		fmt.Fprintf(stderr, "pxed: unknown command %q\n\n%s", args[0], help)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "pxed:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

var version = "dev"

// parseFlags parses a subcommand's flags: -h is not an error, any other
// mistake (an unknown flag, a stray argument) is a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (flags only; see pxed %s -h)", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}
