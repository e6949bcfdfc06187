package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/webhook"
)

const labelsConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: shop
      match: {namespaces: [shop]}
      jobs: [nightly]
      groups: [critical]
`

func labelClient(t *testing.T, funcs *interceptor.Funcs, objects ...client.Object) client.Client {
	t.Helper()
	builder := lookuptest.FakeClientBuilder(t).WithObjects(objects...)
	if funcs != nil {
		builder = builder.WithInterceptorFuncs(*funcs)
	}
	return builder.Build()
}

func parsedConfig(t *testing.T, text string) func() *policies.Config {
	t.Helper()
	config, err := policies.ParseConfig([]byte(text), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return func() *policies.Config { return config }
}

func admissionRequest(t *testing.T, raw string) admission.Request {
	t.Helper()
	request := admission.Request{}
	if err := json.Unmarshal([]byte(raw), &request.AdmissionRequest); err != nil {
		t.Fatal(err)
	}
	return request
}

func patchedResponse(warnings []string, operations ...jsonpatch.Operation) admission.Response {
	patchType := admissionv1.PatchTypeJSONPatch
	return admission.Response{Patches: operations, AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, PatchType: &patchType, Warnings: warnings}}
}

var longhornClass = &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: "driver.longhorn.io"}

func TestPVCLabelerHandle(t *testing.T) {
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	nightly := &longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "longhorn-system"}, Spec: longhorn.RecurringJobSpec{Groups: []string{"critical"}}}
	pvcRequest := `{"uid":"5a0e7a56-98a4-4b3e-8b5e-0d3f1b2c3d4e","kind":{"group":"","version":"v1","kind":"PersistentVolumeClaim"},` +
		`"resource":{"group":"","version":"v1","resource":"persistentvolumeclaims"},"namespace":"shop","operation":"CREATE",` +
		`"object":{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data","namespace":"shop","labels":{"app":"db"}},` +
		`"spec":{"storageClassName":"longhorn","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}}`
	cases := map[string]struct {
		objects []client.Object
		funcs   *interceptor.Funcs
		request string
		want    admission.Response
	}{
		"a matching Longhorn PVC gets the exact label patch, keeping the default group its Volume will have": {
			objects: []client.Object{shop, longhornClass, nightly},
			request: pvcRequest,
			want: patchedResponse(nil,
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1critical", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1default", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1nightly", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1source", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{
					"backupguard.io/managed-labels": "recurring-job-group.longhorn.io/critical,recurring-job-group.longhorn.io/default,recurring-job.longhorn.io/nightly,recurring-job.longhorn.io/source",
				}},
			),
		},
		"without the RecurringJob the patch comes with warnings": {
			objects: []client.Object{shop, longhornClass},
			request: pvcRequest,
			want: patchedResponse([]string{
				`rule "shop" names recurring job "nightly", but no RecurringJob has that name: nothing will run for it`,
				`rule "shop" names group "critical", but no RecurringJob is in that group: nothing will run for it`,
			},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1critical", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1default", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1nightly", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1source", Value: "enabled"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{
					"backupguard.io/managed-labels": "recurring-job-group.longhorn.io/critical,recurring-job-group.longhorn.io/default,recurring-job.longhorn.io/nightly,recurring-job.longhorn.io/source",
				}},
			),
		},
		"a failed lookup admits the PVC unlabelled with a warning, never denies it": {
			objects: []client.Object{shop, longhornClass},
			funcs: &interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				return errors.New("cache not ready")
			}},
			request: pvcRequest,
			want:    allowed("backupguard could not decide the recurring-job labels (reading namespace shop: cache not ready); its background sync will add them"),
		},
		"a RecurringJob sent to the PVC endpoint is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			want:    errored(400, "this endpoint labels PersistentVolumeClaims, not longhorn.io/v1beta2, Kind=RecurringJob"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			labeler := &webhook.PVCLabeler{Reader: lookup.Cache{Client: labelClient(t, tc.funcs, tc.objects...)}, Config: parsedConfig(t, labelsConfig)}
			got := labeler.Handle(context.Background(), admissionRequest(t, tc.request))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVolumeLabelerHandle(t *testing.T) {
	const uid = "7c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	sourcePVC := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop", UID: uid, Labels: map[string]string{
		"app": "db", "recurring-job.longhorn.io/source": "enabled", "recurring-job.longhorn.io/nightly": "enabled",
	}}}
	volumeRequest := func(name, labels string) string {
		return `{"uid":"1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b","kind":{"group":"longhorn.io","version":"v1beta2","kind":"Volume"},` +
			`"resource":{"group":"longhorn.io","version":"v1beta2","resource":"volumes"},"namespace":"longhorn-system","operation":"CREATE",` +
			`"object":{"apiVersion":"longhorn.io/v1beta2","kind":"Volume","metadata":{"name":"` + name + `","namespace":"longhorn-system","labels":` + labels + `},` +
			`"spec":{"size":"1073741824","numberOfReplicas":3,"frontend":"blockdev"}}}`
	}
	cases := map[string]struct {
		objects []client.Object
		request string
		want    admission.Response
	}{
		"a new Volume named after its source PVC's uid gets the PVC's recurring labels": {
			objects: []client.Object{sourcePVC},
			request: volumeRequest("pvc-"+uid, `{"longhornvolume":"pvc-`+uid+`","recurring-job-group.longhorn.io/default":"enabled"}`),
			want: patchedResponse(nil,
				jsonpatch.Operation{Operation: "remove", Path: "/metadata/labels/recurring-job-group.longhorn.io~1default"},
				jsonpatch.Operation{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1nightly", Value: "enabled"},
			),
		},
		"a Volume whose PVC is gone is left alone": {
			request: volumeRequest("pvc-"+uid, `{"recurring-job.longhorn.io/by-hand":"enabled"}`),
			want:    allowed(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			labeler := &webhook.VolumeLabeler{Reader: lookup.Cache{Client: labelClient(t, nil, tc.objects...)}}
			got := labeler.Handle(context.Background(), admissionRequest(t, tc.request))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}
