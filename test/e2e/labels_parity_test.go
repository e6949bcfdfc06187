package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
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
		case operation.Path == "/metadata/labels" || operation.Path == "/metadata/annotations":
			// The whole map, added where there was none.
			values := map[string]string{}
			for k, v := range operation.Value.(map[string]any) {
				values[k] = v.(string)
			}
			if operation.Path == "/metadata/labels" {
				labels = values
			} else {
				annotations = values
			}
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

// snapHourlyClass is the StorageClass whose recurringJobSelector gives new Volumes the job snap-hourly;
// the config's rule weekly-for-hourly-snapshots selects its PVCs.
const snapHourlyClass = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: e2e-snap-hourly}\nprovisioner: driver.longhorn.io\n" +
	"parameters:\n  recurringJobSelector: '[{\"name\":\"snap-hourly\",\"isGroup\":false}]'\n"

// ensureSnapHourlyClass creates snapHourlyClass once for the suite and waits until serve's cache has it.
func ensureSnapHourlyClass(t *testing.T) {
	t.Helper()
	class := &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "e2e-snap-hourly"},
		Provisioner: longhorn.CSIDriver,
		Parameters:  map[string]string{"recurringJobSelector": `[{"name":"snap-hourly","isGroup":false}]`},
	}
	if err := kube.Create(context.Background(), class); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	probe := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"}, Spec: pvcSpec(class.Name)}
	eventually(t, "the webhook to know StorageClass e2e-snap-hourly", func() (bool, string) {
		dryRun := probe.DeepCopy()
		if err := kube.Create(context.Background(), dryRun, client.DryRunAll); err != nil {
			return false, err.Error()
		}
		got := dryRun.Labels["recurring-job.longhorn.io/snap-hourly"]
		return got == "enabled", fmt.Sprint(dryRun.Labels)
	})
}

// TestValidateShowsTheLabelsTheClusterGives runs the same PVC, with its Namespace, StorageClass and the
// RecurringJob in the input, through `backupguard validate --config` and through the cluster: the
// labels, the managed-labels annotation and the warnings must be the same.
func TestValidateShowsTheLabelsTheClusterGives(t *testing.T) {
	ensureSnapHourlyClass(t)
	longhornClass := "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: longhorn}\nprovisioner: driver.longhorn.io\n"
	cases := map[string]struct {
		namespaceLabels map[string]string
		class           string
		pvcClass        string
		pvcLabels       map[string]string
	}{
		"a PVC two rules match keeps the default group its Volume will be in": {
			namespaceLabels: map[string]string{"backup": "daily"}, class: longhornClass, pvcClass: "longhorn",
			pvcLabels: map[string]string{"app": "postgres"},
		},
		"a PVC of a class with a recurringJobSelector takes the class's job, unmanaged": {
			class: snapHourlyClass, pvcClass: "e2e-snap-hourly",
		},
		"a PVC with a recurring label of a person's is not in the default group": {
			namespaceLabels: map[string]string{"backup": "daily"}, class: longhornClass, pvcClass: "longhorn",
			pvcLabels: map[string]string{"recurring-job.longhorn.io/by-hand": "enabled"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			namespace := newNamespace(t, tc.namespaceLabels)
			pvc := pvcYAML(namespace, "data", tc.pvcClass, tc.pvcLabels, nil)
			var namespaceYAML strings.Builder
			fmt.Fprintf(&namespaceYAML, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", namespace)
			writeMap(&namespaceYAML, "labels", tc.namespaceLabels)
			input := namespaceYAML.String() + "---\n" + tc.class + "---\n" +
				recurringJobYAML(longhornNamespace, "e2e-daily", "  task: backup\n  cron: \"0 2 * * *\"\n  retain: 7\n  groups: [e2e-critical]\n") + "---\n"
			report := validateOfflineAll(t, input+pvc, "--config", configPath)
			if len(report.Results) != 2 {
				t.Fatalf("want results for the RecurringJob and the PVC, got %d", len(report.Results))
			}
			offlinePVC := report.Results[1]
			wantLabels, wantAnnotations := applyMapPatch(t, tc.pvcLabels, nil, offlinePVC.Patch)

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
		})
	}
}

// TestValidateTextShowsLabelChangesAsKeys runs the real binary's text report on two PVCs: one a rule
// labels, one whose managed label no rule wants any more. Label changes read as "+ key=value" and
// "- key", not as JSON Pointers.
func TestValidateTextShowsLabelChangesAsKeys(t *testing.T) {
	input := "apiVersion: v1\nkind: Namespace\nmetadata: {name: daily, labels: {backup: daily}}\n---\n" +
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet}\n---\n" +
		"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: longhorn}\nprovisioner: driver.longhorn.io\n---\n" +
		pvcYAML("daily", "data", "longhorn", nil, nil) + "---\n" +
		pvcYAML("quiet", "data", "longhorn", map[string]string{"recurring-job.longhorn.io/old": "enabled"},
			map[string]string{managedKey: "recurring-job.longhorn.io/old"})
	command := exec.Command(binary, "validate", "--config", configPath, "-")
	command.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	if err := command.Run(); err != nil {
		t.Fatalf("backupguard validate: %v\n%s", err, stderr.String())
	}
	want := `PersistentVolumeClaim daily/data (stdin#4): allowed, with changes
  labels:
    + recurring-job-group.longhorn.io/default=enabled
    + recurring-job-group.longhorn.io/e2e-critical=enabled
    + recurring-job.longhorn.io/e2e-daily=enabled
    + recurring-job.longhorn.io/source=enabled
  annotations:
    + backupguard.io/managed-labels=` + dailyManaged + `
PersistentVolumeClaim quiet/data (stdin#5): allowed, with changes
  labels:
    - recurring-job.longhorn.io/old
  annotations:
    - backupguard.io/managed-labels
2 checked, 0 denied, 2 mutated, 3 skipped
`
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("validate text (-want +got):\n%s", diff)
	}
}
