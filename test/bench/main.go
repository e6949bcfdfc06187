// Command bench measures backupguard and writes BENCHMARKS.md with a latency chart (`make bench`):
// the policy decisions as Go benchmarks, with the decisions that read the cluster measured over a cache
// of the full scale; every admission endpoint of `backupguard serve` over TLS on loopback at 1 to 128
// keep-alive connections, against a no-op handler on the same server stack as the ceiling; the latency
// the webhooks add to creates through the real kube-apiserver; serve's memory with the full scale
// cached; and `backupguard validate` over 10,000 documents.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	longhornNamespace = "longhorn-system"
	ownNamespace      = "backupguard-system"
)

// benchConfig is the config serve runs with: both kinds of label rule, and an S3 window, so the
// RecurringJob decision includes the window check.
const benchConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
longhorn:
  namespace: longhorn-system
labels:
  rules:
    - name: daily-for-labelled-namespaces
      match:
        namespaceSelector:
          matchLabels: {backup: daily}
      jobs: [bench-daily]
      groups: [bench-critical]
    - name: databases
      match:
        selector:
          matchLabels: {app: postgres}
      groups: [databases]
window:
  opens: "55 0 * * *"
  duration: 3h5m
`

// options are what one benchmark run measures, and how long.
type options struct {
	ReportPath, ChartPath string
	Size                  scaleSize
	Writers               int
	// Connections are the load levels; Load how long each one warms up and measures.
	Connections []int
	Load        loadPlan
	// PolicyBenchtime and PolicyCount are passed to `go test -bench` ("" is go test's default).
	PolicyBenchtime string
	PolicyCount     int
	// DecisionBenchtime and DecisionCount are for the decisions over the real cache.
	DecisionBenchtime string
	DecisionCount     int
	ClaimsPerJob      int
	// E2EPVCs and E2ERecurringJobs are created with and without the webhooks, in E2ERounds alternating
	// rounds, at each of E2EConcurrencies.
	E2EPVCs, E2ERecurringJobs, E2ERounds int
	E2EConcurrencies                     []int
	// ValidateDocuments are checked by ValidateRuns runs of `backupguard validate`.
	ValidateDocuments, ValidateRuns int
	// CoverageRuns are the coverage reports timed over the warm cache.
	CoverageRuns int
	// Only, when not empty, names the parts to run (see stepKeys); the cluster is populated for any,
	// and no report is written: BENCHMARKS.md only ever holds a whole run.
	Only []string
	// Hold stops after populating and keeps the cluster until ctx ends.
	Hold bool
}

func defaultOptions() options {
	return options{
		ReportPath:        "BENCHMARKS.md",
		ChartPath:         filepath.Join("docs", "benchmarks-latency.svg"),
		Size:              fullScale,
		Writers:           16,
		Connections:       []int{1, 8, 32, 128},
		Load:              loadPlan{Warmup: 500 * time.Millisecond, Measure: 2 * time.Second, Rounds: 3},
		PolicyCount:       5,
		DecisionBenchtime: "3000x",
		DecisionCount:     5,
		ClaimsPerJob:      3,
		E2EPVCs:           2000,
		E2ERecurringJobs:  500,
		E2EConcurrencies:  []int{1, 8},
		E2ERounds:         4,
		ValidateDocuments: 10000,
		ValidateRuns:      5,
		CoverageRuns:      5,
	}
}

func main() {
	testing.Init()
	opts := defaultOptions()
	flag.StringVar(&opts.ReportPath, "report", opts.ReportPath, "where the Markdown report is written")
	flag.StringVar(&opts.ChartPath, "chart", opts.ChartPath, "where the SVG chart is written (linked from the report by a relative path)")
	flag.DurationVar(&opts.Load.Measure, "load-duration", opts.Load.Measure, "how long each run of a load level is measured")
	flag.DurationVar(&opts.Load.Warmup, "load-warmup", opts.Load.Warmup, "how long each load level warms up first")
	flag.IntVar(&opts.Load.Rounds, "load-rounds", opts.Load.Rounds, "how many times each target runs at each load level (the results are merged)")
	flag.BoolVar(&opts.Hold, "hold", false, "populate the cluster, print how to reach it, and wait for Ctrl-C (for profiling by hand)")
	connections := flag.String("connections", "1,8,32,128", "load levels: concurrent keep-alive connections")
	only := flag.String("only", "", "run only these parts, comma-separated ("+strings.Join(stepKeys, ", ")+"), print the targets and write no report")
	flag.Parse()
	var err error
	if opts.Connections, err = parseInts(*connections); err != nil {
		fmt.Fprintln(os.Stderr, "bench: --connections:", err)
		os.Exit(2)
	}
	if opts.Only, err = parseParts(*only); err != nil {
		fmt.Fprintln(os.Stderr, "bench: --only:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	result, err := run(ctx, opts, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	for _, target := range result.Targets() {
		fmt.Fprintf(os.Stderr, "bench: target %s: %s (%s)\n", target.Name, target.Verdict(), target.Measured)
	}
}

func parseInts(text string) ([]int, error) {
	var values []int
	for _, field := range strings.Split(text, ",") {
		value, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || value < 1 {
			return nil, fmt.Errorf("%q is not a positive number", field)
		}
		values = append(values, value)
	}
	return values, nil
}

// stepKeys name the parts -only selects.
var stepKeys = []string{"policies", "serve", "coverage", "decisions", "load", "admission", "validate"}

func parseParts(text string) ([]string, error) {
	if text == "" {
		return nil, nil
	}
	parts := strings.Split(text, ",")
	for _, part := range parts {
		if !slices.Contains(stepKeys, part) {
			return nil, fmt.Errorf("%q is not a part; the parts are %s", part, strings.Join(stepKeys, ", "))
		}
	}
	return parts, nil
}

// runs says whether the run includes the part key.
func (o options) runs(key string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, key) }

// run measures everything (or the parts opts.Only names) and writes the report and the chart.
func run(ctx context.Context, opts options, progress io.Writer) (*results, error) {
	// The benchmark's own clients and caches have nothing to say; serve logs to its own file.
	ctrllog.SetLogger(logr.Discard())
	started := time.Now()
	result := &results{Options: opts, Machine: readMachine(), Started: started.UTC()}
	var err error
	if opts.runs("policies") {
		fmt.Fprintln(progress, "bench: policy benchmarks (go test -bench ./policies/... ./offline/...)")
		if result.Policies, err = runPolicyBenchmarks(ctx, opts.PolicyBenchtime, opts.PolicyCount); err != nil {
			return nil, err
		}
	}
	bench, err := startBench(ctx, opts, progress)
	if err != nil {
		return nil, err
	}
	defer bench.Stop()
	result.Machine.KubeAPIServer = bench.apiServerVersion
	// serve without the coverage report runs before serve as shipped, which the later steps use.
	steps := []struct {
		key, name string
		run       func(context.Context, *results) error
	}{
		{"", "populating the cluster", bench.populate},
		{"coverage", "serve's memory without the coverage report", bench.measureServeWithoutCoverage},
		{"serve", "serve's memory and sync at scale", bench.measureServe},
		{"decisions", "decisions over a cache of the scale", bench.measureDecisions},
		{"coverage", "the coverage report over a cache of the scale", bench.measureCoverageReport},
		{"load", "load over TLS", bench.measureLoad},
		{"admission", "added latency through the kube-apiserver", bench.measureAdmissionLatency},
		{"validate", "backupguard validate", bench.measureValidate},
	}
	if opts.Hold {
		if err := bench.populate(ctx, result); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "bench: holding; KUBECONFIG=%s, config %s, certificates in %s, serve's log %s; Ctrl-C ends it\n",
			bench.cluster.Kubeconfig, bench.configPath, bench.cluster.Env.WebhookInstallOptions.LocalServingCertDir, bench.guard.LogPath)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, step := range steps {
		if step.key != "" && !opts.runs(step.key) {
			continue
		}
		stepStart := time.Now()
		fmt.Fprintf(progress, "bench: %s\n", step.name)
		if err := step.run(ctx, result); err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		fmt.Fprintf(progress, "bench: %s took %s\n", step.name, time.Since(stepStart).Round(time.Second))
	}
	result.Took = time.Since(started)
	if len(opts.Only) > 0 {
		fmt.Fprintf(progress, "bench: ran %s in %s; no report written\n", strings.Join(opts.Only, ", "), result.Took.Round(time.Second))
		return result, nil
	}
	if err := writeOutputs(result); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "bench: wrote %s and %s in %s\n", opts.ReportPath, opts.ChartPath, result.Took.Round(time.Second))
	return result, nil
}

// writeOutputs writes the chart, then the report that links it.
func writeOutputs(result *results) error {
	for _, path := range []string{result.Options.ReportPath, result.Options.ChartPath} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
	}
	chart, err := os.Create(result.Options.ChartPath)
	if err != nil {
		return err
	}
	if err := writeLatencyChart(chart, result.Load); err != nil {
		chart.Close()
		return fmt.Errorf("writing %s: %w", result.Options.ChartPath, err)
	}
	if err := chart.Close(); err != nil {
		return err
	}
	link, err := filepath.Rel(filepath.Dir(result.Options.ReportPath), result.Options.ChartPath)
	if err != nil {
		return err
	}
	report, err := os.Create(result.Options.ReportPath)
	if err != nil {
		return err
	}
	if err := writeReport(report, result, filepath.ToSlash(link)); err != nil {
		report.Close()
		return fmt.Errorf("writing %s: %w", result.Options.ReportPath, err)
	}
	return report.Close()
}
