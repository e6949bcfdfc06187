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

// The per-volume series, exported only with CoverageReporter.PerVolumeMetrics (for small clusters): a
// series per row of the report. namespace and pvc are empty for a Volume bound to no PVC.
var (
	coverageVolumeVerdict = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_coverage_volume_verdict", Help: "1 for each volume's coverage verdict.",
	}, []string{"namespace", "pvc", "volume", "verdict"})
	coverageVolumeLastBackup = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_coverage_volume_last_backup_timestamp_seconds", Help: "When each volume's last completed backup was made; no series for a volume without one.",
	}, []string{"namespace", "pvc", "volume"})
)

func init() {
	metrics.Registry.MustRegister(coverageVolumes, coverageOldestBackupAge, coverageIdleJobs, coverageAuditViolations, coverageLastReport,
		coverageVolumeVerdict, coverageVolumeLastBackup)
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
	// PerVolumeMetrics also exports a verdict and a last-backup series per volume: a series per PVC, so
	// for small clusters only.
	PerVolumeMetrics bool

	previous map[string]policies.CoverageVerdict
	// exported are the per-volume series of the last report, so the next one removes those that no
	// longer hold (a volume gone, a verdict changed) and no series goes stale.
	exported volumeSeries
}

// volumeSeries are the label values of the per-volume series: namespace, pvc, volume (and verdict).
type volumeSeries struct {
	verdicts    map[[4]string]bool
	lastBackups map[[3]string]bool
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
	if c.PerVolumeMetrics {
		c.exportVolumes(report.Rows)
	}
	coverageLastReport.Set(float64(now.Unix()))
	return nil
}

// exportVolumes sets a series per row, then deletes the series of the previous report that this one
// did not set: deleting after setting, not resetting first, so no scrape sees a volume missing.
func (c *CoverageReporter) exportVolumes(rows []policies.CoverageRow) {
	current := volumeSeries{verdicts: map[[4]string]bool{}, lastBackups: map[[3]string]bool{}}
	for _, row := range rows {
		verdict := [4]string{row.Namespace, row.PVC, row.Volume, string(row.Verdict)}
		coverageVolumeVerdict.WithLabelValues(verdict[:]...).Set(1)
		current.verdicts[verdict] = true
		if !row.LastBackup.IsZero() {
			volume := [3]string{row.Namespace, row.PVC, row.Volume}
			coverageVolumeLastBackup.WithLabelValues(volume[:]...).Set(float64(row.LastBackup.Unix()))
			current.lastBackups[volume] = true
		}
	}
	for labels := range c.exported.verdicts {
		if !current.verdicts[labels] {
			coverageVolumeVerdict.DeleteLabelValues(labels[:]...)
		}
	}
	for labels := range c.exported.lastBackups {
		if !current.lastBackups[labels] {
			coverageVolumeLastBackup.DeleteLabelValues(labels[:]...)
		}
	}
	c.exported = current
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
