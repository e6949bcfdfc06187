package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// coverageMeasurement is the coverage report computed over a cache of the whole scale.
type coverageMeasurement struct {
	// Rows are the report's rows (a PVC each, and each Volume without one), by verdict in Verdicts.
	Rows     int
	Verdicts map[policies.CoverageVerdict]int
	// Runs are the times of the leader's whole report, one after another on the warm cache.
	Runs        []time.Duration
	Median, Max time.Duration
	// AllocatedPerRun is what one report allocates (the median of the runs), the garbage the leader's
	// collector then has to absorb.
	AllocatedPerRun int64
}

// measureCoverageReport syncs a cache configured as serve's and times what the leader does every
// --coverage-interval, CoverageReporter.Report: gather the facts through lookup, decide every row,
// audit the RecurringJobs and set the metrics. The cache is warm from the first run on (synced before).
func (b *benchCluster) measureCoverageReport(ctx context.Context, result *results) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	informers, _, err := syncedCache(ctx, b.config)
	if err != nil {
		return err
	}
	config, err := policies.ParseConfig([]byte(benchConfig), "config.yaml")
	if err != nil {
		return err
	}
	reader := lookup.Cache{Client: informers}
	reporter := &controllers.CoverageReporter{Reader: reader, Config: func() *policies.Config { return config },
		Clock: clock.RealClock{}, Interval: time.Hour, Log: logr.Discard()}
	measured := coverageMeasurement{Verdicts: map[policies.CoverageVerdict]int{}}
	var allocated []float64
	var memory runtime.MemStats
	for range max(b.opts.CoverageRuns, 1) {
		runtime.ReadMemStats(&memory)
		before := memory.TotalAlloc
		start := time.Now()
		if err := reporter.Report(ctx); err != nil {
			return err
		}
		measured.Runs = append(measured.Runs, time.Since(start))
		runtime.ReadMemStats(&memory)
		allocated = append(allocated, float64(memory.TotalAlloc-before))
	}
	median, _, _ := medianOf(allocated)
	measured.AllocatedPerRun = int64(median)
	sorted := slices.Clone(measured.Runs)
	slices.Sort(sorted)
	measured.Median, measured.Max = sorted[len(sorted)/2], sorted[len(sorted)-1]
	// The rows, counted once more outside the timed runs.
	input, err := lookup.Coverage(ctx, reader, config, time.Now(), 0)
	if err != nil {
		return err
	}
	report := policies.DecideCoverage(input.Facts)
	measured.Rows = len(report.Rows)
	for _, row := range report.Rows {
		measured.Verdicts[row.Verdict]++
	}
	fmt.Fprintf(b.progress, "bench: coverage report of %d rows: median %s, max %s of %d runs, %s allocated a run\n", measured.Rows,
		formatDuration(measured.Median), formatDuration(measured.Max), len(measured.Runs), mebibytes(measured.AllocatedPerRun))
	result.Coverage = measured
	return nil
}
