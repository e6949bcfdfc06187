package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
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

// updateJSON is the JSON of an UPDATE AdmissionRequest by user, replacing old with object.
func updateJSON(user, old, object string, dryRun bool) string {
	return fmt.Sprintf(`{"uid":"0b3c2a5e-3f6d-4a55-9d57-1c1b8f0e4a11","kind":%s,`+
		`"resource":{"group":"longhorn.io","version":"v1beta2","resource":"recurringjobs"},"name":"daily","namespace":"longhorn-system","operation":"UPDATE",`+
		`"userInfo":{"username":%q},"object":%s,"oldObject":%s,"dryRun":%t}`, recurringJobKind, user, object, old, dryRun)
}

// createJSON is the JSON of a CREATE AdmissionRequest by user.
func createJSON(user, object string, dryRun bool) string {
	return fmt.Sprintf(`{"uid":"0b3c2a5e-3f6d-4a55-9d57-1c1b8f0e4a11","kind":%s,`+
		`"resource":{"group":"longhorn.io","version":"v1beta2","resource":"recurringjobs"},"name":"daily","namespace":"longhorn-system","operation":"CREATE",`+
		`"userInfo":{"username":%q},"object":%s,"dryRun":%t}`, recurringJobKind, user, object, dryRun)
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
			request: updateJSON("flux", jobJSON("daily", dailySpec), jobJSON("daily", `{"task":"backup","cron":"0 3 * * *","retain":7,"concurrency":2}`), false),
			want:    allowed(detachedWarning),
		},
		"an UPDATE without its old object is a bad request": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, jobJSON("daily", dailySpec)),
			want:    errored(400, "the UPDATE request's old object: the request carries no old object"),
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
			want:    errored(400, "the CREATE request's object: not a JSON object: json: cannot unmarshal string into Go value of type map[string]interface {}"),
		},
		"a list as the object is a bad request": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, `[`+jobJSON("daily", dailySpec)+`]`),
			want:    errored(400, "the UPDATE request's object: not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}"),
		},
		"a CREATE without an object is a bad request": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, ""),
			want:    errored(400, "the CREATE request's object: the request carries no object"),
		},
		"a null object is no object": {
			request: requestJSON("UPDATE", "longhorn-system", recurringJobKind, "null"),
			want:    errored(400, "the UPDATE request's object: the request carries no object"),
		},
		"a field backupguard does not know is the installed CRD's business, not a denial": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":7,"retentionWindow":"7d"}`)),
			want:    allowed(detachedWarning),
		},
		"Longhorn v1.13's age-based retention is understood: retain rules step aside": {
			request: requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily",
				`{"task":"backup","cron":"0 2 * * *","retain":1,"retentionPolicy":"age-based","retainAge":"720h","parameters":{"full-backup-interval":"7"}}`)),
			want: allowed(detachedWarning),
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
			assertHandled(t, validator, tc.request, tc.want)
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
	raw := requestJSON("CREATE", "longhorn-system", recurringJobKind, jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":"7","concurrency":-1,"extra":1}`))
	if err := json.Unmarshal([]byte(raw), &req.AdmissionRequest); err != nil {
		t.Fatal(err)
	}
	want := &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    422,
		Reason:  metav1.StatusReasonInvalid,
		Message: `RecurringJob.longhorn.io "daily" is invalid: spec.retain: Invalid value: "7": must be a whole number, not a string: remove the quotes`,
		Details: &metav1.StatusDetails{
			Name:  "daily",
			Group: "longhorn.io",
			Kind:  "RecurringJob",
			Causes: []metav1.StatusCause{
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

// TestRecurringJobValidatorRatchetsAndTrusts covers the writes that must never be refused over an old
// violation or when Longhorn itself writes, and what is recorded when a violation is let through.
func TestRecurringJobValidatorRatchetsAndTrusts(t *testing.T) {
	const longhornSA = "system:serviceaccount:longhorn-system:longhorn-service-account"
	spec := field.NewPath("spec")
	// retain 3 with a full-backup interval of 7 breaks the interval rule.
	brokenSpec := `{"task":"backup","cron":"0 2 * * *","retain":3,"concurrency":2,"parameters":{"full-backup-interval":"7"}}`
	intervalViolation := field.Invalid(spec.Child("retain"), 3, "must be greater than parameters[full-backup-interval] (7), so that the 3 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8")
	terminating := `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"daily","namespace":"longhorn-system","uid":"5c1f","deletionTimestamp":"2026-11-21T11:00:00Z","finalizers":["foregroundDeletion"]},"spec":` + brokenSpec + `}`
	finalizerRemoved := `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"daily","namespace":"longhorn-system","uid":"5c1f","deletionTimestamp":"2026-11-21T11:00:00Z"},"spec":` + brokenSpec + `}`
	labelled := `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"daily","namespace":"longhorn-system","uid":"5c1f","labels":{"team":"storage"}},"spec":` + brokenSpec + `}`
	cases := map[string]struct {
		request string
		// config is added to a minimal config file.
		config     string
		want       admission.Response
		wantEvents []string
	}{
		"the garbage collector removing the foregroundDeletion finalizer of an invalid job is allowed": {
			request: updateJSON("system:serviceaccount:kube-system:generic-garbage-collector", terminating, finalizerRemoved, false),
			want:    allowed(),
		},
		"a metadata-only update of an invalid job is allowed without a word": {
			request: updateJSON("flux", jobJSON("daily", brokenSpec), labelled, false),
			want:    allowed(),
		},
		"a spec update that keeps an old violation is allowed, with the old violation as a warning": {
			request: updateJSON("flux", jobJSON("daily", brokenSpec), jobJSON("daily", `{"task":"backup","cron":"0 3 * * *","retain":3,"concurrency":2,"parameters":{"full-backup-interval":"7"}}`), false),
			want:    allowed(detachedWarning, intervalViolation.Error()+" (already so before this update, so not refused)"),
		},
		"a spec update that adds a violation is refused for the new one only": {
			request: updateJSON("flux", jobJSON("daily", brokenSpec), jobJSON("daily", `{"task":"backup","cron":"0 2 * * 7","retain":3,"concurrency":2,"parameters":{"full-backup-interval":"7"}}`), false),
			want: invalid("daily", field.ErrorList{
				field.Invalid(spec.Child("cron"), "0 2 * * 7", "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)"),
			}, detachedWarning, intervalViolation.Error()+" (already so before this update, so not refused)"),
		},
		"changing the value of a field that was already wrong is a new violation": {
			request: updateJSON("flux", jobJSON("daily", brokenSpec), jobJSON("daily", `{"task":"backup","cron":"0 2 * * *","retain":4,"concurrency":2,"parameters":{"full-backup-interval":"7"}}`), false),
			want: invalid("daily", field.ErrorList{
				field.Invalid(spec.Child("retain"), 4, "must be greater than parameters[full-backup-interval] (7), so that the 4 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8"),
			}, detachedWarning),
		},
		"Longhorn's own service account is never refused, and the violation is recorded": {
			request: createJSON(longhornSA, jobJSON("daily", brokenSpec), false),
			want: allowed(detachedWarning,
				intervalViolation.Error()+" (not refused: written by "+longhornSA+", a trusted writer in recurringJobs.trustedWriters)"),
			wantEvents: []string{"Warning RuleViolationAllowed CREATE by " + longhornSA + " allowed although it breaks backupguard's rules (trusted-writer): " + intervalViolation.Error()},
		},
		"a dry run by a trusted writer records no Event": {
			request: createJSON(longhornSA, jobJSON("daily", brokenSpec), true),
			want: allowed(detachedWarning,
				intervalViolation.Error()+" (not refused: written by "+longhornSA+", a trusted writer in recurringJobs.trustedWriters)"),
		},
		"an emptied trusted-writer list trusts nobody": {
			request: createJSON(longhornSA, jobJSON("daily", brokenSpec), false),
			config:  "recurringJobs: {trustedWriters: []}\n",
			want:    invalid("daily", field.ErrorList{intervalViolation}, detachedWarning),
		},
		"with enforcement Warn nothing is refused": {
			request:    createJSON("flux", jobJSON("daily", brokenSpec), false),
			config:     "recurringJobs: {enforcement: Warn}\n",
			want:       allowed(detachedWarning, intervalViolation.Error()+" (not refused: recurringJobs.enforcement is Warn)"),
			wantEvents: []string{"Warning RuleViolationAllowed CREATE by flux allowed although it breaks backupguard's rules (warn-only): " + intervalViolation.Error()},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := longhorn.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			recorder := events.NewFakeRecorder(10)
			validator := &webhook.RecurringJobValidator{
				Reader: fake.NewClientBuilder().WithScheme(scheme).Build(),
				Config: func() *policies.Config {
					config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"+tc.config), "c.yaml")
					if err != nil {
						t.Fatal(err)
					}
					return config
				},
				Clock:    clocktesting.NewFakePassiveClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
				Recorder: recorder,
				Log:      logr.Discard(),
			}
			assertHandled(t, validator, tc.request, tc.want)
			var recorded []string
			for len(recorder.Events) > 0 {
				recorded = append(recorded, <-recorder.Events)
			}
			if diff := cmp.Diff(tc.wantEvents, recorded); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// assertHandled sends the AdmissionRequest JSON to the handler and compares the whole response.
func assertHandled(t *testing.T, handler admission.Handler, request string, want admission.Response) {
	t.Helper()
	var req admission.Request
	if err := json.Unmarshal([]byte(request), &req.AdmissionRequest); err != nil {
		t.Fatalf("request JSON: %v", err)
	}
	if diff := cmp.Diff(want, handler.Handle(context.Background(), req)); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}
