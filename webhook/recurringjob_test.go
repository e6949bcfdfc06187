package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/webhook"
)

var recurringJobGroupKind = schema.GroupKind{Group: "longhorn.io", Kind: "RecurringJob"}

const recurringJobKind = `{"group":"longhorn.io","version":"v1beta2","kind":"RecurringJob"}`

const detachedWarning = "detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"

// requestJSON is the JSON of an AdmissionRequest as the API server sends it; object is left out when empty.
func requestJSON(operation, namespace, kind, object string) string {
	raw := fmt.Sprintf(`{"uid":"0b3c2a5e-3f6d-4a55-9d57-1c1b8f0e4a11","kind":%s,`+
		`"resource":{"group":"longhorn.io","version":"v1beta2","resource":"recurringjobs"},"name":"daily","namespace":%q,"operation":%q,`+
		`"userInfo":{"username":"flux"}`, kind, namespace, operation)
	if object != "" {
		raw += `,"object":` + object
	}
	return raw + "}"
}

// jobJSON is a RecurringJob object with the given name and spec.
func jobJSON(name, spec string) string {
	return fmt.Sprintf(`{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":%q,"namespace":"longhorn-system"},"spec":%s}`, name, spec)
}

const dailySpec = `{"task":"backup","cron":"0 2 * * *","retain":7,"concurrency":2}`

func setting(name, value string) *longhorn.Setting {
	return &longhorn.Setting{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: name}, Value: value}
}

func allowed(warnings ...string) admission.Response {
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed:  true,
		Result:   &metav1.Status{Code: 200},
		Warnings: warnings,
	}}
}

func invalid(name string, errs field.ErrorList, warnings ...string) admission.Response {
	status := apierrors.NewInvalid(recurringJobGroupKind, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed:  false,
		Result:   &status,
		Warnings: warnings,
	}}
}

func errored(code int32, message string) admission.Response {
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result:  &metav1.Status{Code: code, Message: message},
	}}
}

func TestRecurringJobValidatorHandle(t *testing.T) {
	spec := field.NewPath("spec")
	cases := map[string]struct {
		request   string
		objects   []client.Object
		intercept *interceptor.Funcs
		config    func(*policies.Config)
		want      admission.Response
	}{
		"a valid job is allowed with the detached-volume warning": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			want:    allowed(detachedWarning),
		},
		"a valid update is allowed too": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			want:    allowed(detachedWarning),
		},
		"an invalid cron is denied as Invalid with its cause": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * 7","retain":7}`)),
			want: invalid("daily", field.ErrorList{
				field.Invalid(spec.Child("cron"), "0 2 * * 7", "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)"),
			}, detachedWarning),
		},
		"the request's namespace counts, not the object's": {
			request: requestJSON("CREATE", "default", recurringJobKind, jobJSON("daily", dailySpec)),
			want: invalid("daily", field.ErrorList{
				field.Invalid(field.NewPath("metadata", "namespace"), "default", `RecurringJobs must be in the Longhorn namespace "longhorn-system": Longhorn ignores them anywhere else`),
			}, detachedWarning),
		},
		"a ConfigMap is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", `{"group":"","version":"v1","kind":"ConfigMap"}`, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"daily"}}`),
			want:    errored(400, "this endpoint validates RecurringJob.longhorn.io, not /v1, Kind=ConfigMap"),
		},
		"another version of RecurringJob is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", `{"group":"longhorn.io","version":"v1beta1","kind":"RecurringJob"}`, jobJSON("daily", dailySpec)),
			want:    errored(400, "this endpoint validates longhorn.io/v1beta2, Kind=RecurringJob, not longhorn.io/v1beta1, Kind=RecurringJob"),
		},
		"an object that is not a JSON object is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, `"daily"`),
			want:    errored(400, "the object is not a JSON object: json: cannot unmarshal string into Go value of type map[string]interface {}"),
		},
		"a list as the object is a bad request": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, `[`+jobJSON("daily", dailySpec)+`]`),
			want:    errored(400, "the object is not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}"),
		},
		"a CREATE without an object is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, ""),
			want:    errored(400, "the CREATE request carries no object"),
		},
		"a null object is no object": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, "null"),
			want:    errored(400, "the UPDATE request carries no object"),
		},
		"an unknown spec field is denied as Forbidden": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":7,"retention":7}`)),
			want: invalid("daily", field.ErrorList{
				field.Forbidden(spec.Child("retention"), "unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, task"),
			}),
		},
		"a parameter that is not a string is denied as TypeInvalid": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":7,"parameters":{"full-backup-interval":5}}`)),
			want: invalid("daily", field.ErrorList{
				field.TypeInvalid(spec.Child("parameters").Key("full-backup-interval"), int64(5), `must be a string; quote it in YAML: "5"`),
			}),
		},
		"an object without a name is denied with metadata.name required": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind,
				`{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"namespace":"longhorn-system"},"spec":`+dailySpec+`}`),
			want: invalid("", field.ErrorList{
				field.Required(field.NewPath("metadata", "name"), `a lower-case name such as "daily-backup"`),
			}, detachedWarning),
		},
		"a DELETE is allowed without looking at the object": {
			request: requestJSON("DELETE", "longhorn-system", recurringJobKind, ""),
			want:    allowed(),
		},
		"the cluster's maximum retention is enforced": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":50}`)),
			objects: []client.Object{setting("recurring-job-max-retention", "20")},
			want: invalid("daily", field.ErrorList{
				field.Invalid(spec.Child("retain"), 50, "must be at most 20 (the Longhorn setting recurring-job-max-retention)"),
			}, detachedWarning),
		},
		"the cluster's detached-volume setting silences the warning": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			objects: []client.Object{setting("allow-recurring-job-while-volume-detached", `{"v1":"true","v2":"false"}`)},
			want:    allowed(),
		},
		"an unreadable Setting is warned about before the job's warnings": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			objects: []client.Object{setting("recurring-job-max-retention", "many")},
			want: allowed(
				`the Longhorn setting recurring-job-max-retention has value "many", which is not a number from 1 to 250; using Longhorn's default 100`,
				detachedWarning,
			),
		},
		"Settings are read from the configured Longhorn namespace": {
			request: requestJSON("CREATE", "storage", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":50}`)),
			objects: []client.Object{
				setting("recurring-job-max-retention", "20"),
				&longhorn.Setting{ObjectMeta: metav1.ObjectMeta{Namespace: "storage", Name: "recurring-job-max-retention"}, Value: "40"},
			},
			config: func(c *policies.Config) { c.Longhorn.Namespace = "storage" },
			want: invalid("daily", field.ErrorList{
				field.Invalid(spec.Child("retain"), 50, "must be at most 40 (the Longhorn setting recurring-job-max-retention)"),
			}, detachedWarning),
		},
		"a failed Setting lookup is a server error, not a verdict": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			intercept: &interceptor.Funcs{
				Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
					return errors.New("the cache is not synced")
				},
			},
			want: errored(500, "reading Longhorn setting longhorn-system/recurring-job-max-retention: the cache is not synced"),
		},
		"a failed lookup of the second Setting is a server error too": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			intercept: &interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if key.Name == longhorn.SettingAllowRecurringJobWhileVolumeDetached {
						return apierrors.NewForbidden(schema.GroupResource{Group: "longhorn.io", Resource: "settings"}, key.Name, errors.New("RBAC"))
					}
					return c.Get(ctx, key, obj, opts...)
				},
			},
			want: errored(500, `reading Longhorn setting longhorn-system/allow-recurring-job-while-volume-detached: settings.longhorn.io "allow-recurring-job-while-volume-detached" is forbidden: RBAC`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := longhorn.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			var reader client.WithWatch = fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).Build()
			if tc.intercept != nil {
				reader = interceptor.NewClient(reader, *tc.intercept)
			}
			validator := &webhook.RecurringJobValidator{
				Reader: reader,
				Config: func() *policies.Config {
					config := policies.DefaultConfig()
					if tc.config != nil {
						tc.config(config)
					}
					return config
				},
				Clock: clocktesting.NewFakePassiveClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
			}
			var req admission.Request
			if err := json.Unmarshal([]byte(tc.request), &req.AdmissionRequest); err != nil {
				t.Fatalf("request JSON: %v", err)
			}
			got := validator.Handle(context.Background(), req)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecurringJobValidatorInvalidStatus pins the status kubectl and Flux show for a denied job, field
// for field, so a change in how verdicts are encoded cannot slip through the helpers above.
func TestRecurringJobValidatorInvalidStatus(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := longhorn.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	validator := &webhook.RecurringJobValidator{
		Reader: fake.NewClientBuilder().WithScheme(scheme).Build(),
		Config: policies.DefaultConfig,
		Clock:  clocktesting.NewFakePassiveClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
	}
	var req admission.Request
	raw := requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":"7","extra":1}`))
	if err := json.Unmarshal([]byte(raw), &req.AdmissionRequest); err != nil {
		t.Fatal(err)
	}
	want := &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    422,
		Reason:  metav1.StatusReasonInvalid,
		Message: `RecurringJob.longhorn.io "daily" is invalid: [spec.extra: Forbidden: unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, task, spec.retain: Invalid value: "7": must be a whole number, not a string: remove the quotes]`,
		Details: &metav1.StatusDetails{
			Name:  "daily",
			Group: "longhorn.io",
			Kind:  "RecurringJob",
			Causes: []metav1.StatusCause{
				{Type: metav1.CauseTypeForbidden, Field: "spec.extra", Message: "Forbidden: unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, task"},
				{Type: metav1.CauseTypeTypeInvalid, Field: "spec.retain", Message: `Invalid value: "7": must be a whole number, not a string: remove the quotes`},
			},
		},
	}
	got := validator.Handle(context.Background(), req)
	if got.Allowed {
		t.Errorf("allowed: got true, want false")
	}
	if diff := cmp.Diff(want, got.Result); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}
