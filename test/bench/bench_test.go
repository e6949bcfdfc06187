package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/policies"
)

// TestBenchRunsEndToEnd runs the whole of `make bench` at a small scale and short durations against the
// real control plane, so the benchmark cannot rot between runs: every step must finish, every answer of
// the load must be right, the sync must write nothing, and the report and chart must hold every result.
func TestBenchRunsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	opts := options{
		ReportPath:        filepath.Join(dir, "BENCHMARKS.md"),
		ChartPath:         filepath.Join(dir, "docs", "latency.svg"),
		Size:              scaleSize{Namespaces: 4, PVCsPerNamespace: 3, PodsPerPVC: 2, Nodes: 3, BackupsPerVolume: 2},
		Writers:           4,
		Connections:       []int{1, 4},
		Load:              loadPlan{Warmup: 50 * time.Millisecond, Measure: 100 * time.Millisecond, Rounds: 2},
		PolicyBenchtime:   "1x",
		PolicyCount:       1,
		DecisionBenchtime: "10x",
		DecisionCount:     2,
		ClaimsPerJob:      3,
		E2EPVCs:           20,
		E2ERecurringJobs:  8,
		E2EConcurrencies:  []int{1, 2},
		E2ERounds:         2,
		ValidateDocuments: 400,
		ValidateRuns:      1,
		CoverageRuns:      2,
	}
	var progress strings.Builder
	result, err := run(context.Background(), opts, &progress)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}

	var policyNames, decisions []string
	for _, b := range result.Policies {
		policyNames = append(policyNames, b.Package+"."+b.Name)
	}
	for _, b := range result.Decisions {
		decisions = append(decisions, b.Name)
	}
	slices.Sort(policyNames)
	wantPolicies := []string{
		"github.com/backupguard/backupguard/offline.Check10000",
		"github.com/backupguard/backupguard/policies.DecidePVCLabels",
		"github.com/backupguard/backupguard/policies.ValidateRecurringJob",
		"github.com/backupguard/backupguard/policies.ValidateScheduleInWindowCold",
		"github.com/backupguard/backupguard/policies.ValidateScheduleInWindowRepeated",
	}
	if diff := cmp.Diff(wantPolicies, policyNames); diff != "" {
		t.Errorf("policy benchmarks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"RecurringJobDecision", "PVCLabelDecision", "VolumeLabelDecision", "JobPlacement3PVCs"}, decisions); diff != "" {
		t.Errorf("decision benchmarks (-want +got):\n%s", diff)
	}
	for _, b := range append(result.Policies, result.Decisions...) {
		if b.NsPerOp <= 0 || b.Runs == 0 {
			t.Errorf("benchmark %s: %v ns/op over %d runs", b.Name, b.NsPerOp, b.Runs)
		}
	}

	type level struct {
		Endpoint    string
		Connections int
	}
	var levels []level
	for _, load := range result.Load {
		levels = append(levels, level{load.Endpoint, load.Connections})
		if load.Requests == 0 || load.Errors != 0 || load.ServerCPU <= 0 || load.Latency.P50 <= 0 || load.Latency.P50 > load.Latency.P99 || load.Latency.P99 > load.Latency.P999 {
			t.Errorf("load %s at %d: %+v", load.Endpoint, load.Connections, load)
		}
	}
	var wantLevels []level
	for _, connections := range opts.Connections {
		for _, endpoint := range []string{noopEndpoint, recurringJobEndpoint, pvcEndpoint, volumeEndpoint, jobEndpoint} {
			wantLevels = append(wantLevels, level{endpoint, connections})
		}
	}
	if diff := cmp.Diff(wantLevels, levels); diff != "" {
		t.Errorf("load levels (-want +got):\n%s", diff)
	}

	var kinds []string
	for _, a := range result.Admission {
		kinds = append(kinds, fmt.Sprint(a.Kind, " ", a.Concurrency))
		want := map[string]int{"PersistentVolumeClaim": opts.E2EPVCs, "RecurringJob": opts.E2ERecurringJobs}[a.Kind]
		if a.Requests != want || a.With.P50 <= 0 || a.Without.P50 <= 0 {
			t.Errorf("admission latency of %s: %+v, want %d creates each way", a.Kind, a, want)
		}
	}
	if diff := cmp.Diff([]string{"PersistentVolumeClaim 1", "RecurringJob 1", "PersistentVolumeClaim 2", "RecurringJob 2"}, kinds); diff != "" {
		t.Errorf("admission kinds (-want +got):\n%s", diff)
	}
	var called []string
	for _, calls := range result.WebhookCalls {
		called = append(called, fmt.Sprint(calls.Name, " ", calls.Concurrency))
		if calls.Calls < float64(map[string]int{"pvcs.backupguard.io": opts.E2EPVCs, "recurringjobs.backupguard.io": opts.E2ERecurringJobs}[calls.Name]) {
			t.Errorf("the API server counted %v calls to %s during the creates with the webhooks", calls.Calls, calls.Name)
		}
	}
	wantCalled := []string{"pvcs.backupguard.io 1", "recurringjobs.backupguard.io 1", "pvcs.backupguard.io 2", "recurringjobs.backupguard.io 2"}
	if diff := cmp.Diff(wantCalled, called); diff != "" {
		t.Errorf("webhook calls the API server counted (-want +got):\n%s", diff)
	}

	if result.Serve.SyncWrites != 0 || result.Serve.RSSAtReady <= 0 || result.Serve.HeapLiveAtReady <= 0 || result.Serve.HeapLiveAfterSync <= 0 || result.Serve.PeakRSS < result.Serve.RSSAfterSync || result.Serve.SyncCheckedAfter < result.Serve.ReadyAfter {
		t.Errorf("serve at scale: %+v", result.Serve)
	}
	for name, serve := range map[string]serveMeasurement{"as shipped": result.Serve, "without the coverage report": result.ServeWithoutCoverage} {
		if serve.SyncWrites != 0 || serve.RSSAtReady <= 0 || serve.HeapLiveAfterSync <= 0 || serve.PeakRSS < serve.RSSAfterSync || serve.SyncCheckedAfter < serve.ReadyAfter {
			t.Errorf("serve %s: %+v", name, serve)
		}
	}
	if result.Serve.CoverageReportedAfter <= 0 || result.ServeWithoutCoverage.CoverageReportedAfter != 0 {
		t.Errorf("the first coverage report ran after %s as shipped and %s with --coverage-interval=0; want a time, then none",
			result.Serve.CoverageReportedAfter, result.ServeWithoutCoverage.CoverageReportedAfter)
	}
	// Of the 12 PVCs (n = 0..11, three to a namespace): the rules give the even namespaces' the backup
	// job and every third (n%3 == 0) a group no RecurringJob provides; the 8th's backups stopped four days
	// ago and the 12th's newest backup failed (scaleBackups).
	wantVerdicts := map[policies.CoverageVerdict]int{"protected": 3, "dangling": 4, "unprotected": 3, "stale": 1, "failing": 1}
	if diff := cmp.Diff(wantVerdicts, result.Coverage.Verdicts); diff != "" || result.Coverage.Rows != 12 {
		t.Errorf("coverage report of %d rows, verdicts (-want +got):\n%s", result.Coverage.Rows, diff)
	}
	if len(result.Coverage.Runs) != 2 || result.Coverage.Median <= 0 || result.Coverage.Max < result.Coverage.Median || result.Coverage.AllocatedPerRun <= 0 {
		t.Errorf("coverage report times: %+v", result.Coverage)
	}
	var targets []string
	for _, target := range result.Targets() {
		targets = append(targets, target.Name)
	}
	wantTargets := []string{
		"PersistentVolumeClaim creates through the kube-apiserver, 1 at a time", "RecurringJob creates through the kube-apiserver, 1 at a time",
		"PersistentVolumeClaim creates through the kube-apiserver, 2 at a time", "RecurringJob creates through the kube-apiserver, 2 at a time",
		"serve's memory at scale", "coverage report of 12 rows from a warm cache", "the leader's memory with the coverage report and its metrics",
		"backupguard validate of 400 documents",
	}
	if diff := cmp.Diff(wantTargets, targets); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if result.Validate.Documents != 400 || len(result.Validate.Runs) != 1 || result.Validate.Median <= 0 {
		t.Errorf("validate: %+v", result.Validate)
	}

	report, err := os.ReadFile(opts.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	var headings []string
	loadRows := 0
	var images []string
	for _, line := range strings.Split(string(report), "\n") {
		if heading, found := strings.CutPrefix(line, "## "); found {
			headings = append(headings, heading)
		}
		if strings.HasPrefix(line, "![") {
			images = append(images, line)
		}
		for _, endpoint := range []string{noopEndpoint, recurringJobEndpoint, pvcEndpoint, volumeEndpoint, jobEndpoint} {
			if strings.HasPrefix(line, "| "+endpoint+" | ") {
				loadRows++
			}
		}
	}
	wantHeadings := []string{"Targets", "Admission over TLS, on loopback", "Added latency through the kube-apiserver", "Memory at scale", "The coverage report", "Decisions (Go benchmarks)", "backupguard validate"}
	if diff := cmp.Diff(wantHeadings, headings); diff != "" {
		t.Errorf("report sections (-want +got):\n%s", diff)
	}
	if loadRows != len(result.Load) {
		t.Errorf("the report has %d load rows, want %d", loadRows, len(result.Load))
	}
	if diff := cmp.Diff([]string{"![p99 latency and throughput against concurrent connections](docs/latency.svg)"}, images); diff != "" {
		t.Errorf("images in the report (-want +got):\n%s", diff)
	}
	chart, err := os.ReadFile(opts.ChartPath)
	if err != nil {
		t.Fatal(err)
	}
	for panel, series := range parseChart(t, chart) {
		if len(series) != 5 {
			t.Errorf("chart panel %s has %d series, want 5", panel, len(series))
		}
	}
}

func TestParseParts(t *testing.T) {
	for _, tc := range []struct {
		text, wantErr string
		want          []string
	}{
		{text: ""},
		{text: "serve,coverage", want: []string{"serve", "coverage"}},
		{text: "serve,covrage", wantErr: `"covrage" is not a part; the parts are policies, serve, coverage, decisions, load, admission, validate`},
	} {
		got, err := parseParts(tc.text)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || gotErr != tc.wantErr {
			t.Errorf("parseParts(%q): error %q, want %q; parts (-want +got):\n%s", tc.text, gotErr, tc.wantErr, diff)
		}
	}
}
