package longhorn_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/longhorn"
)

// FuzzDecodeRecurringJobModes decodes arbitrary JSON as a RecurringJob: an answer, never a panic; every error
// names a field; and an object strict decoding accepts decodes to the same job when unknown fields are
// ignored (the cluster's mode), so the two modes never disagree on what they both accept.
func FuzzDecodeRecurringJobModes(f *testing.F) {
	f.Add([]byte(fullRecurringJob))
	f.Add([]byte(`{"spec":{"retain":"7","parameters":{"full-backup-interval":5},"extra":1},"status":{"ownerID":false}}`))
	f.Add([]byte(`{"metadata":{"name":"x","managedFields":[{}]},"spec":{"retentionPolicy":"age-based","retainAge":"720h","groups":[1,null]}}`))
	f.Add([]byte(`{"spec":{"retain":1e400,"concurrency":-9223372036854775809}}`))
	f.Add([]byte(`{"metadata":"x","spec":[],"status":7}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		object, err := longhorn.DecodeJSONObject(raw)
		if err != nil {
			return
		}
		strict, strictErrs := longhorn.DecodeRecurringJob(object)
		for _, e := range strictErrs {
			if e.Field == "" {
				t.Fatalf("an error without a field: %v", e)
			}
		}
		tolerant, tolerantErrs := longhorn.DecodeRecurringJobWith(object, longhorn.IgnoreUnknownFields)
		if len(tolerantErrs) > len(strictErrs) {
			t.Fatalf("ignoring unknown fields found more errors: %v vs %v", tolerantErrs, strictErrs)
		}
		if len(strictErrs) == 0 {
			if diff := cmp.Diff(strict, tolerant); diff != "" {
				t.Fatalf("the two modes decode differently (-strict +tolerant):\n%s", diff)
			}
		}
	})
}
