package offline_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

const labelConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: prod
      match:
        namespaceSelector: {matchLabels: {env: prod}}
      jobs: [nightly]
    - name: db
      match:
        selector: {matchLabels: {app: db}}
      groups: [databases]
`

func TestCheckShowsThePatchEachPVCWouldGet(t *testing.T) {
	config, err := policies.ParseConfig([]byte(labelConfig), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	input := `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: longhorn, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: driver.longhorn.io
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: rancher.io/local-path
---
apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: nightly, namespace: longhorn-system}
spec: {task: backup, cron: "0 1 * * *", retain: 3}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop, labels: {app: db}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, namespace: shop}
spec: {storageClassName: local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cache, namespace: elsewhere}
spec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`
	documents, err := offline.ParseDocuments([]byte(input), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	report := offline.Check(documents, config, testNow)
	want := []offline.Result{
		{
			Source: "in.yaml#4", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "nightly", Allowed: true,
			Violations: []offline.Violation{}, Patch: []jsonpatch.Operation{},
			Warnings: []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"},
			NextRuns: nextRuns("2026-11-22T01:00:00Z", "2026-11-23T01:00:00Z", "2026-11-24T01:00:00Z"),
		},
		{
			Source: "in.yaml#5", APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "data", Allowed: true,
			Violations: []offline.Violation{},
			Warnings:   []string{`rule "db" names group "databases", but no RecurringJob is in that group: nothing will run for it`},
			Patch: []jsonpatch.Operation{
				{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1databases", Value: "enabled"},
				{Operation: "add", Path: "/metadata/labels/recurring-job-group.longhorn.io~1default", Value: "enabled"},
				{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1nightly", Value: "enabled"},
				{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1source", Value: "enabled"},
				{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{
					"backupguard.io/managed-labels": "recurring-job-group.longhorn.io/databases,recurring-job-group.longhorn.io/default,recurring-job.longhorn.io/nightly,recurring-job.longhorn.io/source",
				}},
			},
		},
		{
			Source: "in.yaml#6", APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "scratch", Allowed: true,
			Violations: []offline.Violation{}, Warnings: []string{}, Patch: []jsonpatch.Operation{},
		},
		{
			Source: "in.yaml#7", APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: "elsewhere", Name: "cache", Allowed: true,
			Violations: []offline.Violation{}, Patch: []jsonpatch.Operation{},
			Warnings: []string{
				`StorageClass "fast" is not in the input; assuming its provisioner is one of driver.longhorn.io`,
				`namespace "elsewhere" is not known, so rules with a namespaceSelector were not applied`,
			},
		},
	}
	if diff := cmp.Diff(want, report.Results, ignoreLocation); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(offline.Summary{Checked: 4, Denied: 0, Mutated: 1, Skipped: 3}, report.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func nextRuns(times ...string) []time.Time {
	runs := make([]time.Time, len(times))
	for i, text := range times {
		runs[i], _ = time.Parse(time.RFC3339, text)
	}
	return runs
}
