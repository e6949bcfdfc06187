package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

type coverageOptions struct {
	cluster     clusterFlags
	configPath  string
	output      string
	zoneName    string
	at          string
	maxAge      time.Duration
	failOn      []string
	timeout     time.Duration
	readOptions offline.ReadOptions
}

// coverageOutputs are the -o values of coverage.
var coverageOutputs = []string{"text", "json", "markdown"}

func newCoverageCommand() *cobra.Command {
	var opts coverageOptions
	command := &cobra.Command{
		Use:   "coverage [--config FILE] [-o text|json|markdown] [flags] [PATH...]",
		Short: "Which volumes are backed up, and since when",
		Long: `Reports, for every PVC of a Longhorn class and every Longhorn Volume without a PVC, the RecurringJobs
that select it (by job label, by group, or through the default group), the next backup run and
whether it falls in the S3 window, the last completed backup and its age, and a verdict:

  failing      the newest backup of the volume is in Error
  stale        the last backup is older than twice the backup job's interval (or --max-age)
  skipped      detached, and Longhorn skips detached volumes (allow-recurring-job-while-volume-detached)
  dangling     a recurring label names no RecurringJob or group, or its value is not "enabled"
  unprotected  no backup job selects it
  protected    a backup job selects it and its backups are recent

Also lists the RecurringJobs that select no volume, and audits the RecurringJobs that exist: what the
webhook would deny today.

Without PATH it reads the cluster (--kubeconfig, --context). With PATH it reads manifests as validate
does, --exclude and --skip-unparseable included: a PVC gets the labels backupguard's rules would give it, and when its Volume is not in the input
the Volume is taken to carry the PVC's recurring labels. In the text table a job selected through a
group shows the group in brackets: daily[databases].

Exit status: 0, or 1 when a row has a verdict named by --fail-on (or the cluster cannot be read), 2 on
bad usage or unreadable input.`,
		Example: `  backupguard coverage --context prod --tz Europe/Berlin
  backupguard coverage --fail-on unprotected,stale,failing --max-age 48h
  backupguard coverage --config backupguard-config.yaml -o markdown clusters/prod/
  backupguard coverage --exclude 'charts/*/templates' --skip-unparseable .`,
		RunE: func(command *cobra.Command, args []string) error {
			return runCoverage(command, opts, args)
		},
	}
	flags := command.Flags()
	opts.cluster.addFlags(flags)
	flags.StringVar(&opts.configPath, "config", "", "backupguard config file (the one serve uses): the Longhorn namespace, the window, the label rules; without it, the defaults")
	flags.StringVarP(&opts.output, "output", "o", "text", "output format: text, json or markdown (for a pull request comment)")
	flags.StringVar(&opts.zoneName, "tz", "", "also show the next backup run in this IANA time zone, e.g. Europe/Berlin")
	flags.StringVar(&opts.at, "now", "", "report as of this instant (RFC 3339) instead of the current time")
	flags.DurationVar(&opts.maxAge, "max-age", 0, "a backup older than this is stale, whatever its job's interval (default: twice the interval)")
	flags.StringSliceVar(&opts.failOn, "fail-on", nil, "exit 1 when a row has one of these verdicts: "+verdictList())
	flags.DurationVar(&opts.timeout, "timeout", time.Minute, "how long to wait for the cluster")
	addReadFlags(flags, &opts.readOptions)
	_ = command.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(coverageOutputs, cobra.ShellCompDirectiveNoFileComp))
	return command
}

func verdictList() string {
	names := make([]string, len(policies.CoverageVerdicts))
	for i, verdict := range policies.CoverageVerdicts {
		names[i] = string(verdict)
	}
	return strings.Join(names, ", ")
}

func runCoverage(command *cobra.Command, opts coverageOptions, paths []string) error {
	if !slices.Contains(coverageOutputs, opts.output) {
		return usageError("-o %q: must be text, json or markdown", opts.output)
	}
	zone := time.UTC
	if opts.zoneName != "" {
		var err error
		if zone, err = time.LoadLocation(opts.zoneName); err != nil {
			return usageError("--tz %q: unknown time zone", opts.zoneName)
		}
	}
	now := time.Now().UTC()
	if opts.at != "" {
		var err error
		if now, err = time.Parse(time.RFC3339, opts.at); err != nil {
			return usageError("--now %q: not an RFC 3339 time such as 2026-11-21T12:00:00Z", opts.at)
		}
	}
	if opts.maxAge < 0 {
		return usageError("--max-age must not be negative")
	}
	failOn := map[policies.CoverageVerdict]bool{}
	for _, name := range opts.failOn {
		verdict := policies.CoverageVerdict(strings.TrimSpace(name))
		if !slices.Contains(policies.CoverageVerdicts, verdict) {
			return usageError("--fail-on %q: not a verdict; use %s", name, verdictList())
		}
		failOn[verdict] = true
	}
	if err := opts.readOptions.CheckPatterns(); err != nil {
		return usageError("%v", err)
	}
	if len(paths) > 0 && (opts.cluster.kubeconfig != "" || opts.cluster.context != "") {
		return usageError("--kubeconfig and --context read a cluster; with PATH the report reads files")
	}
	if len(paths) == 0 && (len(opts.readOptions.Exclude) > 0 || opts.readOptions.SkipUnparseable) {
		return usageError("--exclude and --skip-unparseable read files; without PATH the report reads the cluster")
	}
	config, err := loadConfig(opts.configPath)
	if err != nil {
		return inputError(err)
	}
	var input lookup.CoverageInput
	if len(paths) > 0 {
		documents, err := readManifests(command, paths, opts.readOptions)
		if err != nil {
			return inputError(err)
		}
		if input, err = offline.Coverage(documents, config, now, opts.maxAge); err != nil {
			return inputError(err)
		}
	} else if input, err = clusterCoverage(opts, config, now); err != nil {
		return failure(err)
	}
	report := coverageReport{
		Now:            now,
		CoverageReport: policies.DecideCoverage(input.Facts),
		Audit: policies.AuditRecurringJobs(input.Facts.Jobs, policies.RecurringJobEnvironment{
			LonghornNamespace: config.Longhorn.Namespace,
			Settings:          input.Settings,
			Now:               now,
			Window:            config.CompiledWindow(),
			Rules:             config.RecurringJobRules(),
		}),
		Summary: map[policies.CoverageVerdict]int{},
	}
	for _, row := range report.Rows {
		report.Summary[row.Verdict]++
	}
	for _, warning := range input.SettingWarnings {
		fmt.Fprintf(command.ErrOrStderr(), "%s: warning: %s\n", command.CommandPath(), warning)
	}
	stdout := command.OutOrStdout()
	switch opts.output {
	case "json":
		err = report.writeJSON(stdout)
	case "markdown":
		err = report.writeMarkdown(stdout, zone)
	default:
		err = report.writeText(stdout, zone)
	}
	if err != nil {
		return failure(fmt.Errorf("writing the report: %w", err))
	}
	for _, row := range report.Rows {
		if failOn[row.Verdict] {
			return &exitStatus{code: exitFailure}
		}
	}
	return nil
}

// clusterCoverage gathers the report's facts from an informer cache of the cluster, the way serve
// reads it, with the same indexes.
func clusterCoverage(opts coverageOptions, config *policies.Config, now time.Time) (lookup.CoverageInput, error) {
	restConfig, err := opts.cluster.restConfig()
	if err != nil {
		return lookup.CoverageInput{}, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return lookup.CoverageInput{}, err
	}
	if err := longhorn.AddToScheme(scheme); err != nil {
		return lookup.CoverageInput{}, err
	}
	options := lookup.CacheOptions(config.Longhorn.Namespace, metav1.NamespaceDefault)
	options.Scheme = scheme
	informers, err := cache.New(restConfig, options)
	if err != nil {
		return lookup.CoverageInput{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	if err := lookup.AddIndexes(ctx, informers); err != nil {
		return lookup.CoverageInput{}, fmt.Errorf("reading the cluster: %w", err)
	}
	started := make(chan error, 1)
	go func() { started <- informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		select {
		case err := <-started:
			return lookup.CoverageInput{}, fmt.Errorf("reading the cluster: %w", err)
		default:
			return lookup.CoverageInput{}, fmt.Errorf("reading the cluster: not in sync after %s", opts.timeout)
		}
	}
	input, err := lookup.Coverage(ctx, lookup.Cache{Client: informers}, config, now, opts.maxAge)
	if err != nil {
		return input, fmt.Errorf("reading the cluster: %w", err)
	}
	return input, nil
}
