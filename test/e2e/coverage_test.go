package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/test/cluster"
)

// coverageDir is the tree of the offline coverage test (cmd/backupguard): its manifests, configs and
// the whole outputs expected from them.
var coverageDir = filepath.Join(cluster.RepoRoot(), "cmd", "backupguard", "testdata", "coverage")

// TestCoverageInTheClusterIsTheOfflineReport loads the coverage tree into a control plane of its own (the
// report reads every PVC and every Longhorn object, so the suite's cluster, shared with other tests,
// would add rows), with the status of Volumes, Backups and BackupVolumes written through the status
// subresource as Longhorn writes it. `backupguard coverage` must then print, from the cluster, exactly
// what it prints from the files. The PVC of new-db.yaml is then labelled by the real webhook with the
// rules of config-rules.yaml, and the report must be the one offline gives from those rules.
func TestCoverageInTheClusterIsTheOfflineReport(t *testing.T) {
	ctx := context.Background()
	own, err := cluster.Start()
	if err != nil {
		t.Fatalf("starting a control plane: %v", err)
	}
	defer own.Stop()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	ownKube, err := client.New(own.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if result := own.RunKubectl("apiVersion: v1\nkind: Namespace\nmetadata: {name: longhorn-system}\n", "apply", "-f", "-"); result.ExitCode != 0 {
		t.Fatal(result.Stderr)
	}
	// The control plane calls backupguard's webhooks, so it serves from the start: with config-rules.yaml's
	// label rule but no window, so that the RecurringJob outside the window gets in, as one that predates
	// the webhook, for the audit to find.
	served, err := own.StartBackupguard(ctx, binary, writeFile(t, own.Dir, "serve-config.yaml", coverageServeConfig))
	if err != nil {
		t.Fatal(err)
	}
	defer served.Stop()
	loadWithStatus(ctx, t, ownKube, filepath.Join(coverageDir, "manifests"))

	now := "2026-11-21T12:00:00Z"
	for _, tc := range []struct{ golden, output, zone string }{
		{"want.txt", "text", "Europe/Berlin"}, {"want.md", "markdown", "UTC"}, {"want.json", "json", "UTC"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			args := []string{"coverage", "--config", "config.yaml", "--now", now, "-o", tc.output, "--tz", tc.zone}
			fromFiles := runCoverage(t, append(args, "manifests")...)
			fromCluster := runCoverage(t, append(args, "--kubeconfig", own.Kubeconfig)...)
			if diff := cmp.Diff(fromFiles, fromCluster); diff != "" {
				t.Errorf("the cluster's report differs from the files' (-files +cluster):\n%s", diff)
			}
			want, err := os.ReadFile(filepath.Join(coverageDir, tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(commandResult{Stdout: string(want)}, fromCluster); diff != "" {
				t.Errorf("the cluster's report (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a PVC labelled by the webhook's rules", func(t *testing.T) {
		if result := own.RunKubectl("", "apply", "-f", filepath.Join(coverageDir, "new-db.yaml")); result.ExitCode != 0 {
			t.Fatal(result.Stderr)
		}
		args := []string{"coverage", "--config", "config-rules.yaml", "--now", now}
		fromFiles := runCoverage(t, append(args, "manifests", "new-db.yaml")...)
		fromCluster := runCoverage(t, append(args, "--kubeconfig", own.Kubeconfig)...)
		if diff := cmp.Diff(fromFiles, fromCluster); diff != "" {
			t.Errorf("the cluster's report differs from the files' (-files +cluster):\n%s", diff)
		}
		want, err := os.ReadFile(filepath.Join(coverageDir, "want-rules.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(commandResult{Stdout: string(want)}, fromCluster); diff != "" {
			t.Errorf("the cluster's report (-want +got):\n%s", diff)
		}
	})
}

// coverageServeConfig is config-rules.yaml without its window.
const coverageServeConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
longhorn:
  namespace: longhorn-system
labels:
  rules:
    - name: databases
      match:
        selector:
          matchLabels: {app: postgres}
      groups: [databases]
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// commandResult is a whole run of the binary.
type commandResult struct {
	Stdout, Stderr string
	Code           int
}

func runCoverage(t *testing.T, args ...string) commandResult {
	t.Helper()
	command := exec.Command(binary, args...)
	command.Dir = coverageDir
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	result := commandResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		result.Code = exitErr.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return result
}

// loadWithStatus creates every object of the files under dir, Namespaces first, and then writes the
// status a manifest carries through the status subresource, which a create ignores.
func loadWithStatus(ctx context.Context, t *testing.T, kube client.Client, dir string) {
	t.Helper()
	documents, err := offline.ReadPaths([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var namespaces, others []*unstructured.Unstructured
	for _, document := range documents {
		object := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(document.Object)}
		if object.GetKind() == "Namespace" {
			namespaces = append(namespaces, object)
		} else {
			others = append(others, object)
		}
	}
	for _, object := range append(namespaces, others...) {
		status, hasStatus := object.Object["status"]
		if err := kube.Create(ctx, object); err != nil {
			t.Fatalf("creating %s %s: %v", object.GetKind(), object.GetName(), err)
		}
		if hasStatus && object.GetKind() != "Namespace" && object.GetKind() != "PersistentVolume" {
			object.Object["status"] = status
			if err := kube.Status().Update(ctx, object); err != nil {
				t.Fatalf("writing the status of %s %s: %v", object.GetKind(), object.GetName(), err)
			}
		}
	}
}

// TestCoverageEventsAndMetricsFromTheLeader creates a Longhorn PVC that no rule and no RecurringJob
// covers: the leader's coverage report (every second in this suite) records a Warning Event on it that
// `kubectl describe pvc` shows, and exports the verdict counts.
func TestCoverageEventsAndMetricsFromTheLeader(t *testing.T) {
	ctx := context.Background()
	// The first report records no Event (it has nothing to compare with): the PVC must come after it.
	eventually(t, "a first coverage report", func() (bool, string) {
		value := metricValue(t, "backupguard_coverage_last_report_timestamp_seconds")
		return value != "0", value
	})
	namespace := newNamespace(t, nil)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "uncovered"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: new("longhorn"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
		},
	}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an Event on the PVC saying it is unprotected", func() (bool, string) {
		events := &eventsv1.EventList{}
		if err := kube.List(ctx, events, client.InNamespace(namespace)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, event := range events.Items {
			if event.Regarding.Kind == "PersistentVolumeClaim" && event.Regarding.Name == pvc.Name && event.Regarding.UID == pvc.UID {
				seen = append(seen, event.Type+" "+event.Reason+": "+event.Note)
			}
		}
		want := "Warning BackupUnprotected: unprotected: no backup job selects it"
		return len(seen) == 1 && seen[0] == want, fmt.Sprintf("%q, want [%q]", seen, want)
	})
	if value := metricValue(t, `backupguard_coverage_volumes{verdict="unprotected"}`); value == "0" {
		t.Errorf("backupguard_coverage_volumes{verdict=\"unprotected\"}: got %s, want at least 1", value)
	}
}
