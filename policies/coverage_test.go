package policies

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/longhorn"
)

func TestDecideCoverage(t *testing.T) {
	daily := makeRecurringJob("daily").Cron("0 2 * * *").Groups("databases").Obj()
	nightlyDefault := makeRecurringJob("nightly-default").Cron("0 1 * * *").Groups("default").Obj()
	snapshots := makeRecurringJob("snapshots").Task(longhorn.TaskSnapshot).Cron("0 * * * *").Obj()
	idle := makeRecurringJob("idle").Cron("0 3 * * *").Groups("nobody").Obj()
	outside := makeRecurringJob("midday").Cron("0 12 * * *").Obj()
	window := compileWindowConfig(t, nightlyWindow) // 00:55 to 04:00 UTC
	inside, notInside := true, false
	now := testNow // 2026-11-21 12:00 UTC
	day := 24 * time.Hour
	facts := CoverageFacts{
		Now:    now,
		Jobs:   []*longhorn.RecurringJob{daily, nightlyDefault, snapshots, idle, outside},
		Window: window,
		Volumes: []CoverageVolume{
			{Namespace: "shop", PVC: "by-label", Volume: "pvc-1", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, LastBackup: now.Add(-10 * time.Hour)},
			{Namespace: "shop", PVC: "by-group", Volume: "pvc-2", Labels: map[string]string{"recurring-job-group.longhorn.io/databases": "enabled"}, LastBackup: now.Add(-day)},
			{Namespace: "shop", PVC: "default-group", Volume: "pvc-3"},
			{Namespace: "shop", PVC: "snapshots-only", Volume: "pvc-4", Labels: map[string]string{"recurring-job.longhorn.io/snapshots": "enabled"}},
			{Namespace: "shop", PVC: "typo", Volume: "pvc-5", Labels: map[string]string{"recurring-job.longhorn.io/daly": "enabled"}},
			{Namespace: "shop", PVC: "yes", Volume: "pvc-6", Labels: map[string]string{"recurring-job.longhorn.io/daily": "yes"}},
			{Namespace: "shop", PVC: "detached", Volume: "pvc-7", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, Detached: true},
			{Namespace: "shop", PVC: "old", Volume: "pvc-8", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, LastBackup: now.Add(-3 * day)},
			{Namespace: "shop", PVC: "never", Volume: "pvc-9", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, Created: now.Add(-5 * day)},
			{Namespace: "shop", PVC: "broken", Volume: "pvc-10", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, LastBackup: now.Add(-time.Hour), NewestBackupState: "Error", NewestBackupError: "cannot reach the store"},
			{Namespace: "shop", PVC: "midday", Volume: "pvc-11", Labels: map[string]string{"recurring-job.longhorn.io/midday": "enabled"}},
			{Volume: "pvc-faulted", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, Faulted: true},
			{Volume: "pvc-restoring", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, Restoring: true},
			{Volume: "pvc-default-no-jobs", Labels: map[string]string{"recurring-job-group.longhorn.io/default": "enabled"}},
			{Volume: "pvc-faulted-old", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}, Faulted: true, LastBackup: now.Add(-3 * day)},
			{Volume: "pvc-orphan", Labels: map[string]string{"recurring-job-group.longhorn.io/nobody-here": "enabled"}},
		},
	}
	dailySelection := JobSelection{Job: "daily", Task: longhorn.TaskBackup, Via: "job label"}
	tomorrowAt2 := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	want := CoverageReport{
		Rows: []CoverageRow{
			{Volume: "pvc-default-no-jobs", Jobs: []JobSelection{{Job: "nightly-default", Task: longhorn.TaskBackup, Via: "group default"}},
				NextBackup: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), NextBackupInWindow: &inside, Verdict: CoverageProtected, Reasons: []string{}},
			{Volume: "pvc-faulted", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				Verdict: CoverageSkipped, Reasons: []string{"faulted: Longhorn runs no recurring job for a faulted volume"}},
			{Volume: "pvc-faulted-old", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside, LastBackup: now.Add(-3 * day), Age: 3 * day,
				Verdict: CoverageStale, Reasons: []string{"the last backup is 72h0m0s old, more than 48h0m0s", "faulted: Longhorn runs no recurring job for a faulted volume"}},
			{Volume: "pvc-orphan", Jobs: []JobSelection{}, Verdict: CoverageDangling,
				Reasons: []string{"recurring-job-group.longhorn.io/nobody-here: no RecurringJob is in group nobody-here"}},
			{Volume: "pvc-restoring", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				Verdict: CoverageSkipped, Reasons: []string{"restoring from a backup: Longhorn runs no recurring job for it until the restore ends"}},
			{Namespace: "shop", PVC: "broken", Volume: "pvc-10", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				LastBackup: now.Add(-time.Hour), Age: time.Hour, Verdict: CoverageFailing, Reasons: []string{"the newest backup is in Error: cannot reach the store"}},
			{Namespace: "shop", PVC: "by-group", Volume: "pvc-2", Jobs: []JobSelection{{Job: "daily", Task: longhorn.TaskBackup, Via: "group databases"}},
				NextBackup: tomorrowAt2, NextBackupInWindow: &inside, LastBackup: now.Add(-day), Age: day, Verdict: CoverageProtected, Reasons: []string{}},
			{Namespace: "shop", PVC: "by-label", Volume: "pvc-1", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				LastBackup: now.Add(-10 * time.Hour), Age: 10 * time.Hour, Verdict: CoverageProtected, Reasons: []string{}},
			{Namespace: "shop", PVC: "default-group", Volume: "pvc-3", Jobs: []JobSelection{{Job: "nightly-default", Task: longhorn.TaskBackup, Via: "default group (no recurring labels of its own)"}},
				NextBackup: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), NextBackupInWindow: &inside, Verdict: CoverageProtected, Reasons: []string{}},
			{Namespace: "shop", PVC: "detached", Volume: "pvc-7", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				Verdict: CoverageSkipped, Reasons: []string{"detached, and the Longhorn setting allow-recurring-job-while-volume-detached is false"}},
			{Namespace: "shop", PVC: "midday", Volume: "pvc-11", Jobs: []JobSelection{{Job: "midday", Task: longhorn.TaskBackup, Via: "job label"}},
				NextBackup: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), NextBackupInWindow: &notInside, Verdict: CoverageProtected,
				Reasons: []string{"the next backup runs outside the S3 window, when the backup target is unreachable"}},
			{Namespace: "shop", PVC: "never", Volume: "pvc-9", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				Verdict: CoverageStale, Reasons: []string{"no backup yet, 120h0m0s after the volume was created"}},
			{Namespace: "shop", PVC: "old", Volume: "pvc-8", Jobs: []JobSelection{dailySelection}, NextBackup: tomorrowAt2, NextBackupInWindow: &inside,
				LastBackup: now.Add(-3 * day), Age: 3 * day, Verdict: CoverageStale, Reasons: []string{"the last backup is 72h0m0s old, more than 48h0m0s"}},
			{Namespace: "shop", PVC: "snapshots-only", Volume: "pvc-4", Jobs: []JobSelection{{Job: "snapshots", Task: longhorn.TaskSnapshot, Via: "job label"}},
				Verdict: CoverageUnprotected, Reasons: []string{"no backup job selects it"}},
			{Namespace: "shop", PVC: "typo", Volume: "pvc-5", Jobs: []JobSelection{}, Verdict: CoverageDangling,
				Reasons: []string{"recurring-job.longhorn.io/daly: no RecurringJob is named daly"}},
			{Namespace: "shop", PVC: "yes", Volume: "pvc-6", Jobs: []JobSelection{}, Verdict: CoverageDangling,
				Reasons: []string{"recurring-job.longhorn.io/daily=yes: Longhorn only counts the value enabled"}},
		},
		IdleJobs: []string{"idle"},
	}
	got := DecideCoverage(facts)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}

	t.Run("a maximum age overrides twice the interval", func(t *testing.T) {
		facts := facts
		facts.MaxAge = 5 * time.Hour
		for _, row := range DecideCoverage(facts).Rows {
			if row.PVC == "by-label" && row.Verdict != CoverageStale {
				t.Errorf("by-label: verdict %s, want stale with a 5h maximum age", row.Verdict)
			}
		}
	})
	t.Run("the default group without jobs leaves a volume unprotected, not dangling", func(t *testing.T) {
		facts := CoverageFacts{Now: now, Jobs: []*longhorn.RecurringJob{daily}, Volumes: []CoverageVolume{
			{Volume: "pvc-default", Labels: map[string]string{"recurring-job-group.longhorn.io/default": "enabled"}},
		}}
		want := []CoverageRow{{Volume: "pvc-default", Jobs: []JobSelection{}, Verdict: CoverageUnprotected, Reasons: []string{"no backup job selects it"}}}
		if diff := cmp.Diff(want, DecideCoverage(facts).Rows); diff != "" {
			t.Errorf("rows (-want +got):\n%s", diff)
		}
	})
	t.Run("detached volumes are backed up when the Setting allows it", func(t *testing.T) {
		facts := facts
		facts.AllowDetached = true
		for _, row := range DecideCoverage(facts).Rows {
			if row.PVC == "detached" && row.Verdict != CoverageProtected {
				t.Errorf("detached: verdict %s, want protected", row.Verdict)
			}
		}
	})
}
