// Command backupguard is an admission webhook, and an offline validator, that makes Longhorn backups safe
// to run from Git.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `backupguard makes Longhorn backups safe to run from Git.

Usage:
  backupguard serve --config FILE --cert-dir DIR [flags]   run the admission webhook
  backupguard validate [--config FILE] [-o text|json] PATH...   check manifests offline
  backupguard window open|close|status [flags]             the S3 window: manual override and state
  backupguard version

Run "backupguard COMMAND --help" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes, shared by every subcommand.
const (
	exitOK      = 0
	exitDenied  = 1
	exitFailure = 1
	exitUsage   = 2
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "validate":
		return runValidate(args[1:], stdin, stdout, stderr)
	case "window":
		return runWindow(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "backupguard: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}
