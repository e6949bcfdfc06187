package e2e

import (
	"context"
	"fmt"
	"maps"
	"regexp"
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
	defaultGroup  = "recurring-job-group.longhorn.io/default"
	dailyManaged  = "recurring-job-group.longhorn.io/default,recurring-job-group.longhorn.io/e2e-critical,recurring-job.longhorn.io/e2e-daily,recurring-job.longhorn.io/source"
	databaseGroup = "recurring-job-group.longhorn.io/databases"
)

// dailyLabels are the labels the first rule gives every Longhorn PVC of a namespace labelled backup=daily
// whose volume has no recurring labels of its own: the rule's, the source label, and Longhorn's default
// group, kept (labels.keepDefaultGroup is true by default).
var dailyLabels = map[string]string{jobLabel: "enabled", groupLabel: "enabled", defaultGroup: "enabled", sourceLabel: "enabled"}

// dailyVolumeLabels are the labels the Volume of such a PVC gets.
var dailyVolumeLabels = map[string]string{jobLabel: "enabled", groupLabel: "enabled", defaultGroup: "enabled"}

var namespaceCounter int

// notInDNSLabel matches what a namespace name (a DNS label) cannot hold.
var notInDNSLabel = regexp.MustCompile(`[^a-z0-9-]`)

// newNamespace makes a fresh namespace with the given labels; tests never share or delete one (no
// namespace controller runs here).
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	namespaceCounter++
	name := fmt.Sprintf("%s-%d", notInDNSLabel.ReplaceAllString(strings.ToLower(t.Name()), "-"), namespaceCounter)
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
	want := map[string]string{"app": "postgres", databaseGroup: "enabled", defaultGroup: "enabled", sourceLabel: "enabled"}
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
	want := map[string]string{"longhornvolume": "keep-me", jobLabel: "enabled", groupLabel: "enabled", databaseGroup: "enabled", defaultGroup: "enabled"}
	createPVCVolume(t, pvc, map[string]string{"longhornvolume": "keep-me", "recurring-job.longhorn.io/stale": "enabled"}, want)
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

// createPVCVolume creates the Volume Longhorn provisions for pvc ("pvc-<uid>") with labels, and checks
// it is admitted with want. Longhorn creates the Volume well after the PVC; here it follows at once, so
// it first waits until backupguard's cache has the PVC (server-side dry runs show what the webhook
// would do).
func createPVCVolume(t *testing.T, pvc *corev1.PersistentVolumeClaim, labels, want map[string]string) *longhorn.Volume {
	t.Helper()
	ctx := context.Background()
	eventually(t, "the webhook to know the PVC", func() (bool, string) {
		volume := newVolume("pvc-"+string(pvc.UID), maps.Clone(labels))
		if err := kube.Create(ctx, volume, client.DryRunAll); err != nil {
			return false, err.Error()
		}
		return cmp.Equal(want, volume.Labels), cmp.Diff(want, volume.Labels)
	})
	volume := newVolume("pvc-"+string(pvc.UID), maps.Clone(labels))
	if err := kube.Create(ctx, volume); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, volume.Labels); diff != "" {
		t.Errorf("Volume labels at create (-want +got):\n%s", diff)
	}
	return volume
}

// labelNamespace sets a label on an existing namespace.
func labelNamespace(t *testing.T, namespace, key, value string) {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := kube.Get(context.Background(), client.ObjectKey{Name: namespace}, ns); err != nil {
		t.Fatal(err)
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[key] = value
	if err := kube.Update(context.Background(), ns); err != nil {
		t.Fatal(err)
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
	eventuallyLabels(t, "the sync to label the Volume bound to the new PVC", dailyVolumeLabels,
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

// TestVolumeAndPVCKeepTheStorageClassesRecurringJobSelector is issue 13's case: a StorageClass whose
// recurringJobSelector gives new Volumes snap-hourly, a PVC of it that a rule gives weekly (so it
// becomes a source at creation), then its Volume created by Longhorn with snap-hourly. Longhorn makes a
// source PVC's Volume carry exactly the PVC's recurring labels, so both must end with both jobs, and the
// PVC must not record snap-hourly as backupguard's.
func TestVolumeAndPVCKeepTheStorageClassesRecurringJobSelector(t *testing.T) {
	ctx := context.Background()
	ensureSnapHourlyClass(t)
	namespace := newNamespace(t, nil)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: namespace}, Spec: pvcSpec("e2e-snap-hourly")}
	both := map[string]string{"recurring-job.longhorn.io/weekly": "enabled", "recurring-job.longhorn.io/snap-hourly": "enabled"}
	wantPVC := map[string]string{"recurring-job.longhorn.io/weekly": "enabled", "recurring-job.longhorn.io/snap-hourly": "enabled", sourceLabel: "enabled"}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPVC, pvc.Labels); diff != "" {
		t.Errorf("PVC labels (-want +got):\n%s", diff)
	}
	wantAnnotations := map[string]string{managedKey: "recurring-job.longhorn.io/source,recurring-job.longhorn.io/weekly"}
	if diff := cmp.Diff(wantAnnotations, pvc.Annotations); diff != "" {
		t.Errorf("PVC annotations (-want +got):\n%s", diff)
	}

	// Longhorn's CSI driver creates the Volume with the labels of the class's recurringJobSelector.
	volume := createPVCVolume(t, pvc, map[string]string{"recurring-job.longhorn.io/snap-hourly": "enabled"}, both)
	// What Longhorn's next resync does to the Volume: its recurring labels become exactly the PVC's.
	if diff := cmp.Diff(both, longhornMirror(volume.Labels, getPVC(t, namespace, "data").Labels)); diff != "" {
		t.Errorf("Volume labels after Longhorn's resync (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPVC, getPVC(t, namespace, "data").Labels); diff != "" {
		t.Errorf("PVC labels at the end (-want +got):\n%s", diff)
	}
}

// longhornMirror is what Longhorn's volume controller makes of a Volume's labels when its PVC is a
// source (controller/recurring_job_controller.go syncRecurringJobLabelsToTargetResource, then
// datastore/longhorn.go labelRecurringJobDefault): exactly the PVC's recurring labels, and the default
// group when none is left.
func longhornMirror(volume, pvc map[string]string) map[string]string {
	isRecurring := func(key string) bool {
		return key != sourceLabel && (strings.HasPrefix(key, longhorn.RecurringJobLabelPrefix) || strings.HasPrefix(key, longhorn.RecurringJobGroupLabelPrefix))
	}
	out := map[string]string{}
	for key, value := range volume {
		if !isRecurring(key) {
			out[key] = value
		}
	}
	recurring := 0
	for key, value := range pvc {
		if isRecurring(key) {
			out[key] = value
			recurring++
		}
	}
	if recurring == 0 {
		out[defaultGroup] = "enabled"
	}
	return out
}

// TestARuleThatStartsMatchingKeepsTheVolumesOwnLabels: a PVC whose Volume already has a recurring
// label of its own (set in the Longhorn UI, say) is matched by a rule only later, when its namespace is
// labelled; the sync makes it a source, and it takes the Volume's label first.
func TestARuleThatStartsMatchingKeepsTheVolumesOwnLabels(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, nil)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: namespace}, Spec: pvcSpec("longhorn")}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	own := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled"}
	volume := newVolume("pvc-"+string(pvc.UID), own)
	if err := kube.Create(ctx, volume); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(own, volume.Labels); diff != "" {
		t.Fatalf("Volume labels of a PVC that is no source (-want +got):\n%s", diff)
	}
	labelNamespace(t, namespace, "backup", "daily")
	wantPVC := map[string]string{jobLabel: "enabled", groupLabel: "enabled", "recurring-job.longhorn.io/by-hand": "enabled", sourceLabel: "enabled"}
	eventuallyLabels(t, "the sync to make the PVC a source with the Volume's own label", wantPVC, func() map[string]string { return getPVC(t, namespace, "data").Labels })
	wantManaged := "recurring-job-group.longhorn.io/e2e-critical,recurring-job.longhorn.io/e2e-daily,recurring-job.longhorn.io/source"
	if diff := cmp.Diff(wantManaged, getPVC(t, namespace, "data").Annotations[managedKey]); diff != "" {
		t.Errorf("managed-labels annotation (-want +got):\n%s", diff)
	}
	wantVolume := map[string]string{jobLabel: "enabled", groupLabel: "enabled", "recurring-job.longhorn.io/by-hand": "enabled"}
	eventuallyLabels(t, "the Volume to keep its own label and get the rule's", wantVolume, func() map[string]string { return volumeLabels(t, volume.Name) })
}

// TestVolumeInTheDefaultGroupStaysThere: Longhorn puts a Volume without recurring labels in the default
// group; a rule's labels keep it there (labels.keepDefaultGroup defaults to true), on the PVC as a
// label backupguard manages and on the Volume, also after Longhorn's own resync.
func TestVolumeInTheDefaultGroupStaysThere(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: namespace}, Spec: pvcSpec("longhorn")}
	if err := kube.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dailyLabels, pvc.Labels); diff != "" {
		t.Errorf("PVC labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dailyManaged, pvc.Annotations[managedKey]); diff != "" {
		t.Errorf("managed-labels annotation (-want +got):\n%s", diff)
	}
	// Longhorn creates the Volume in the default group (no recurringJobSelector on the class).
	volume := createPVCVolume(t, pvc, map[string]string{defaultGroup: "enabled"}, dailyVolumeLabels)
	if diff := cmp.Diff(dailyVolumeLabels, longhornMirror(volume.Labels, getPVC(t, namespace, "data").Labels)); diff != "" {
		t.Errorf("Volume labels after Longhorn's resync (-want +got):\n%s", diff)
	}
}

// applyConfig writes content as the config and waits until the running server has applied it.
func applyConfig(t *testing.T, content string) {
	t.Helper()
	applied := reloadCount(t, "applied")
	writeConfig(t, content)
	eventually(t, "the config to be applied", func() (bool, string) {
		got := reloadCount(t, "applied")
		return got != applied, "applied=" + got
	})
}

// TestWithoutKeepDefaultGroupARuleWarnsThatItTakesAVolumeOutOfTheDefaultGroup: with
// labels.keepDefaultGroup false and a RecurringJob in the default group, a new PVC that a rule labels
// leaves the default group, and the answer says so.
func TestWithoutKeepDefaultGroupARuleWarnsThatItTakesAVolumeOutOfTheDefaultGroup(t *testing.T) {
	ctx := context.Background()
	nightly := &longhorn.RecurringJob{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-default-nightly", Namespace: longhornNamespace},
		Spec:       longhorn.RecurringJobSpec{Task: longhorn.TaskSnapshot, Cron: "0 1 * * *", Retain: 3, Groups: []string{"default"}},
	}
	if err := kube.Create(ctx, nightly); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		applyConfig(t, baseConfig)
		if err := kube.Delete(ctx, nightly); err != nil {
			t.Error(err)
		}
	})
	applyConfig(t, strings.Replace(baseConfig, "labels:\n  rules:\n", "labels:\n  keepDefaultGroup: false\n  rules:\n", 1))
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	manifest := pvcYAML(namespace, "data", "longhorn", nil, nil)
	assertKubectl(t, testCluster.RunKubectl(manifest, "create", "-f", "-", "-o", "name"), cluster.KubectlResult{
		Stdout: "persistentvolumeclaim/data\n",
		Stderr: `Warning: the labels of rule "daily-for-labelled-namespaces" take this volume out of Longhorn's default group, whose RecurringJobs will no longer run for it: set labels.keepDefaultGroup: true, or name the jobs in a rule` + "\n",
	})
	want := map[string]string{jobLabel: "enabled", groupLabel: "enabled", sourceLabel: "enabled"}
	if diff := cmp.Diff(want, getPVC(t, namespace, "data").Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}
