package e2e

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/offline"
)

// TestLonghornSettingsAreReadFromTheCluster changes the two Settings the rules depend on and waits for
// the webhook's cache to follow.
func TestLonghornSettingsAreReadFromTheCluster(t *testing.T) {
	ctx := context.Background()
	retain50 := rj("settings-retain", backupDefaults+"  retain: 50\n")

	maxRetention := &longhorn.Setting{ObjectMeta: metav1.ObjectMeta{Name: longhorn.SettingRecurringJobMaxRetention, Namespace: longhornNamespace}, Value: "20"}
	if err := kube.Create(ctx, maxRetention); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(ctx, maxRetention) })
	wantDenial := []offline.Violation{{Field: "spec.retain", Type: "FieldValueInvalid",
		Message: "Invalid value: 50: must be at most 20 (the Longhorn setting recurring-job-max-retention)"}}
	eventually(t, "a max retention of 20 to apply", func() (bool, string) {
		err, _ := createInCluster(t, retain50)
		got := causesAsViolations(err)
		return cmp.Equal(wantDenial, got), cmp.Diff(wantDenial, got)
	})

	allowDetached := &longhorn.Setting{ObjectMeta: metav1.ObjectMeta{Name: longhorn.SettingAllowRecurringJobWhileVolumeDetached, Namespace: longhornNamespace}, Value: "true"}
	if err := kube.Create(ctx, allowDetached); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(ctx, allowDetached) })
	retain10 := rj("settings-detached", backupDefaults+"  retain: 10\n")
	eventually(t, "the detached-volume warning to disappear", func() (bool, string) {
		err, warnings := createInCluster(t, retain10)
		return err == nil && len(warnings) == 0, cmp.Diff([]string{}, warnings)
	})

	// Deleted Settings mean Longhorn's defaults again.
	if err := kube.Delete(ctx, maxRetention); err != nil {
		t.Fatal(err)
	}
	if err := kube.Delete(ctx, allowDetached); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the defaults to return", func() (bool, string) {
		err, warnings := createInCluster(t, retain50)
		want := []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"}
		return err == nil && cmp.Equal(want, warnings), cmp.Diff(want, warnings)
	})
}
