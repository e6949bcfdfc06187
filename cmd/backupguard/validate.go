package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/backupguard/backupguard/offline"
)

const validateUsage = `Usage: backupguard validate [--config FILE] [-o text|json|github|junit] [--tz ZONE] PATH...

Checks Kubernetes manifests with the same rules the webhook applies in the cluster. PATH is a file, a
directory (read recursively: *.yaml, *.yml, *.json) or - for stdin. Multi-document YAML and List kinds
are unwrapped; kinds backupguard does not handle are skipped and counted. What it should check but
cannot read (a field of the wrong type), a kind Longhorn does not have and a near miss of a kind it
checks (Cronjob, RecuringJob) are denied, never skipped.

Exit status: 0 when every object is allowed, 1 when any is denied, 2 on bad usage, unreadable input or
when nothing was checked (unless --allow-empty).

Flags:
`

func runValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := pflag.NewFlagSet("validate", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, validateUsage)
		flags.PrintDefaults()
	}
	configPath := flags.String("config", "", "backupguard config file (the one serve uses); without it, defaults that match a stock Longhorn")
	output := flags.StringP("output", "o", "text", "output format: text, json, github (workflow annotations) or junit")
	zoneName := flags.String("tz", "", "also show RecurringJob run times in this IANA time zone, e.g. Europe/Berlin")
	at := flags.String("now", "", "decide as of this instant (RFC 3339) instead of the current time")
	allowEmpty := flags.Bool("allow-empty", false, "exit 0 when the input holds nothing backupguard checks (by default that is exit 2: a wrong path must not pass CI)")
	var readOptions offline.ReadOptions
	flags.StringArrayVar(&readOptions.Exclude, "exclude", nil, "leave out files and directories matching this glob: a name anywhere (templates, *.tpl.yaml) or, with a slash, a path (charts/*/templates); repeatable")
	flags.BoolVar(&readOptions.SkipUnparseable, "skip-unparseable", false, "skip a file that is not YAML (a Helm template) with a warning instead of exiting 2")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "backupguard validate: "+format+"\n", a...)
		return exitUsage
	}
	if flags.NArg() == 0 {
		return usageError("no PATH given: name files, directories, or - for stdin")
	}
	switch *output {
	case "text", "json", "github", "junit":
	default:
		return usageError("-o %q: must be text, json, github or junit", *output)
	}
	var zone *time.Location
	if *zoneName != "" {
		var err error
		if zone, err = time.LoadLocation(*zoneName); err != nil {
			return usageError("--tz %q: unknown time zone", *zoneName)
		}
	}
	now := time.Now()
	if *at != "" {
		var err error
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError("--now %q: not an RFC 3339 time such as 2026-11-21T12:00:00Z", *at)
		}
	}
	config, err := loadConfig(*configPath)
	if err != nil {
		return usageError("%v", err)
	}
	if err := readOptions.CheckPatterns(); err != nil {
		return usageError("%v", err)
	}
	documents, unparseable, err := offline.ReadPathsWith(flags.Args(), stdin, readOptions)
	if err != nil {
		return usageError("%v", err)
	}
	for _, skipped := range unparseable {
		fmt.Fprintf(stderr, "backupguard validate: warning: skipped %s (--skip-unparseable)\n", skipped)
	}
	report := offline.Check(documents, config, now)
	switch *output {
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
		fmt.Fprintf(stderr, "backupguard validate: writing the report: %v\n", err)
		return exitUsage
	}
	if report.Summary.Denied > 0 {
		return exitDenied
	}
	if report.Summary.Checked == 0 && !*allowEmpty {
		return usageError("nothing checked: the input holds no RecurringJob, PersistentVolumeClaim or backup Job (a wrong path?); --allow-empty accepts that")
	}
	return exitOK
}
