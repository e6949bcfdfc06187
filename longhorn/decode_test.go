package longhorn_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

func TestDecodeJSONObject(t *testing.T) {
	cases := map[string]struct {
		raw     string
		want    map[string]any
		wantErr string
	}{
		"an object decodes with numbers kept as json.Number": {
			raw:  `{"kind":"RecurringJob","spec":{"retain":7,"ratio":0.5,"groups":["a"]}}`,
			want: map[string]any{"kind": "RecurringJob", "spec": map[string]any{"retain": json.Number("7"), "ratio": json.Number("0.5"), "groups": []any{"a"}}},
		},
		"whitespace around the object is fine": {
			raw:  " \n{\"a\":\"b\"}\n\t ",
			want: map[string]any{"a": "b"},
		},
		"an empty object is an object": {
			raw:  `{}`,
			want: map[string]any{},
		},
		"null is not an object": {
			raw:     `null`,
			wantErr: "expected a JSON object, got null",
		},
		"an array is not an object": {
			raw:     `[{"a":"b"}]`,
			wantErr: "json: cannot unmarshal array into Go value of type map[string]interface {}",
		},
		"a string is not an object": {
			raw:     `"daily"`,
			wantErr: "json: cannot unmarshal string into Go value of type map[string]interface {}",
		},
		"a second object after the first is trailing data": {
			raw:     `{"a":"b"} {"c":"d"}`,
			wantErr: "unexpected data after the JSON object",
		},
		"garbage after the object is trailing data": {
			raw:     `{"a":"b"}x`,
			wantErr: "unexpected data after the JSON object",
		},
		"a truncated object is a syntax error": {
			raw:     `{"a":`,
			wantErr: "unexpected EOF",
		},
		"empty input is an error": {
			raw:     ``,
			wantErr: "EOF",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := longhorn.DecodeJSONObject([]byte(tc.raw))
			if diff := cmp.Diff(tc.wantErr, errorString(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("object (-want +got):\n%s", diff)
			}
		})
	}
}

const fullRecurringJob = `{
  "apiVersion": "longhorn.io/v1beta2",
  "kind": "RecurringJob",
  "metadata": {
    "name": "daily",
    "namespace": "longhorn-system",
    "labels": {"team": "storage"},
    "annotations": {"backupguard.io/owner": "sre"}
  },
  "spec": {
    "name": "daily",
    "groups": ["default", "critical"],
    "task": "backup",
    "cron": "0 2 * * *",
    "retain": 7,
    "concurrency": 2,
    "labels": {"app": "db"},
    "parameters": {"full-backup-interval": "5", "volume-backup-policy": "if-not-present"}
  },
  "status": {"ownerID": "node-1", "executionCount": 12}
}`

func TestDecodeRecurringJobFullObject(t *testing.T) {
	want := &longhorn.RecurringJob{
		TypeMeta: metav1.TypeMeta{APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "daily",
			Namespace:   "longhorn-system",
			Labels:      map[string]string{"team": "storage"},
			Annotations: map[string]string{"backupguard.io/owner": "sre"},
		},
		Spec: longhorn.RecurringJobSpec{
			Name:        "daily",
			Groups:      []string{"default", "critical"},
			Task:        longhorn.TaskBackup,
			Cron:        "0 2 * * *",
			Retain:      7,
			Concurrency: 2,
			Labels:      map[string]string{"app": "db"},
			Parameters:  map[string]string{"full-backup-interval": "5", "volume-backup-policy": "if-not-present"},
		},
		Status: longhorn.RecurringJobStatus{OwnerID: "node-1", ExecutionCount: 12},
	}
	object, err := longhorn.DecodeJSONObject([]byte(fullRecurringJob))
	if err != nil {
		t.Fatalf("DecodeJSONObject: %v", err)
	}
	job, errs := longhorn.DecodeRecurringJob(object)
	if len(errs) > 0 {
		t.Fatalf("DecodeRecurringJob: unexpected errors %v", errs)
	}
	if diff := cmp.Diff(want, job); diff != "" {
		t.Errorf("RecurringJob (-want +got):\n%s", diff)
	}
}

func TestDecodeRecurringJobErrors(t *testing.T) {
	spec := field.NewPath("spec")
	cases := map[string]struct {
		raw  string
		want field.ErrorList
	}{
		"nulls count as absent": {
			raw: `{"apiVersion":null,"metadata":null,"spec":{"name":null,"groups":null,"task":null,"cron":null,"retain":null,"labels":null,"parameters":null},"status":null}`,
		},
		"an unknown top-level field is forbidden and the known fields are listed": {
			raw:  `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","specs":{}}`,
			want: field.ErrorList{field.Forbidden(field.NewPath("specs"), "unknown field; known fields here: apiVersion, kind, metadata, spec, status")},
		},
		"an unknown spec field is forbidden at its path": {
			raw:  `{"spec":{"task":"backup","retention":7}}`,
			want: field.ErrorList{field.Forbidden(spec.Child("retention"), "unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, retainAge, retentionPolicy, task")},
		},
		"an unknown status field is forbidden at its path": {
			raw:  `{"status":{"lastRun":"yesterday"}}`,
			want: field.ErrorList{field.Forbidden(field.NewPath("status", "lastRun"), "unknown field; known fields here: executionCount, ownerID")},
		},
		"a number where a parameter string is expected says how to quote it": {
			raw:  `{"spec":{"parameters":{"full-backup-interval":5}}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("parameters").Key("full-backup-interval"), int64(5), "must be a string; quote it in YAML: \"5\"")},
		},
		"a fractional number where a label string is expected keeps its float value": {
			raw:  `{"spec":{"labels":{"version":1.5}}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("labels").Key("version"), 1.5, "must be a string; quote it in YAML: \"1.5\"")},
		},
		"a boolean task is not a string": {
			raw:  `{"spec":{"task":true}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("task"), true, "must be a string")},
		},
		"a number in apiVersion is not a string": {
			raw:  `{"apiVersion":1}`,
			want: field.ErrorList{field.TypeInvalid(field.NewPath("apiVersion"), int64(1), "must be a string; quote it in YAML: \"1\"")},
		},
		"a quoted retain must lose its quotes": {
			raw:  `{"spec":{"retain":"7"}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("retain"), "7", "must be a whole number, not a string: remove the quotes")},
		},
		"a fractional retain is not a whole number": {
			raw:  `{"spec":{"retain":3.5}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("retain"), 3.5, "must be a whole number")},
		},
		"a concurrency beyond 32 bits is refused": {
			raw:  `{"spec":{"concurrency":3000000000}}`,
			want: field.ErrorList{field.Invalid(spec.Child("concurrency"), int64(3000000000), "must fit in 32 bits")},
		},
		"a list as executionCount is not a whole number": {
			raw:  `{"status":{"executionCount":[1]}}`,
			want: field.ErrorList{field.TypeInvalid(field.NewPath("status", "executionCount"), "[...]", "must be a whole number")},
		},
		"groups that are not a list are refused": {
			raw:  `{"spec":{"groups":"default"}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("groups"), "default", "must be a list of strings")},
		},
		"a group that is not a string is refused at its index": {
			raw: `{"spec":{"groups":["default",7,{"a":"b"}]}}`,
			want: field.ErrorList{
				field.TypeInvalid(spec.Child("groups").Index(1), int64(7), "must be a string; quote it in YAML: \"7\""),
				field.TypeInvalid(spec.Child("groups").Index(2), "{...}", "must be a string"),
			},
		},
		"a spec that is a list is not an object": {
			raw:  `{"spec":[{"task":"backup"}]}`,
			want: field.ErrorList{field.TypeInvalid(spec, "[...]", "must be an object")},
		},
		"parameters that are a string are not an object": {
			raw:  `{"spec":{"parameters":"full-backup-interval=5"}}`,
			want: field.ErrorList{field.TypeInvalid(spec.Child("parameters"), "full-backup-interval=5", "must be an object")},
		},
		"metadata that is a string has the wrong type": {
			raw:  `{"metadata":"daily"}`,
			want: field.ErrorList{field.TypeInvalid(field.NewPath("metadata"), "...", "json: cannot unmarshal string into Go value of type v1.ObjectMeta")},
		},
		"metadata with a numeric label value has the wrong type": {
			raw:  `{"metadata":{"name":"daily","labels":{"tier":1}}}`,
			want: field.ErrorList{field.TypeInvalid(field.NewPath("metadata"), "...", "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string")},
		},
		"every error is reported, in field order": {
			raw: `{"zzz":1,"apiVersion":2,"spec":{"task":"backup","retain":"7","cron":5,"extra":true},"status":{"ownerID":false}}`,
			want: field.ErrorList{
				field.TypeInvalid(field.NewPath("apiVersion"), int64(2), "must be a string; quote it in YAML: \"2\""),
				field.TypeInvalid(spec.Child("cron"), int64(5), "must be a string; quote it in YAML: \"5\""),
				field.Forbidden(spec.Child("extra"), "unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, retainAge, retentionPolicy, task"),
				field.TypeInvalid(spec.Child("retain"), "7", "must be a whole number, not a string: remove the quotes"),
				field.TypeInvalid(field.NewPath("status", "ownerID"), false, "must be a string"),
				field.Forbidden(field.NewPath("zzz"), "unknown field; known fields here: apiVersion, kind, metadata, spec, status"),
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			object, err := longhorn.DecodeJSONObject([]byte(tc.raw))
			if err != nil {
				t.Fatalf("DecodeJSONObject: %v", err)
			}
			_, errs := longhorn.DecodeRecurringJob(object)
			if diff := cmp.Diff(tc.want, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzDecodeRecurringJob checks that decoding never panics, and that a RecurringJob decoded without
// errors survives a trip through its JSON form: it decodes again without errors to the same spec and
// status, and marshals to the same bytes.
func FuzzDecodeRecurringJob(f *testing.F) {
	for _, seed := range []string{
		fullRecurringJob,
		`{}`,
		`{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"trim"},"spec":{"task":"filesystem-trim","cron":"@daily","retain":0}}`,
		`{"spec":{"groups":[],"labels":{},"parameters":{"full-backup-interval":"0"}}}`,
		`{"spec":{"parameters":{"full-backup-interval":5}}}`,
		`{"spec":{"retain":3.5,"concurrency":"2"}}`,
		`{"metadata":{"name":"a","creationTimestamp":"2026-11-21T12:00:00Z","generation":3}}`,
		`{"status":{"ownerID":"node-1","executionCount":-1},"spec":null}`,
		`[1,2,3]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		object, err := longhorn.DecodeJSONObject(raw)
		if err != nil {
			return
		}
		job, errs := longhorn.DecodeRecurringJob(object)
		if len(errs) > 0 {
			return
		}
		first, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("marshal %#v: %v", job, err)
		}
		object, err = longhorn.DecodeJSONObject(first)
		if err != nil {
			t.Fatalf("the marshalled job %s is not a JSON object: %v", first, err)
		}
		again, errs := longhorn.DecodeRecurringJob(object)
		if len(errs) > 0 {
			t.Fatalf("the marshalled job %s does not decode: %v", first, errs)
		}
		// Empty lists and maps are dropped by omitempty; that is the same job.
		if diff := cmp.Diff(job.Spec, again.Spec, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("spec after a round trip (-first +again):\n%s", diff)
		}
		if diff := cmp.Diff(job.Status, again.Status); diff != "" {
			t.Errorf("status after a round trip (-first +again):\n%s", diff)
		}
		second, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("marshal %#v: %v", again, err)
		}
		if !bytes.Equal(first, second) {
			t.Errorf("marshalling is not stable:\nfirst:  %s\nsecond: %s", first, second)
		}
	})
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDecodeRecurringJobSkipsManagedFields(t *testing.T) {
	metadata := map[string]any{"name": "nightly", "namespace": "longhorn-system", "managedFields": []any{map[string]any{"manager": "kubectl", "operation": "Apply"}}}
	job, errs := longhorn.DecodeRecurringJob(map[string]any{"metadata": metadata})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := metav1.ObjectMeta{Name: "nightly", Namespace: "longhorn-system"}
	if diff := cmp.Diff(want, job.ObjectMeta); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if _, kept := metadata["managedFields"]; !kept {
		t.Error("the caller's metadata lost its managedFields")
	}
}

func TestDecodeRecurringJobV113RetentionFields(t *testing.T) {
	object := map[string]any{"spec": map[string]any{"task": "backup", "retentionPolicy": "age-based", "retainAge": "720h"}}
	job, errs := longhorn.DecodeRecurringJob(object)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, RetentionPolicy: longhorn.RetentionAgeBased, RetainAge: "720h"}
	if diff := cmp.Diff(want, job.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
}

func TestDecodeRecurringJobIgnoringUnknownFields(t *testing.T) {
	object := map[string]any{
		"apiVersion": "longhorn.io/v1beta2",
		"future":     true,
		"spec":       map[string]any{"task": "snapshot", "retain": json.Number("3"), "newInV2": map[string]any{"x": "y"}},
		"status":     map[string]any{"ownerID": "node-1", "lastRun": "yesterday"},
	}
	t.Run("strict decoding names each unknown field", func(t *testing.T) {
		_, errs := longhorn.DecodeRecurringJob(object)
		want := field.ErrorList{
			field.Forbidden(field.NewPath("future"), "unknown field; known fields here: apiVersion, kind, metadata, spec, status"),
			field.Forbidden(field.NewPath("spec", "newInV2"), "unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, retainAge, retentionPolicy, task"),
			field.Forbidden(field.NewPath("status", "lastRun"), "unknown field; known fields here: executionCount, ownerID"),
		}
		if diff := cmp.Diff(want, errs); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("in a cluster unknown fields are the CRD's business", func(t *testing.T) {
		job, errs := longhorn.DecodeRecurringJobWith(object, longhorn.IgnoreUnknownFields)
		if len(errs) != 0 {
			t.Fatalf("errors: %v", errs)
		}
		want := &longhorn.RecurringJob{
			TypeMeta: metav1.TypeMeta{APIVersion: "longhorn.io/v1beta2"},
			Spec:     longhorn.RecurringJobSpec{Task: longhorn.TaskSnapshot, Retain: 3},
			Status:   longhorn.RecurringJobStatus{OwnerID: "node-1"},
		}
		if diff := cmp.Diff(want, job); diff != "" {
			t.Errorf("job (-want +got):\n%s", diff)
		}
	})
	t.Run("a wrong type for a known field is an error either way", func(t *testing.T) {
		_, errs := longhorn.DecodeRecurringJobWith(map[string]any{"spec": map[string]any{"retain": "7"}}, longhorn.IgnoreUnknownFields)
		want := field.ErrorList{field.TypeInvalid(field.NewPath("spec", "retain"), "7", "must be a whole number, not a string: remove the quotes")}
		if diff := cmp.Diff(want, errs); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
}
