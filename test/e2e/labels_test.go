package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

const (
	jobLabel      = "recurring-job.longhorn.io/e2e-daily"
	groupLabel    = "recurring-job-group.longhorn.io/e2e-critical"
	sourceLabel   = "recurring-job.longhorn.io/source"
	managedKey    = "backupguard.io/managed-labels"
	dailyManaged  = "recurring-job-group.longhorn.io/e2e-critical,recurring-job.longhorn.io/e2e-daily,recurring-job.longhorn.io/source"
	databaseGroup = "recurring-job-group.longhorn.io/databases"
)

// dailyLabels are the labels the first rule gives every Longhorn PVC of a namespace labelled backup=daily.
var dailyLabels = map[string]string{jobLabel: "enabled", groupLabel: "enabled", sourceLabel: "enabled"}

var namespaceCounter int

// newNamespace makes a fresh namespace with the given labels; tests never share or delete one (no
// namespace controller runs here).
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	namespaceCounter++
	name := fmt.Sprintf("%s-%d", strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name())), namespaceCounter)
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := kube.Create(context.Background(), namespace); err != nil {
		t.Fatal(err)
	}
	return name
}

func pvcYAML(namespace, name, storageClass string, labels map[string]string, annotations map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: %s\n  namespace: %s\n", name, namespace)
	writeMap(&b, "labels", labels)
	writeMap(&b, "annotations", annotations)
	b.WriteString("spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n")
	if storageClass != "" {
		fmt.Fprintf(&b, "  storageClassName: %s\n", storageClass)
	}
	return b.String()
}

func writeMap(b *strings.Builder, key string, values map[string]string) {
	if len(values) == 0 {
		return
	}
	fmt.Fprintf(b, "  %s:\n", key)
	for k, v := range values {
		fmt.Fprintf(b, "    %s: %q\n", k, v)
	}
}

func getPVC(t *testing.T, namespace, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, pvc); err != nil {
		t.Fatal(err)
	}
	return pvc
}

func TestPVCAppliedWithKubectlGetsTheRecurringLabels(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	result := testCluster.RunKubectl(pvcYAML(namespace, "data", "longhorn", nil, nil), "apply", "-f", "-")
	assertKubectl(t, result, cluster.KubectlResult{Stdout: "persistentvolumeclaim/data created\n"})
	pvc := getPVC(t, namespace, "data")
	if diff := cmp.Diff(dailyLabels, pvc.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{managedKey: dailyManaged}, withoutLastApplied(pvc.Annotations)); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestPVCMatchedByARuleWithAnUnprovidedGroupIsLabelledWithAWarning(t *testing.T) {
	namespace := newNamespace(t, nil)
	result := testCluster.RunKubectl(pvcYAML(namespace, "pg", "longhorn", map[string]string{"app": "postgres"}, nil), "create", "-f", "-")
	assertKubectl(t, result, cluster.KubectlResult{
		Stdout: "persistentvolumeclaim/pg created\n",
		Stderr: `Warning: rule "databases" names group "databases", but no RecurringJob is in that group: nothing will run for it` + "\n",
	})
	want := map[string]string{"app": "postgres", databaseGroup: "enabled", sourceLabel: "enabled"}
	if diff := cmp.Diff(want, getPVC(t, namespace, "pg").Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func TestPVCsThatAreNotLonghornsOrOptOutAreLeftAlone(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	cases := map[string]struct {
		manifest string
		stderr   string
	}{
		"another provisioner":   {manifest: pvcYAML(namespace, "local", "local-path", nil, nil)},
		"no storage class":      {manifest: pvcYAML(namespace, "static", "", nil, nil)},
		"opted out":             {manifest: pvcYAML(namespace, "skip", "longhorn", nil, map[string]string{"backupguard.io/skip": "true"})},
		"missing storage class": {manifest: pvcYAML(namespace, "ghost", "no-such-class", nil, nil), stderr: `Warning: StorageClass "no-such-class" does not exist, so backupguard cannot tell whether this is a Longhorn volume: its recurring-job labels were left as they are` + "\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			result := testCluster.RunKubectl(tc.manifest, "create", "-f", "-", "-o", "jsonpath={.metadata.labels}")
			assertKubectl(t, result, cluster.KubectlResult{Stderr: tc.stderr})
		})
	}
}

func TestPVCWithGenerateNameIsLabelled(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "data-", Namespace: namespace},
		Spec:       pvcSpec("longhorn"),
	}
	if err := kube.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dailyLabels, pvc.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func pvcSpec(storageClass string) corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: &storageClass,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
	}
}

func TestVolumeGetsItsSourcePVCsLabelsAtCreate(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: namespace, Labels: map[string]string{"app": "postgres"}}, Spec: pvcSpec("longhorn")}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	newPVCVolume := func() *longhorn.Volume {
		return newVolume("pvc-"+string(pvc.UID), map[string]string{
			"longhornvolume":                  "keep-me",
			"recurring-job.longhorn.io/stale": "enabled",
		})
	}
	want := map[string]string{"longhornvolume": "keep-me", jobLabel: "enabled", groupLabel: "enabled", databaseGroup: "enabled"}
	// Longhorn creates the Volume well after the PVC; here it follows at once, so first wait until
	// backupguard's cache has the PVC (server-side dry runs show what the webhook would do).
	eventually(t, "the webhook to know the PVC", func() (bool, string) {
		volume := newPVCVolume()
		if err := kube.Create(ctx, volume, client.DryRunAll); err != nil {
			return false, err.Error()
		}
		return cmp.Equal(want, volume.Labels), cmp.Diff(want, volume.Labels)
	})
	volume := newPVCVolume()
	if err := kube.Create(ctx, volume); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, volume.Labels); diff != "" {
		t.Errorf("volume labels at create (-want +got):\n%s", diff)
	}
}

func TestVolumeWithoutASourcePVCKeepsItsLabels(t *testing.T) {
	labels := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled"}
	volume := newVolume("pvc-00000000-0000-0000-0000-000000000000", labels)
	if err := kube.Create(context.Background(), volume); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(labels, volume.Labels); diff != "" {
		t.Errorf("volume labels (-want +got):\n%s", diff)
	}
}

func newVolume(name string, labels map[string]string) *longhorn.Volume {
	return &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: longhornNamespace, Labels: labels}}
}

func withoutLastApplied(annotations map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range annotations {
		if k != corev1.LastAppliedConfigAnnotation {
			out[k] = v
		}
	}
	return out
}

// TestReleasedVolumeDoesNotTakeTheLabelsOfARecreatedPVC: a StatefulSet PVC deleted and created again
// under the same name is a new PVC; the Volume of the old one (Released: lastPVCRefAt set, its PV
// claimed by the old uid) keeps its own labels, while a Volume bound to the new PVC gets the new labels.
func TestReleasedVolumeDoesNotTakeTheLabelsOfARecreatedPVC(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	oldPVC := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Namespace: namespace, UID: "0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b"}}
	released := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled"}
	releasedVolume, err := createStaticVolume(ctx, "released-"+namespace, oldPVC, released, "2026-11-20T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Namespace: namespace}, Spec: pvcSpec("longhorn")}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dailyLabels, pvc.Labels); diff != "" {
		t.Fatalf("new PVC labels (-want +got):\n%s", diff)
	}
	boundVolume, err := createStaticVolume(ctx, "bound-"+namespace, pvc, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	eventuallyLabels(t, "the sync to label the Volume bound to the new PVC", map[string]string{jobLabel: "enabled", groupLabel: "enabled"},
		func() map[string]string { return volumeLabels(t, boundVolume.Name) })

	// The Volume webhook answers an update of the Released Volume at once: it must not add the labels.
	releasedVolume.Labels["touched"] = "yes"
	if err := kube.Update(ctx, releasedVolume); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled", "touched": "yes"}
	if diff := cmp.Diff(want, releasedVolume.Labels); diff != "" {
		t.Errorf("Released Volume labels after an update (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, volumeLabels(t, releasedVolume.Name)); diff != "" {
		t.Errorf("Released Volume labels after the sync labelled its sibling (-want +got):\n%s", diff)
	}
}
