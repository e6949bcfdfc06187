package lookup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
)

// BenchmarkCoverage10000 gathers and decides the coverage report of 10,000 dynamically provisioned
// PVCs with their PVs, Volumes and Backups, through controller-runtime's fake client: it copies every
// object it returns, which the cache (without deep copies, as serve and the CLI configure it) does
// not, so this is an upper bound of the cost from a warm cache.
func BenchmarkCoverage10000(b *testing.B) {
	const count = 10000
	objects := []client.Object{
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver},
		&longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "daily"},
			Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7, Groups: []string{"default"}}},
	}
	for i := range count {
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		namespace, name, volume := fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("data-%d", i), "pvc-"+uid
		objects = append(objects,
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID(uid)},
				Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: new("longhorn"), VolumeName: volume}},
			&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: volume}, Spec: corev1.PersistentVolumeSpec{
				ClaimRef:               &corev1.ObjectReference{Namespace: namespace, Name: name, UID: types.UID(uid)},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: volume}},
			}},
			&longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: volume, Labels: map[string]string{"recurring-job-group.longhorn.io/default": "enabled"}},
				Status: longhorn.VolumeStatus{State: "attached"}},
			&longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "backup-" + name + "-" + namespace},
				Status: longhorn.BackupStatus{State: "Completed", VolumeName: volume, BackupCreatedAt: "2026-11-21T02:00:00Z"}},
		)
	}
	reader := lookup.Cache{Client: lookuptest.FakeClientBuilder(b).WithObjects(objects...).Build()}
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"), "config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for b.Loop() {
		input, err := lookup.Coverage(context.Background(), reader, config, now, 0)
		if err != nil {
			b.Fatal(err)
		}
		if report := policies.DecideCoverage(input.Facts); len(report.Rows) != count {
			b.Fatalf("%d rows, want %d", len(report.Rows), count)
		}
	}
}
