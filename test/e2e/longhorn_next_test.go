package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/backupguard/backupguard/test/cluster"
)

// TestLonghornNextRecurringJobFields runs backupguard in front of Longhorn v1.13's RecurringJob CRD, which
// adds spec.retentionPolicy (defaulted to count-based by the API server, so every job carries it) and
// spec.retainAge. A backupguard that denied fields it does not know would block every user who upgrades
// Longhorn; this one knows them, and leaves any other unknown field to the CRD.
func TestLonghornNextRecurringJobFields(t *testing.T) {
	ctx := context.Background()
	next, err := cluster.StartWith(cluster.Options{NextRecurringJob: true})
	if err != nil {
		t.Fatalf("starting a control plane with Longhorn v1.13's RecurringJob CRD: %v", err)
	}
	defer next.Stop()
	if result := next.RunKubectl("apiVersion: v1\nkind: Namespace\nmetadata: {name: longhorn-system}\n", "apply", "-f", "-"); result.ExitCode != 0 {
		t.Fatal(result.Stderr)
	}
	config := filepath.Join(next.Dir, "config.yaml")
	if err := os.WriteFile(config, []byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	served, err := next.StartBackupguard(ctx, binary, config)
	if err != nil {
		t.Fatal(err)
	}
	defer served.Stop()

	create := func(t *testing.T, spec map[string]any) (*unstructured.Unstructured, []string, error) {
		t.Helper()
		warnings := &warningCollector{}
		restConfig := rest.CopyConfig(next.Config)
		restConfig.WarningHandler = warnings
		client, err := dynamic.NewForConfig(restConfig)
		if err != nil {
			t.Fatal(err)
		}
		object := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
			"metadata": map[string]any{"name": "v113", "namespace": longhornNamespace},
			"spec":     spec,
		}}
		created, err := client.Resource(recurringJobResource).Namespace(longhornNamespace).Create(ctx, object,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		return created, warnings.list(), err
	}
	detached := []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"}

	t.Run("a job that says nothing of retention gets count-based from the CRD and is allowed", func(t *testing.T) {
		created, warnings, err := create(t, map[string]any{"task": "backup", "cron": "0 2 * * *", "retain": int64(8), "parameters": map[string]any{"full-backup-interval": "7"}})
		if err != nil {
			t.Fatalf("want allowed, got %v", err)
		}
		if policy, _, _ := unstructured.NestedString(created.Object, "spec", "retentionPolicy"); policy != "count-based" {
			t.Errorf("retentionPolicy = %q, want the CRD's default count-based", policy)
		}
		if diff := cmp.Diff(detached, warnings); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
	})
	t.Run("age-based retention: the retain rules step aside", func(t *testing.T) {
		_, warnings, err := create(t, map[string]any{"task": "backup", "cron": "0 2 * * *", "retain": int64(2),
			"retentionPolicy": "age-based", "retainAge": "720h", "parameters": map[string]any{"full-backup-interval": "7"}})
		if err != nil {
			t.Fatalf("want allowed, got %v", err)
		}
		if diff := cmp.Diff(detached, warnings); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
	})
	t.Run("age-based retention without retainAge never starts, so it is refused", func(t *testing.T) {
		_, _, err := create(t, map[string]any{"task": "backup", "cron": "0 2 * * *", "retain": int64(2), "retentionPolicy": "age-based"})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("want Invalid, got %v", err)
		}
		if diff := cmp.Diff([]string{"spec.retainAge"}, causeFields(err)); diff != "" {
			t.Errorf("refused fields (-want +got):\n%s", diff)
		}
	})
	t.Run("count-based retention still keeps retain above the full-backup interval", func(t *testing.T) {
		_, _, err := create(t, map[string]any{"task": "backup", "cron": "0 2 * * *", "retain": int64(7), "parameters": map[string]any{"full-backup-interval": "7"}})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("want Invalid, got %v", err)
		}
		if diff := cmp.Diff([]string{"spec.retain"}, causeFields(err)); diff != "" {
			t.Errorf("refused fields (-want +got):\n%s", diff)
		}
	})
}
