// Command backupguard is an admission webhook, and an offline validator, that makes Longhorn backups safe
// to run from Git.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version, when stamped at build time with -ldflags "-X main.version=...", overrides the module version
// from the build info.
var version = ""

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

// exitStatus ends a command with a status other than 0: 1 for a failure or a denial, 2 for input it
// cannot use. err, when set, is printed after the command's name; nil when the command has said
// everything itself.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// usageError is a mistake in the command line: printed with the command's usage, status 2. Every error
// cobra itself returns (an unknown flag or command, a missing flag value) is one too.
func usageError(format string, a ...any) error { return fmt.Errorf(format, a...) }

// inputError is input the command cannot use (a config file, a manifest): status 2, without the usage.
func inputError(err error) error { return &exitStatus{code: exitUsage, err: err} }

// failure is a command that could not do its work: status 1.
func failure(err error) error { return &exitStatus{code: exitFailure, err: err} }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	if len(args) == 0 {
		// No command is a mistake too: the help, on stderr, and status 2.
		root.SetArgs([]string{"--help"})
		root.SetOut(stderr)
		_ = root.Execute()
		return exitUsage
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	command, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var status *exitStatus
	if errors.As(err, &status) {
		if status.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", command.CommandPath(), status.err)
		}
		return status.code
	}
	fmt.Fprintf(stderr, "%s: %s\n\n%s", command.CommandPath(), strings.TrimRight(err.Error(), "\n"), command.UsageString())
	return exitUsage
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "backupguard",
		Short: "backupguard makes Longhorn backups safe to run from Git",
		Long: `backupguard makes Longhorn backups safe to run from Git: an admission webhook that checks RecurringJobs,
labels PVCs and Volumes for their recurring jobs and places backup Jobs next to their volumes, a
scheduler for the S3 window, and the same checks offline for CI.

  backupguard serve --config FILE --cert-dir DIR [flags]                     run the admission webhook
  backupguard validate [--config FILE] [-o text|json|github|junit] PATH...   check manifests offline
  backupguard window open|close|status [-o text|json|yaml] [flags]           the S3 window
  backupguard coverage [-o text|json|markdown] [flags] [PATH...]             which volumes are backed up
  backupguard completion bash|zsh|fish                                       shell completion
  backupguard version`,
		Version:       buildVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// Cobra adds these while running a command; added now, the usage after an unknown command has them.
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(newServeCommand(), newValidateCommand(), newWindowCommand(), newCoverageCommand(), newVersionCommand(), newProbeCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print backupguard's version",
		Long:  "Prints backupguard's version: the module version go install built (v0.2.0), else the one the build stamped, else dev.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), buildVersion())
			return nil
		},
	}
}

// buildVersion is the version -ldflags stamped, else the module version in the build info (what
// `go install github.com/backupguard/backupguard/cmd/backupguard@v0.2.0` records), else "dev".
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(version, info)
}

func versionFrom(stamped string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info != nil && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// noArgs refuses arguments, as a mistake in the command line.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unexpected arguments %q", args)
	}
	return nil
}
