// Command trustgate is a registry mirror that serves only content signed with Docker Content
// Trust. Subcommands:
//
//	trustgate demo                  run the mirror in front of an embedded, signed sample registry
//	trustgate serve   --config F    run the mirror
//	trustgate resolve --config F R  print the signed digest of image reference R
//	trustgate trust freeze|show     frozen trust (trust.go)
//	trustgate trust accept --config F R:T D  let tag R:T move back to digest D (cosign, Notation)
//	trustgate version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(int(ee))
	default:
		fmt.Fprintln(os.Stderr, "trustgate:", err)
		os.Exit(1)
	}
}

// exitError carries an exit status for errors that were already reported.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const usage = `usage: trustgate <command> [flags]

commands:
  demo     [--listen ADDR] [--check] [--log-level LEVEL]
  serve    --config FILE [--watch-config DUR] [--listen ADDR] [--trust-dir DIR] [--trust-ttl DUR] [--log-level LEVEL]
           (SIGHUP re-reads the configuration)
  resolve  --config FILE [--json] IMAGE:TAG
  trust    freeze --config FILE --expires TIME [--out FILE] [--from server|trust-dir] PATTERN...
  trust    show [--config FILE] [--file FILE]
  trust accept --config FILE REPOSITORY:TAG DIGEST   accept a cosign/Notation tag rollback
  version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "resolve":
		return runResolve(ctx, args[1:], stdout, stderr)
	case "trust":
		return runTrust(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "trustgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "trustgate: unknown command %q\n%s", args[0], usage)
		return exitError(2)
	}
}
