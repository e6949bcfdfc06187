package offline

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
)

// TestTheTwoReadersGatherTheSameFacts gives the same objects to the offline inventory (as documents)
// and to lookup.Cache (over a client), and gathers every decision's facts through both: they must be
// equal but for saying which one is offline.
func TestTheTwoReadersGatherTheSameFacts(t *testing.T) {
	const uid = "0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b"
	className := "longhorn"
	objects := []client.Object{
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"backup": "daily"}}},
		&storagev1.StorageClass{TypeMeta: metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
			ObjectMeta:  metav1.ObjectMeta{Name: "longhorn", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner: longhorn.CSIDriver, Parameters: map[string]string{"recurringJobSelector": `[{"name":"snap-hourly","isGroup":false}]`}},
		&corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "shop"}},
		&corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop", UID: uid},
			Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: &className, VolumeName: "data-pv", AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
			Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
		&corev1.PersistentVolume{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"}, ObjectMeta: metav1.ObjectMeta{Name: "data-pv"},
			Spec: corev1.PersistentVolumeSpec{
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: "data-volume"}},
				ClaimRef:               &corev1.ObjectReference{Namespace: "shop", Name: "data", UID: uid},
			}},
		&longhorn.Volume{TypeMeta: metav1.TypeMeta{APIVersion: "longhorn.io/v1beta2", Kind: "Volume"},
			ObjectMeta: metav1.ObjectMeta{Name: "data-volume", Namespace: "longhorn-system", Labels: map[string]string{"recurring-job.longhorn.io/by-hand": "enabled"}},
			Status: longhorn.VolumeStatus{State: "attached", CurrentNodeID: "worker-1",
				KubernetesStatus: longhorn.KubernetesStatus{PVName: "data-pv", Namespace: "shop", PVCName: "data"}}},
		&longhorn.RecurringJob{TypeMeta: metav1.TypeMeta{APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob"},
			ObjectMeta: metav1.ObjectMeta{Name: "daily", Namespace: "longhorn-system"},
			Spec:       longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7, Groups: []string{"gold"}}},
		&corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Labels: map[string]string{corev1.LabelHostname: "worker-1"}}},
	}
	var documents []Document
	for _, object := range objects {
		data, err := json.Marshal(object)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseDocuments(data, object.GetName())
		if err != nil {
			t.Fatal(err)
		}
		documents = append(documents, parsed...)
	}
	cached := lookuptest.FakeClientBuilder(t).WithObjects(objects...).Build()
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlabels:\n  rules:\n    - {name: all, jobs: [daily, weekly], groups: [gold]}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]lookup.Reader{"cluster": lookup.Cache{Client: cached, Pods: noPods{}}, "offline": takeInventory(documents)}
	gather := func(reader lookup.Reader) map[string]any {
		ctx := context.Background()
		facts := map[string]any{}
		for _, name := range []string{"new", "data"} {
			pvc, err := reader.PVC(ctx, "shop", name)
			if err != nil || pvc == nil {
				t.Fatalf("PVC %s: %v, %v", name, pvc, err)
			}
			env, err := lookup.PVCEnvironment(ctx, reader, "shop", pvc, config)
			if err != nil {
				t.Fatal(err)
			}
			env.Offline = false
			facts["environment of "+name] = env
			facts["decision for "+name] = policies.DecidePVCLabels(pvc, env, config.LabelRules())
		}
		volume, err := reader.Volume(ctx, "longhorn-system", "data-volume")
		if err != nil {
			t.Fatal(err)
		}
		if facts["PVC of the Volume"], err = lookup.PVCOfVolume(ctx, reader, volume); err != nil {
			t.Fatal(err)
		}
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: "shop"}}
		job.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		input, err := lookup.Placement(ctx, reader, "shop", job, config)
		if err != nil {
			t.Fatal(err)
		}
		input.Offline = false
		facts["placement input"] = input
		return facts
	}
	cluster, offline := gather(readers["cluster"]), gather(readers["offline"])
	// The fake client fills in what the API server would (resourceVersion); compare what decisions read.
	if diff := cmp.Diff(cluster, offline, cmp.Transformer("meta", func(meta metav1.ObjectMeta) metav1.ObjectMeta {
		meta.ResourceVersion = ""
		return meta
	}), cmp.Transformer("typeMeta", func(metav1.TypeMeta) metav1.TypeMeta { return metav1.TypeMeta{} })); diff != "" {
		t.Errorf("facts (-cluster +offline):\n%s", diff)
	}
}

// noPods is a cluster where no pod mounts any PVC.
type noPods struct{}

func (noPods) PodsMounting(string, string) ([]policies.MountingPod, error) { return nil, nil }
