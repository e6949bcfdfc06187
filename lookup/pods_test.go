package lookup

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/backupguard/backupguard/policies"
)

func claimVolume(name, claim string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true}}}
}

func TestSlimPodKeepsOnlyWhatPlacementReads(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "backup-x7k2p", Namespace: "shop", UID: "u-1", ResourceVersion: "42",
			Labels:      map[string]string{batchv1.JobNameLabel: "backup", "job-name": "backup", "app": "restic"},
			Annotations: map[string]string{"note": "dropped"}},
		Spec: corev1.PodSpec{NodeName: "worker-2", Containers: []corev1.Container{{Name: "restic", Image: "restic"}},
			Volumes: []corev1.Volume{claimVolume("data", "data"), {Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				claimVolume("logs", "logs"), claimVolume("data-again", "data")}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7"},
	}
	slim, err := SlimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := &PodClaims{Namespace: "shop", Claims: []string{"data", "logs"}, Pod: policies.MountingPod{Name: "backup-x7k2p",
		JobLabels: map[string]string{batchv1.JobNameLabel: "backup", "job-name": "backup"}, NodeName: "worker-2", Phase: corev1.PodRunning}}
	if diff := cmp.Diff(want, slim); diff != "" {
		t.Errorf("SlimPod (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(slim, slim.(*PodClaims).DeepCopyObject()); diff != "" {
		t.Errorf("DeepCopyObject (-want +got):\n%s", diff)
	}
}

func TestSlimPodPassesOtherObjectsThrough(t *testing.T) {
	tombstone := toolscache.DeletedFinalStateUnknown{Key: "shop/gone"}
	for name, object := range map[string]any{"tombstone": tombstone, "already slim": &PodClaims{Namespace: "a"}} {
		got, err := SlimPod(object)
		if err != nil || !cmp.Equal(object, got) {
			t.Errorf("%s: SlimPod = %v, %v; want it unchanged", name, got, err)
		}
	}
}

func TestPodIndexFindsThePodsOfAClaim(t *testing.T) {
	indexer := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{podByClaim: claimKeys})
	for _, pod := range []*PodClaims{
		{Namespace: "shop", Pod: policies.MountingPod{Name: "a", NodeName: "n1"}, Claims: []string{"data", "logs"}},
		{Namespace: "shop", Pod: policies.MountingPod{Name: "b", NodeName: "n2"}, Claims: []string{"logs"}},
		{Namespace: "blog", Pod: policies.MountingPod{Name: "c", NodeName: "n3"}, Claims: []string{"data"}},
	} {
		if err := indexer.Add(pod); err != nil {
			t.Fatal(err)
		}
	}
	index := &PodIndex{indexer: indexer}
	for claim, want := range map[string][]string{"data": {"a"}, "logs": {"a", "b"}, "none": {}} {
		pods, err := index.PodsMounting("shop", claim)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, pod := range pods {
			names = append(names, pod.Name)
		}
		slices.Sort(names)
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("pods mounting shop/%s (-want +got):\n%s", claim, diff)
		}
	}
}
