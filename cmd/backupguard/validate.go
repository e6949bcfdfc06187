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
are unwrapped; kinds backupguard does not handle are skipped and counted.

Exit status: 0 when every object is allowed, 1 when any is denied, 2 on bad usage or unreadable input.

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
	documents, err := offline.ReadPaths(flags.Args(), stdin)
	if err != nil {
		return usageError("%v", err)
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
	return exitOK
}
