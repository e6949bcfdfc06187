package webhook_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/webhook"
)

func TestJobPlacerHandle(t *testing.T) {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop", UID: "5f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f"},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeName: "pvc-1"},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"}, Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: "pvc-1"}},
		ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "data", UID: "5f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f"},
	}}
	volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Namespace: "longhorn-system"}, Status: longhorn.VolumeStatus{State: "attached", CurrentNodeID: "worker-2"}}
	workerNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-2", Labels: map[string]string{corev1.LabelHostname: "worker-2"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "storage", Value: "only", Effect: corev1.TaintEffectNoSchedule}}}}
	jobRequest := func(labels string) string {
		return `{"uid":"9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d","kind":{"group":"batch","version":"v1","kind":"Job"},` +
			`"resource":{"group":"batch","version":"v1","resource":"jobs"},"namespace":"shop","operation":"CREATE",` +
			`"object":{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"backup","labels":` + labels + `},"spec":{"template":{"spec":{` +
			`"restartPolicy":"Never","containers":[{"name":"restic","image":"restic"}],"volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"data"}}]}}}}}`
	}
	cases := map[string]struct {
		request string
		want    admission.Response
	}{
		"a backup Job gets the exact affinity and toleration patch": {
			request: jobRequest(`{"backupguard.io/backup-job":"true"}`),
			want: patchedResponse(nil,
				jsonpatch.Operation{Operation: "add", Path: "/spec/template/spec/affinity", Value: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"worker-2"}},
					}}}},
				}}},
				jsonpatch.Operation{Operation: "add", Path: "/spec/template/spec/tolerations", Value: []corev1.Toleration{
					{Key: "storage", Operator: corev1.TolerationOpEqual, Value: "only", Effect: corev1.TaintEffectNoSchedule},
				}},
			),
		},
		"a Job the config does not select is allowed untouched": {
			request: jobRequest(`{"app":"web"}`),
			want:    allowed(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			placer := &webhook.JobPlacer{
				Reader: lookup.Cache{Client: labelClient(t, nil, []client.Object{pvc, pv, volume, workerNode}...), Pods: noPods{}},
				Config: func() *policies.Config { return policies.DefaultConfig() },
			}
			got := placer.Handle(context.Background(), admissionRequest(t, tc.request))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

// noPods is a cluster where no pod mounts any PVC.
type noPods struct{}

func (noPods) PodsMounting(string, string) ([]policies.MountingPod, error) { return nil, nil }
