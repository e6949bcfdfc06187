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
	cmpopts.IgnoreFields(offline.Document{}, "File", "Line"),
	cmpopts.IgnoreFields(offline.Result{}, "File", "Line"),
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
	want := []location{{"m.yaml#1", 2}, {"m.yaml#3 items[0]", 8}, {"m.yaml#3 items[1]", 8}, {"m.yaml#4", 14}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locations (-want +got):\n%s", diff)
	}
}

const ciInput = `apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: good, namespace: longhorn-system}
spec: {task: snapshot, cron: "0 * * * *", retain: 3}
---
apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: "local-time", namespace: longhorn-system}
spec: {task: backup, cron: "TZ=UTC 0 2 * * *", retain: 101}
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
	want := `::warning file=clusters/prod/jobs.yaml,line=1,title=backupguard%3A RecurringJob longhorn-system/good::detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
::error file=clusters/prod/jobs.yaml,line=6,title=backupguard%3A RecurringJob longhorn-system/local-time::spec.cron: Invalid value: "TZ=UTC 0 2 * * *": time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: "0 2 * * *"
::error file=clusters/prod/jobs.yaml,line=6,title=backupguard%3A RecurringJob longhorn-system/local-time::spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)
::warning file=clusters/prod/jobs.yaml,line=6,title=backupguard%3A RecurringJob longhorn-system/local-time::detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
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
    <testcase name="RecurringJob longhorn-system/good" classname="clusters/prod/jobs.yaml#1" file="clusters/prod/jobs.yaml" line="1">
      <system-out>warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false</system-out>
    </testcase>
    <testcase name="RecurringJob longhorn-system/local-time" classname="clusters/prod/jobs.yaml#2" file="clusters/prod/jobs.yaml" line="6">
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
