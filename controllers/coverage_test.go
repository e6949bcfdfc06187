package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
)

func TestCoverageReporter(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "data", UID: "3f0c6a52-0000-4000-8000-000000000001"},
		Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: new("longhorn"), VolumeName: "pv-data"},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-data"},
		Spec: corev1.PersistentVolumeSpec{
			ClaimRef:               &corev1.ObjectReference{Namespace: "shop", Name: "data"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: "vol-data"}},
		},
	}
	volume := &longhorn.Volume{
		ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "vol-data", Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled"}},
		Status:     longhorn.VolumeStatus{State: "attached", KubernetesStatus: longhorn.KubernetesStatus{Namespace: "shop", PVCName: "data", PVName: "pv-data"}},
	}
	backup := &longhorn.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "b1"},
		Status:     longhorn.BackupStatus{State: "Completed", VolumeName: "vol-data", BackupCreatedAt: "2026-11-21T02:00:00Z"},
	}
	kube := lookuptest.FakeClientBuilder(t).WithObjects(
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver},
		pvc, pv, volume, backup,
		&longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "daily"},
			Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7}},
		&longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "berlin"},
			Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "CRON_TZ=Europe/Berlin 0 3 * * *", Retain: 7, Groups: []string{"nobody"}}},
	).Build()
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	recorder := events.NewFakeRecorder(10)
	reporter := &CoverageReporter{Reader: lookup.Cache{Client: kube}, Config: func() *policies.Config { return config },
		Clock: clocktesting.NewFakeClock(now), Interval: time.Minute, Recorder: recorder, Log: testr.New(t)}

	if err := reporter.Report(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"protected": 1, "unprotected": 0, "stale": 0, "failing": 0, "skipped": 0, "dangling": 0}
	for verdict, count := range want {
		if got := testutil.ToFloat64(coverageVolumes.WithLabelValues(verdict)); got != count {
			t.Errorf("volumes %s: got %v, want %v", verdict, got, count)
		}
	}
	if got := testutil.ToFloat64(coverageOldestBackupAge); got != (10 * time.Hour).Seconds() {
		t.Errorf("oldest backup age: got %v, want 10h", got)
	}
	if got := testutil.ToFloat64(coverageIdleJobs); got != 1 {
		t.Errorf("idle jobs: got %v, want 1 (berlin)", got)
	}
	if got := testutil.ToFloat64(coverageAuditViolations.WithLabelValues("spec.cron")); got != 1 {
		t.Errorf("audit violations of spec.cron: got %v, want 1", got)
	}
	if len(recorder.Events) != 0 {
		t.Errorf("the first report recorded %q; it has nothing to compare with", <-recorder.Events)
	}

	// Someone takes the job's label off the Volume, and Longhorn puts it in the default group, which has
	// no job: the PVC becomes unprotected, and the Event is recorded once.
	volume.Labels = map[string]string{"recurring-job-group.longhorn.io/default": "enabled"}
	if err := kube.Update(ctx, volume); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := reporter.Report(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(recorder.Events) > 0 {
		got = append(got, <-recorder.Events)
	}
	wantEvents := []string{"Warning BackupUnprotected unprotected: no backup job selects it"}
	if diff := cmp.Diff(wantEvents, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(coverageVolumes.WithLabelValues("protected")); got != 0 {
		t.Errorf("protected volumes: got %v, want 0", got)
	}
}

// TestCoverageReporterPerVolumeMetrics: with the flag, each volume has its verdict and last-backup
// series; a volume that goes and a verdict that changes leave no series behind.
func TestCoverageReporterPerVolumeMetrics(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	// Dynamically provisioned: the Volume is named after the PVC's uid.
	claim := func(name, uid string, labels map[string]string) (*corev1.PersistentVolumeClaim, *longhorn.Volume) {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(uid)},
			Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: new("longhorn")},
		}
		volume := &longhorn.Volume{
			ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "pvc-" + uid, Labels: labels},
			Status:     longhorn.VolumeStatus{State: "attached"},
		}
		return pvc, volume
	}
	data, dataVolume := claim("data", "3f0c6a52-0000-4000-8000-00000000000d", map[string]string{"recurring-job.longhorn.io/daily": "enabled"})
	logs, logsVolume := claim("logs", "3f0c6a52-0000-4000-8000-00000000000f", nil)
	kube := lookuptest.FakeClientBuilder(t).WithObjects(
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver},
		data, dataVolume, logs, logsVolume,
		&longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "b1"},
			Status: longhorn.BackupStatus{State: "Completed", VolumeName: dataVolume.Name, BackupCreatedAt: "2026-11-21T02:00:00Z"}},
		&longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "daily"},
			Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7}},
	).Build()
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktesting.NewFakeClock(now)
	reporter := &CoverageReporter{Reader: lookup.Cache{Client: kube}, Config: func() *policies.Config { return config },
		Clock: clock, Interval: time.Minute, Log: testr.New(t)}
	perVolume := prometheus.NewPedanticRegistry()
	perVolume.MustRegister(coverageVolumeVerdict, coverageVolumeLastBackup)
	const help = `# HELP backupguard_coverage_volume_last_backup_timestamp_seconds When each volume's last completed backup was made; no series for a volume without one.
# TYPE backupguard_coverage_volume_last_backup_timestamp_seconds gauge
# HELP backupguard_coverage_volume_verdict 1 for each volume's coverage verdict.
# TYPE backupguard_coverage_volume_verdict gauge
`
	report := func(want string) {
		t.Helper()
		if err := reporter.Report(ctx); err != nil {
			t.Fatal(err)
		}
		if err := testutil.GatherAndCompare(perVolume, strings.NewReader(help+want)); err != nil {
			t.Error(err)
		}
	}

	// Off (the default): no series.
	report("")

	reporter.PerVolumeMetrics = true
	report(`backupguard_coverage_volume_last_backup_timestamp_seconds{namespace="shop",pvc="data",volume="pvc-3f0c6a52-0000-4000-8000-00000000000d"} 1.7952264e+09
backupguard_coverage_volume_verdict{namespace="shop",pvc="data",verdict="protected",volume="pvc-3f0c6a52-0000-4000-8000-00000000000d"} 1
backupguard_coverage_volume_verdict{namespace="shop",pvc="logs",verdict="unprotected",volume="pvc-3f0c6a52-0000-4000-8000-00000000000f"} 1
`)

	// Three days on, with no new backup, data is stale; logs and its Volume are deleted.
	clock.SetTime(now.Add(72 * time.Hour))
	for _, object := range []client.Object{logs, logsVolume} {
		if err := kube.Delete(ctx, object); err != nil {
			t.Fatal(err)
		}
	}
	report(`backupguard_coverage_volume_last_backup_timestamp_seconds{namespace="shop",pvc="data",volume="pvc-3f0c6a52-0000-4000-8000-00000000000d"} 1.7952264e+09
backupguard_coverage_volume_verdict{namespace="shop",pvc="data",verdict="stale",volume="pvc-3f0c6a52-0000-4000-8000-00000000000d"} 1
`)
}
