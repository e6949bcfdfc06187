package offline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

// FuzzValidateInput feeds arbitrary files to validate's reader and checker: a file it cannot read is an
// InputError that names the file and document, never a panic; everything it can read gets a verdict,
// and every verdict is counted.
func FuzzValidateInput(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata: {name: daily, namespace: longhorn-system}\nspec: {task: backup, cron: \"0 2 * * *\", retain: 7}\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: PersistentVolumeClaim\n  metadata: {name: data, namespace: shop}\n  spec: {storageClassName: longhorn}\n",
		"---\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: b, labels: {backupguard.io/backup-job: \"true\"}}\nspec: {jobTemplate: {spec: {template: {spec: {volumes: [{name: d, persistentVolumeClaim: {claimName: 5}}]}}}}}\n",
		"{{ .Values.x }}\nkind: [\n",
		"a: &a [*a, *a]\n",
		"apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nspec: {retain: \"7\", bad: 1}\n",
	} {
		f.Add([]byte(seed))
	}
	config := policies.DefaultConfig()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		documents, err := offline.ParseDocuments(data, "fuzz.yaml")
		if err != nil {
			var inputErr *offline.InputError
			if !errors.As(err, &inputErr) || !strings.HasPrefix(inputErr.Source, "fuzz.yaml#") {
				t.Fatalf("an unreadable file must be an InputError naming fuzz.yaml#N, got %T %v", err, err)
			}
			return
		}
		report := offline.Check(documents, config, now)
		if report.Summary.Checked != len(report.Results) {
			t.Fatalf("checked %d, results %d", report.Summary.Checked, len(report.Results))
		}
		denied := 0
		for _, result := range report.Results {
			if !result.Allowed {
				denied++
			}
			if !result.Allowed && len(result.Violations) == 0 {
				t.Fatalf("%s denied without a violation", result.Source)
			}
		}
		if denied != report.Summary.Denied {
			t.Fatalf("denied %d, summary says %d", denied, report.Summary.Denied)
		}
	})
}
