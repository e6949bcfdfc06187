package controllers

import (
	"context"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// The coverage metrics have no per-PVC series: their cardinality is the number of verdicts and of
// RecurringJob fields, whatever the cluster's size.
var (
	coverageVolumes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_coverage_volumes", Help: "Volumes (PVCs, and Longhorn Volumes without one) by coverage verdict.",
	}, []string{"verdict"})
	coverageOldestBackupAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_coverage_oldest_backup_age_seconds", Help: "Age of the oldest last backup among the volumes a backup job selects; 0 when none has one.",
	})
	coverageIdleJobs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_coverage_idle_recurringjobs", Help: "RecurringJobs that select no volume.",
	})
	coverageAuditViolations = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_coverage_audit_violations", Help: "Rule violations of the RecurringJobs that exist, by field (list indexes left out).",
	}, []string{"field"})
	coverageLastReport = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_coverage_last_report_timestamp_seconds", Help: "When the coverage report was last computed.",
	})
)

func init() {
	metrics.Registry.MustRegister(coverageVolumes, coverageOldestBackupAge, coverageIdleJobs, coverageAuditViolations, coverageLastReport)
}

// CoverageReporter computes the coverage report from the cache on the leader, exports it as metrics,
// and records an Event on a PVC when its verdict becomes unprotected or stale, so that `kubectl
// describe pvc` shows it. The first report after start records none: it has nothing to compare with,
// and a restart must not repeat an Event for every PVC of the cluster.
type CoverageReporter struct {
	Reader   lookup.ListReader
	Config   func() *policies.Config
	Clock    clock.WithTicker
	Interval time.Duration
	Recorder recorder.EventRecorder
	Log      logr.Logger

	previous map[string]policies.CoverageVerdict
}

// NeedLeaderElection makes the report run on the leader only: one set of metrics and Events.
func (c *CoverageReporter) NeedLeaderElection() bool { return true }

// Start reports at once, then every Interval, until ctx ends.
func (c *CoverageReporter) Start(ctx context.Context) error {
	ticker := c.Clock.NewTicker(c.Interval)
	defer ticker.Stop()
	for {
		if err := c.Report(ctx); err != nil {
			c.Log.Error(err, "computing the coverage report")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
	}
}

// Report computes the report once and publishes it.
func (c *CoverageReporter) Report(ctx context.Context) error {
	config := c.Config()
	now := c.Clock.Now()
	input, err := lookup.Coverage(ctx, c.Reader, config, now, 0)
	if err != nil {
		return err
	}
	report := policies.DecideCoverage(input.Facts)
	audit := policies.AuditRecurringJobs(input.Facts.Jobs, policies.RecurringJobEnvironment{
		LonghornNamespace: config.Longhorn.Namespace, Settings: input.Settings, Now: now,
		Window: config.CompiledWindow(), Rules: config.RecurringJobRules(),
	})
	counts := map[policies.CoverageVerdict]int{}
	var oldest time.Duration
	current := map[string]policies.CoverageVerdict{}
	for _, row := range report.Rows {
		counts[row.Verdict]++
		if !row.LastBackup.IsZero() && row.Age > oldest && selectsBackupJob(row) {
			oldest = row.Age
		}
		if row.PVC == "" {
			continue
		}
		key := row.Namespace + "/" + row.PVC
		current[key] = row.Verdict
		if c.previous != nil && c.previous[key] != row.Verdict && (row.Verdict == policies.CoverageUnprotected || row.Verdict == policies.CoverageStale) {
			c.recordEvent(ctx, row)
		}
	}
	c.previous = current
	for _, verdict := range policies.CoverageVerdicts {
		coverageVolumes.WithLabelValues(string(verdict)).Set(float64(counts[verdict]))
	}
	coverageOldestBackupAge.Set(oldest.Seconds())
	coverageIdleJobs.Set(float64(len(report.IdleJobs)))
	coverageAuditViolations.Reset()
	for field, count := range audit.ByField {
		name, _, _ := strings.Cut(field, "[")
		coverageAuditViolations.WithLabelValues(name).Add(float64(count))
	}
	coverageLastReport.Set(float64(now.Unix()))
	return nil
}

func selectsBackupJob(row policies.CoverageRow) bool {
	for _, selection := range row.Jobs {
		if selection.Task == longhorn.TaskBackup || selection.Task == longhorn.TaskBackupForceCreate {
			return true
		}
	}
	return false
}

// recordEvent records the verdict on the PVC, with its uid, which `kubectl describe` selects Events by.
func (c *CoverageReporter) recordEvent(ctx context.Context, row policies.CoverageRow) {
	if c.Recorder == nil {
		return
	}
	pvc, err := c.Reader.PVC(ctx, row.Namespace, row.PVC)
	if err != nil || pvc == nil {
		return
	}
	reference := &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
	}
	reason := "BackupUnprotected"
	if row.Verdict == policies.CoverageStale {
		reason = "BackupStale"
	}
	c.Recorder.Eventf(reference, nil, corev1.EventTypeWarning, reason, "Coverage", "%s: %s", row.Verdict, strings.Join(row.Reasons, "; "))
}
