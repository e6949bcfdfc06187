package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"
	"gomodules.xyz/jsonpatch/v2"
	jsonpatchv4 "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

const (
	dailyLabel  = "recurring-job.longhorn.io/daily"
	sourceLabel = "recurring-job.longhorn.io/source"
)

// racingAPIServer is a fake API server where another writer labels the object (other-1, other-2, ...)
// just before each of the sync's first races patches arrive. It answers a failed JSON-patch test the
// way kube-apiserver does (k8s.io/apiserver/pkg/endpoints/handlers/patch.go: 422 Invalid, the
// library's message dropped); the e2e suite checks that against the real one. With refuse, it refuses
// every patch as invalid without anyone else writing.
type racingAPIServer struct {
	races  int
	refuse bool
	// sent are the patches the sync sent, as sent; written the resourceVersions the other writer made.
	sent    [][]jsonpatch.Operation
	written []string
}

func (r *racingAPIServer) patch(ctx context.Context, c client.WithWatch, object client.Object, patch client.Patch, opts ...client.PatchOption) error {
	data, err := patch.Data(object)
	if err != nil {
		return err
	}
	var sent []jsonpatch.Operation
	if err := json.Unmarshal(data, &sent); err != nil {
		return err
	}
	r.sent = append(r.sent, sent)
	if r.refuse {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "PersistentVolumeClaim"}, object.GetName(),
			field.ErrorList{field.Invalid(field.NewPath("metadata", "labels"), "", "refused")})
	}
	if len(r.sent) <= r.races {
		other := object.DeepCopyObject().(client.Object)
		label := fmt.Sprintf(`{"metadata":{"labels":{"other-%d":"x"}}}`, len(r.sent))
		if err := c.Patch(ctx, other, client.RawPatch(types.MergePatchType, []byte(label))); err != nil {
			return err
		}
		r.written = append(r.written, other.GetResourceVersion())
	}
	err = c.Patch(ctx, object, patch, opts...)
	if errors.Is(err, jsonpatchv4.ErrTestFailed) {
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	}
	return err
}

// newSync is a label sync over a fake API server holding a Longhorn PVC db/data without labels, which
// the config's rule gives the job daily, and its Volume data-volume without labels; the PVC counts as
// a source, so the Volume wants the PVC's labels once it has them.
func newSync(t *testing.T, server *racingAPIServer, mode SyncMode, pvcLabels map[string]string) (*LabelSync, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	schemes := runtime.NewSchemeBuilder(clientgoscheme.AddToScheme, longhorn.AddToScheme)
	if err := schemes.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	class := "longhorn"
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "data", UID: "0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b", Labels: pvcLabels},
		Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: &class, VolumeName: "data-volume"},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "data-volume"},
		Spec: corev1.PersistentVolumeSpec{
			ClaimRef:               &corev1.ObjectReference{Namespace: "db", Name: "data", UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: "data-volume"}},
		},
	}
	volume := &longhorn.Volume{
		ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "data-volume"},
		Status:     longhorn.VolumeStatus{KubernetesStatus: longhorn.KubernetesStatus{Namespace: "db", PVCName: "data", PVName: "data-volume"}},
	}
	kube := fake.NewClientBuilder().WithScheme(scheme).
		// The rules' jobs and groups are looked up through serve's RecurringJob index.
		WithIndex(&longhorn.RecurringJob{}, lookup.RecurringJobProvides, lookup.RecurringJobProvidesValues).
		WithObjects(
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "db"}},
			&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver},
			pvc, pv, volume).
		WithInterceptorFuncs(interceptor.Funcs{Patch: server.patch}).
		Build()
	config, err := policies.ParseConfig([]byte(`apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: daily
      match: {namespaces: [db]}
      jobs: [daily]
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	return &LabelSync{
		Client:    kube,
		APIReader: kube,
		Config:    func() *policies.Config { return config },
		Mode:      mode,
		Writes:    rate.NewLimiter(rate.Inf, 1),
		Log:       logr.Discard(),
	}, kube
}

func labelsOf(t *testing.T, c client.Client, object client.Object) map[string]string {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(object), object); err != nil {
		t.Fatal(err)
	}
	return object.GetLabels()
}

// testedVersions are the resourceVersions the sent patches tested, in order.
func testedVersions(sent [][]jsonpatch.Operation) []any {
	var versions []any
	for _, patch := range sent {
		if len(patch) > 0 && patch[0].Operation == "test" && patch[0].Path == "/metadata/resourceVersion" {
			versions = append(versions, patch[0].Value)
		} else {
			versions = append(versions, "no test of the resourceVersion")
		}
	}
	return versions
}

func TestSyncDecidesAgainAfterAnotherWriterGotInFirst(t *testing.T) {
	cases := map[string]struct {
		pvcLabels  map[string]string
		reconcile  func(*LabelSync) reconcile.Func
		object     client.Object
		wantLabels map[string]string
	}{
		"a PVC": {
			reconcile: func(s *LabelSync) reconcile.Func { return s.ReconcilePVC },
			object:    &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "data"}},
			// The Volume had no recurring labels, so it was in Longhorn's default group and stays in it
			// (labels.keepDefaultGroup).
			wantLabels: map[string]string{"other-1": "x", dailyLabel: "enabled", sourceLabel: "enabled", "recurring-job-group.longhorn.io/default": "enabled"},
		},
		"a Volume": {
			pvcLabels:  map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
			reconcile:  func(s *LabelSync) reconcile.Func { return s.ReconcileVolume },
			object:     &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "data-volume"}},
			wantLabels: map[string]string{"other-1": "x", dailyLabel: "enabled"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			server := &racingAPIServer{races: 1}
			sync, kube := newSync(t, server, SyncOn, tc.pvcLabels)
			before := tc.object.DeepCopyObject().(client.Object)
			labelsOf(t, kube, before)
			request := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(tc.object)}
			if _, err := tc.reconcile(sync)(context.Background(), request); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if diff := cmp.Diff(tc.wantLabels, labelsOf(t, kube, tc.object)); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			// The first patch tested the version read, the second the version the other writer made.
			if diff := cmp.Diff([]any{before.GetResourceVersion(), server.written[0]}, testedVersions(server.sent)); diff != "" {
				t.Errorf("resourceVersions tested (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncGivesUpAfterThreeLostRaces(t *testing.T) {
	server := &racingAPIServer{races: 5}
	sync, kube := newSync(t, server, SyncOn, nil)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "data"}}
	_, err := sync.ReconcilePVC(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pvc)})
	if want := "PersistentVolumeClaim db/data changed 3 times between reading and patching its labels; trying again later"; err == nil || err.Error() != want {
		t.Errorf("reconcile error: got %v, want %q", err, want)
	}
	if len(server.sent) != 3 {
		t.Errorf("sent %d patches, want 3", len(server.sent))
	}
	if diff := cmp.Diff(map[string]string{"other-1": "x", "other-2": "x", "other-3": "x"}, labelsOf(t, kube, pvc)); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func TestSyncReturnsARefusalWithoutTryingAgain(t *testing.T) {
	server := &racingAPIServer{refuse: true}
	sync, kube := newSync(t, server, SyncOn, nil)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "data"}}
	_, err := sync.ReconcilePVC(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pvc)})
	if !apierrors.IsInvalid(err) {
		t.Errorf("reconcile error: got %v, want the API server's refusal", err)
	}
	if len(server.sent) != 1 {
		t.Errorf("sent %d patches, want 1", len(server.sent))
	}
	if labels := labelsOf(t, kube, pvc); labels != nil {
		t.Errorf("labels: got %v, want none", labels)
	}
}

func TestDryRunSyncSendsNothing(t *testing.T) {
	server := &racingAPIServer{races: 1}
	sync, kube := newSync(t, server, SyncDryRun, nil)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "data"}}
	if _, err := sync.ReconcilePVC(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pvc)}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(server.sent) != 0 {
		t.Errorf("a dry run sent %d patches", len(server.sent))
	}
	if labels := labelsOf(t, kube, pvc); labels != nil {
		t.Errorf("labels: got %v, want none", labels)
	}
}
