package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/webhook"
)

// decisions reads backupguard_admission_decisions_total for one webhook, by verdict, from the registry
// serve exports.
func decisions(t *testing.T, name string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, family := range families {
		if family.GetName() != "backupguard_admission_decisions_total" {
			continue
		}
		for _, metric := range family.GetMetric() {
			labels := map[string]string{}
			for _, label := range metric.GetLabel() {
				labels[label.GetName()] = label.GetValue()
			}
			if labels["webhook"] == name {
				counts[labels["verdict"]] = metric.GetCounter().GetValue()
			}
		}
	}
	return counts
}

// counted returns how the counts moved between two reads.
func counted(before, after map[string]float64) map[string]float64 {
	moved := map[string]float64{}
	for verdict, count := range after {
		if count != before[verdict] {
			moved[verdict] = count - before[verdict]
		}
	}
	return moved
}

func TestAdmissionCountsDecisionsByVerdict(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "longhorn.io", Kind: "RecurringJob"}, "daily",
		field.ErrorList{field.Invalid(field.NewPath("spec", "retain"), 0, "must be at least 1")}).ErrStatus
	allowedWithWarning := admission.Allowed("")
	allowedWithWarning.Warnings = []string{"retain 1 keeps a single backup"}
	cases := map[string]struct {
		response admission.Response
		want     string
	}{
		"an allowed object":                      {response: admission.Allowed(""), want: "allowed"},
		"an allowed patch":                       {response: admission.Patched(""), want: "allowed"},
		"an object allowed with a warning":       {response: allowedWithWarning, want: "warned"},
		"an object a rule refused (422 Invalid)": {response: admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &invalid}}, want: "denied"},
		"an object refused as forbidden (403)":   {response: admission.Denied("not here"), want: "denied"},
		"a malformed request (400)":              {response: admission.Errored(http.StatusBadRequest, errors.New("not a RecurringJob")), want: "errored"},
		"a lookup that failed (500)":             {response: admission.Errored(http.StatusInternalServerError, errors.New("cache not synced")), want: "errored"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			endpoint := webhook.Admission(admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
				return tc.response
			}))
			before := decisions(t, "other")
			endpoint.Handle(context.Background(), admission.Request{})
			if diff := cmp.Diff(map[string]float64{tc.want: 1}, counted(before, decisions(t, "other"))); diff != "" {
				t.Errorf("decisions counted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdmissionCountsUnderTheWebhooksName(t *testing.T) {
	endpoint := webhook.Admission(&webhook.VolumeLabeler{})
	// Every verdict is exported from registration on, at zero, so a rate sees the first denial.
	for _, verdict := range []string{"allowed", "warned", "denied", "errored"} {
		if _, ok := decisions(t, "volumes")[verdict]; !ok {
			t.Errorf("no series for verdict %q of the volumes webhook after registration", verdict)
		}
	}
	before := decisions(t, "volumes")
	endpoint.Handle(context.Background(), admissionRequest(t,
		`{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{}}`))
	if diff := cmp.Diff(map[string]float64{"errored": 1}, counted(before, decisions(t, "volumes"))); diff != "" {
		t.Errorf("decisions counted (-want +got):\n%s", diff)
	}
}
