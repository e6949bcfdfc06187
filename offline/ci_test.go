package offline_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

// ignoreLocation leaves File and Line to the tests about them.
var ignoreLocation = cmp.Options{
	cmpopts.IgnoreFields(offline.Document{}, "File", "Line", "Node"),
	cmpopts.IgnoreFields(offline.Result{}, "File", "Line"),
	cmpopts.IgnoreFields(offline.Violation{}, "Line"),
}

func TestDocumentsKnowTheirFirstLine(t *testing.T) {
	data := "---\n# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---   # empty\n" +
		"apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n" +
		"--- # next\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n"
	documents, err := offline.ParseDocuments([]byte(data), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type location struct {
		Source string
		Line   int
	}
	var got []location
	for _, document := range documents {
		if document.File != "m.yaml" {
			t.Errorf("%s: file %q", document.Source, document.File)
		}
		got = append(got, location{document.Source, document.Line})
	}
	// The line of the object itself: past comments, and each item of a List on its own.
	want := []location{{"m.yaml#1", 3}, {"m.yaml#3 items[0]", 11}, {"m.yaml#3 items[1]", 12}, {"m.yaml#4", 14}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locations (-want +got):\n%s", diff)
	}
}

const ciInput = `# Production's recurring jobs
apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: good, namespace: longhorn-system}
spec: {task: snapshot, cron: "0 * * * *", retain: 3}
---
apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: "local-time", namespace: longhorn-system}
spec:
  task: backup
  cron: "TZ=UTC 0 2 * * *"
  retain: 101
`

func ciReport(t *testing.T) offline.Report {
	t.Helper()
	documents, err := offline.ParseDocuments([]byte(ciInput), "clusters/prod/jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return offline.Check(documents, policies.DefaultConfig(), testNow)
}

func TestWriteGitHubAnnotatesTheObjectsLines(t *testing.T) {
	var out bytes.Buffer
	if err := ciReport(t).WriteGitHub(&out); err != nil {
		t.Fatal(err)
	}
	// Errors at their fields' lines; the warning both jobs get once, at the first, with the count.
	want := `::warning file=clusters/prod/jobs.yaml,line=2,title=backupguard%3A 2 objects::detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false (2 objects in this file: RecurringJob longhorn-system/good at line 2, RecurringJob longhorn-system/local-time at line 7)
::error file=clusters/prod/jobs.yaml,line=12,title=backupguard%3A RecurringJob longhorn-system/local-time::spec.cron: Invalid value: "TZ=UTC 0 2 * * *": time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: "0 2 * * *"
::error file=clusters/prod/jobs.yaml,line=13,title=backupguard%3A RecurringJob longhorn-system/local-time::spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)
2 checked, 1 denied, 0 mutated, 0 skipped
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("github output (-want +got):\n%s", diff)
	}
}

func TestWriteJUnitHasOneCasePerObject(t *testing.T) {
	var out bytes.Buffer
	if err := ciReport(t).WriteJUnit(&out); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="2" failures="1">
  <testsuite name="backupguard validate" tests="2" failures="1">
    <testcase name="RecurringJob longhorn-system/good" classname="clusters/prod/jobs.yaml#1" file="clusters/prod/jobs.yaml" line="2">
      <system-out>warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false</system-out>
    </testcase>
    <testcase name="RecurringJob longhorn-system/local-time" classname="clusters/prod/jobs.yaml#2" file="clusters/prod/jobs.yaml" line="12">
      <failure message="2 violation(s)" type="denied">spec.cron: Invalid value: &#34;TZ=UTC 0 2 * * *&#34;: time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: &#34;0 2 * * *&#34;&#xA;spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)</failure>
      <system-out>warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false</system-out>
    </testcase>
  </testsuite>
</testsuites>
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("junit output (-want +got):\n%s", diff)
	}
}

func TestFieldLineFindsTheFieldInItsFile(t *testing.T) {
	data := "# jobs\n---\napiVersion: v1\nkind: List\nitems:\n" +
		"- apiVersion: batch/v1\n  kind: Job\n  metadata:\n    labels:\n      backupguard.io/backup-job: \"true\"\n" +
		"  spec:\n    template:\n      spec:\n        volumes:\n        - name: a\n        - name: b\n          persistentVolumeClaim: {claimName: 5}\n"
	documents, err := offline.ParseDocuments([]byte(data), "list.yaml")
	if err != nil {
		t.Fatal(err)
	}
	item := documents[0]
	cases := map[string]int{
		"":     6,
		"kind": 7,
		"metadata.labels[backupguard.io/backup-job]":                    10,
		"spec.template.spec.volumes[1].persistentVolumeClaim.claimName": 17,
		"spec.template.spec.volumes[1]":                                 16,
		// A missing field is reported where the deepest part of its path is.
		"spec.template.spec.nodeName":   13,
		"spec.template.spec.volumes[7]": 14,
	}
	for path, want := range cases {
		if got := item.FieldLine(path); got != want {
			t.Errorf("FieldLine(%q) = %d, want %d", path, got, want)
		}
	}
}
