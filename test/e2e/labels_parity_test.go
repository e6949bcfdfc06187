package e2e

import (
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
)

// applyMapPatch applies the add/replace/remove operations of a label or annotation patch to a PVC's
// metadata maps, as the API server would.
func applyMapPatch(t *testing.T, labels, annotations map[string]string, patch []jsonpatch.Operation) (map[string]string, map[string]string) {
	t.Helper()
	labels, annotations = maps.Clone(labels), maps.Clone(annotations)
	unescape := strings.NewReplacer("~1", "/", "~0", "~")
	for _, operation := range patch {
		var target *map[string]string
		var key string
		switch {
		case operation.Path == "/metadata/annotations":
			values := map[string]string{}
			for k, v := range operation.Value.(map[string]any) {
				values[k] = v.(string)
			}
			annotations = values
			continue
		case strings.HasPrefix(operation.Path, "/metadata/labels/"):
			target, key = &labels, unescape.Replace(strings.TrimPrefix(operation.Path, "/metadata/labels/"))
		case strings.HasPrefix(operation.Path, "/metadata/annotations/"):
			target, key = &annotations, unescape.Replace(strings.TrimPrefix(operation.Path, "/metadata/annotations/"))
		default:
			t.Fatalf("unexpected patch path %q", operation.Path)
		}
		if *target == nil {
			*target = map[string]string{}
		}
		if operation.Operation == "remove" {
			delete(*target, key)
		} else {
			(*target)[key] = operation.Value.(string)
		}
	}
	return labels, annotations
}

// TestValidateShowsTheLabelsTheClusterGives runs the same PVC, with its Namespace, StorageClass and the
// RecurringJob in the input, through `backupguard validate --config` and through the cluster.
func TestValidateShowsTheLabelsTheClusterGives(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	pvc := pvcYAML(namespace, "data", "longhorn", map[string]string{"app": "postgres"}, nil)
	context := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + namespace + "\n  labels: {backup: daily}\n---\n" +
		"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: longhorn}\nprovisioner: driver.longhorn.io\n---\n" +
		recurringJobYAML(longhornNamespace, "e2e-daily", "  task: backup\n  cron: \"0 2 * * *\"\n  retain: 7\n  groups: [e2e-critical]\n") + "---\n"
	report := validateOfflineAll(t, context+pvc, "--config", configPath)
	if len(report.Results) != 2 {
		t.Fatalf("want results for the RecurringJob and the PVC, got %d", len(report.Results))
	}
	offlinePVC := report.Results[1]
	wantLabels, wantAnnotations := applyMapPatch(t, map[string]string{"app": "postgres"}, nil, offlinePVC.Patch)

	result := testCluster.RunKubectl(pvc, "create", "-f", "-", "-o", "name")
	if result.ExitCode != 0 {
		t.Fatalf("kubectl create: %+v", result)
	}
	warnings := []string{}
	for line := range strings.SplitSeq(strings.TrimSpace(result.Stderr), "\n") {
		if text, ok := strings.CutPrefix(line, "Warning: "); ok {
			warnings = append(warnings, text)
		}
	}
	got := getPVC(t, namespace, "data")
	if diff := cmp.Diff(wantLabels, got.Labels); diff != "" {
		t.Errorf("labels (-validate +cluster):\n%s", diff)
	}
	if diff := cmp.Diff(wantAnnotations, got.Annotations); diff != "" {
		t.Errorf("annotations (-validate +cluster):\n%s", diff)
	}
	if diff := cmp.Diff(offlinePVC.Warnings, warnings); diff != "" {
		t.Errorf("warnings (-validate +cluster):\n%s", diff)
	}
}
