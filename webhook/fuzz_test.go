package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/webhook"
)

// fuzzHandlers are the four admission endpoints, each over a small fake cluster.
func fuzzHandlers(t testing.TB) map[string]admission.Handler {
	config, err := policies.ParseConfig([]byte(labelsConfig), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop", UID: "1234"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &longhornClass.Name, VolumeName: "pvc-1234", AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}
	volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1234", Namespace: "longhorn-system"}}
	objects := []client.Object{longhornClass, pvc, volume, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}
	reader := lookup.Cache{Client: lookupFakeClient(t, objects...), Pods: noPods{}}
	configOf := func() *policies.Config { return config }
	return map[string]admission.Handler{
		webhook.RecurringJobPath: &webhook.RecurringJobValidator{Reader: reader.Client, Config: configOf, Clock: clocktesting.NewFakePassiveClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)), Log: logr.Discard()},
		webhook.PVCPath:          &webhook.PVCLabeler{Reader: reader, Config: configOf},
		webhook.VolumePath:       &webhook.VolumeLabeler{Reader: reader},
		webhook.JobPath:          &webhook.JobPlacer{Reader: reader, Config: configOf},
	}
}

func lookupFakeClient(t testing.TB, objects ...client.Object) client.Client {
	return lookuptest.FakeClientBuilder(t).WithObjects(objects...).Build()
}

// FuzzAdmissionReviews sends arbitrary request bodies to every endpoint through the same AdmissionReview
// handling serve uses (webhook.Admission). Whatever arrives, the answer is an HTTP status and, for a
// 200, a well-formed AdmissionReview answering the request's uid; a handler must never panic (each
// handler is also called directly, where a panic would not be recovered by the framework).
func FuzzAdmissionReviews(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)) + `}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + updateJSON("flux", jobJSON("daily", dailySpec), jobJSON("daily", `{"task":"backup","cron":"0 2 * * 7","retain":0}`), false) + `}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"PersistentVolumeClaim"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data","namespace":"shop","labels":{"recurring-job.longhorn.io/x":"yes"}},"spec":{"storageClassName":"longhorn","volumeName":"pvc-1234"}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"longhorn.io","version":"v1beta2","kind":"Volume"},"namespace":"longhorn-system","operation":"CREATE","object":{"apiVersion":"longhorn.io/v1beta2","kind":"Volume","metadata":{"name":"pvc-1234","namespace":"longhorn-system"},"status":{"kubernetesStatus":{"namespace":"shop","pvcName":"data","lastPVCRefAt":""}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"batch","version":"v1","kind":"Job"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"b","namespace":"shop","labels":{"backupguard.io/backup-job":"true"}},"spec":{"template":{"spec":{"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}}]}}}}}}`))
	f.Add([]byte(`{"request":{"uid":"x","kind":{"kind":"RecurringJob","group":"longhorn.io","version":"v1beta2"},"operation":"UPDATE","object":null,"oldObject":[]}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{0xff, 0xfe, '{'})
	handlers := fuzzHandlers(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for path, handler := range handlers {
			recorder := httptest.NewRecorder()
			request := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			request.Header.Set("Content-Type", "application/json")
			webhook.Admission(handler).ServeHTTP(recorder, request)
			if recorder.Code != http.StatusOK {
				if recorder.Code < 400 || recorder.Code > 599 {
					t.Fatalf("%s: HTTP %d, want 200 or an error status", path, recorder.Code)
				}
				continue
			}
			review := admissionv1.AdmissionReview{}
			if err := json.Unmarshal(recorder.Body.Bytes(), &review); err != nil || review.Response == nil {
				t.Fatalf("%s: a 200 that is not an AdmissionReview with a response: %q (%v)", path, recorder.Body.String(), err)
			}
			var sent admissionv1.AdmissionReview
			if json.Unmarshal(body, &sent) == nil && sent.Request != nil && review.Response.UID != sent.Request.UID {
				t.Fatalf("%s: response uid %q, request uid %q", path, review.Response.UID, sent.Request.UID)
			}
			if sent.Request != nil {
				// Straight to the handler, where nothing recovers a panic.
				_ = handler.Handle(context.Background(), admission.Request{AdmissionRequest: *sent.Request})
			}
		}
	})
}
