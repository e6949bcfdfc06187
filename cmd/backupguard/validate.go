package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/backupguard/backupguard/offline"
)

type validateOptions struct {
	configPath  string
	output      string
	zoneName    string
	at          string
	allowEmpty  bool
	readOptions offline.ReadOptions
}

// validateOutputs are the -o values of validate.
var validateOutputs = []string{"text", "json", "github", "junit"}

func newValidateCommand() *cobra.Command {
	var opts validateOptions
	command := &cobra.Command{
		Use:   "validate [--config FILE] [-o text|json|github|junit] [flags] PATH...",
		Short: "Check manifests offline, with the webhook's rules",
		Long: `Checks Kubernetes manifests with the same rules the webhook applies in the cluster. PATH is a file, a
directory (read recursively: *.yaml, *.yml, *.json) or - for stdin. Multi-document YAML and List kinds
are unwrapped; kinds backupguard does not handle are skipped and counted. What it should check but
cannot read (a field of the wrong type), a kind Longhorn does not have and a near miss of a kind it
checks (Cronjob, RecuringJob) are denied, never skipped.

Exit status: 0 when every object is allowed, 1 when any is denied, 2 on bad usage, unreadable input or
when nothing was checked (unless --allow-empty).`,
		Example: `  backupguard validate --config backupguard-config.yaml clusters/
  kustomize build clusters/prod | backupguard validate -o github -
  backupguard validate --exclude 'charts/*/templates' --skip-unparseable .`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("no PATH given: name files, directories, or - for stdin")
			}
			return nil
		},
		RunE: func(command *cobra.Command, args []string) error {
			return runValidate(command, opts, args)
		},
	}
	flags := command.Flags()
	flags.StringVar(&opts.configPath, "config", "", "backupguard config file (the one serve uses); without it, defaults that match a stock Longhorn")
	flags.StringVarP(&opts.output, "output", "o", "text", "output format: text, json, github (workflow annotations) or junit")
	flags.StringVar(&opts.zoneName, "tz", "", "also show RecurringJob run times in this IANA time zone, e.g. Europe/Berlin")
	flags.StringVar(&opts.at, "now", "", "decide as of this instant (RFC 3339) instead of the current time")
	flags.BoolVar(&opts.allowEmpty, "allow-empty", false, "exit 0 when the input holds nothing backupguard checks (otherwise exit 2: a wrong path must not pass CI)")
	addReadFlags(flags, &opts.readOptions)
	_ = command.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(validateOutputs, cobra.ShellCompDirectiveNoFileComp))
	return command
}

func runValidate(command *cobra.Command, opts validateOptions, paths []string) error {
	switch opts.output {
	case "text", "json", "github", "junit":
	default:
		return usageError("-o %q: must be text, json, github or junit", opts.output)
	}
	var zone *time.Location
	if opts.zoneName != "" {
		var err error
		if zone, err = time.LoadLocation(opts.zoneName); err != nil {
			return usageError("--tz %q: unknown time zone", opts.zoneName)
		}
	}
	now := time.Now()
	if opts.at != "" {
		var err error
		if now, err = time.Parse(time.RFC3339, opts.at); err != nil {
			return usageError("--now %q: not an RFC 3339 time such as 2026-11-21T12:00:00Z", opts.at)
		}
	}
	if err := opts.readOptions.CheckPatterns(); err != nil {
		return usageError("%v", err)
	}
	config, err := loadConfig(opts.configPath)
	if err != nil {
		return inputError(err)
	}
	documents, err := readManifests(command, paths, opts.readOptions)
	if err != nil {
		return inputError(err)
	}
	stdout := command.OutOrStdout()
	report := offline.Check(documents, config, now)
	switch opts.output {
	case "json":
		err = report.WriteJSON(stdout)
	case "github":
		err = report.WriteGitHub(stdout)
	case "junit":
		err = report.WriteJUnit(stdout)
	default:
		err = report.WriteText(stdout, zone)
	}
	if err != nil {
		return inputError(fmt.Errorf("writing the report: %w", err))
	}
	if report.Summary.Denied > 0 {
		return &exitStatus{code: exitDenied}
	}
	if report.Summary.Checked == 0 && !opts.allowEmpty {
		return inputError(fmt.Errorf("nothing checked: the input holds no RecurringJob, PersistentVolumeClaim or backup Job (a wrong path?); --allow-empty accepts that"))
	}
	return nil
}

// addReadFlags adds the flags that say which files an offline run leaves out (validate, coverage).
func addReadFlags(flags *pflag.FlagSet, options *offline.ReadOptions) {
	flags.StringArrayVar(&options.Exclude, "exclude", nil, "leave out files and directories matching this glob: a name anywhere (templates, *.tpl.yaml) or, with a slash, a path (charts/*/templates); repeatable")
	flags.BoolVar(&options.SkipUnparseable, "skip-unparseable", false, "skip a file that is not YAML (a Helm template) with a warning instead of exiting 2")
}

// readManifests reads the documents of paths as options say, with a warning on stderr for each file
// --skip-unparseable left out.
func readManifests(command *cobra.Command, paths []string, options offline.ReadOptions) ([]offline.Document, error) {
	documents, unparseable, err := offline.ReadPathsWith(paths, command.InOrStdin(), options)
	if err != nil {
		return nil, err
	}
	for _, skipped := range unparseable {
		fmt.Fprintf(command.ErrOrStderr(), "%s: warning: skipped %s (--skip-unparseable)\n", command.CommandPath(), skipped)
	}
	return documents, nil
}
