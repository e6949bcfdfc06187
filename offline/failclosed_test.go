package offline_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

func TestCheckFailsClosed(t *testing.T) {
	input := `apiVersion: batch/v1
kind: Job
metadata: {name: typed, namespace: shop, labels: {backupguard.io/backup-job: "true"}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: restic, image: restic}]
      volumes:
        - {name: a, persistentVolumeClaim: {claimName: data}}
        - {name: b, persistentVolumeClaim: {claimName: 5}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: not-a-backup, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: app, image: app}]
      volumes: [{name: a, persistentVolumeClaim: {claimName: 5}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: typed, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    metadata: {labels: {backupguard.io/backup-job: "true"}}
    spec:
      template:
        spec:
          containers: [{name: restic, image: restic}]
          volumes: [{name: a, persistentVolumeClaim: {claimName: 5}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: pinned, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    metadata: {labels: {backupguard.io/backup-job: "true"}}
    spec:
      template:
        spec:
          nodeName: storage-2
          containers: [{name: restic, image: restic}]
          volumes: [{name: a, persistentVolumeClaim: {claimName: on-storage-1}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: labelled-pods, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {backupguard.io/backup-job: "true"}}
        spec:
          containers: [{name: restic, image: restic}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: sized, namespace: shop}
spec: {accessModes: ReadWriteOnce}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: quantity, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: lots}}}
---
apiVersion: longhorn.io/v1beta2
kind: RecuringJob
metadata: {name: daily, namespace: longhorn-system}
---
apiVersion: longhorn.io/v1beta2
kind: Snapshots
metadata: {name: snap, namespace: longhorn-system}
---
apiVersion: batch/v1
kind: Cronjob
metadata: {name: cased, namespace: shop}
---
apiVersion: v1
kind: PersistentVolumeClaims
metadata: {name: plural, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: shop}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: longhorn.io/v1beta2
kind: Volume
metadata: {name: pvc-1, namespace: longhorn-system}
---
apiVersion: example.com/v1
kind: CronTab
metadata: {name: crontab, namespace: shop}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: on-storage-1, namespace: shop, annotations: {backupguard.io/node: storage-1}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`
	documents, err := offline.ParseDocuments([]byte(input), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	report := offline.Check(documents, policies.DefaultConfig(), testNow)
	denied := func(source, apiVersion, kind, namespace, name string, violations ...offline.Violation) offline.Result {
		return offline.Result{Source: source, APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name,
			Violations: violations, Warnings: []string{}, Patch: []jsonpatch.Operation{}}
	}
	withWarnings := func(result offline.Result, warnings ...string) offline.Result {
		result.Warnings = warnings
		return result
	}
	want := offline.Report{
		Results: []offline.Result{
			denied("in.yaml#1", "batch/v1", "Job", "shop", "typed", offline.Violation{
				Field: "spec.template.spec.volumes[1].persistentVolumeClaim.claimName", Type: "FieldValueTypeInvalid", Message: "Invalid value: 5: must be a string"}),
			denied("in.yaml#3", "batch/v1", "CronJob", "shop", "typed", offline.Violation{
				Field: "spec.jobTemplate.spec.template.spec.volumes[0].persistentVolumeClaim.claimName", Type: "FieldValueTypeInvalid", Message: "Invalid value: 5: must be a string"}),
			withWarnings(denied("in.yaml#4", "batch/v1", "CronJob", "shop", "pinned", offline.Violation{
				Field: "spec.jobTemplate.spec.template.spec.nodeName", Type: "FieldValueInvalid",
				Message: `Invalid value: "storage-2": pins the Job to another node, but PVC "on-storage-1" is on node "storage-1" (its backupguard.io/node annotation says so)`}),
				`node "storage-1" is not known, so its taints could not be tolerated`),
			{
				Source: "in.yaml#5", APIVersion: "batch/v1", Kind: "CronJob", Namespace: "shop", Name: "labelled-pods", Allowed: true,
				Violations: []offline.Violation{}, Patch: []jsonpatch.Operation{},
				Warnings: []string{"the backup Job selector matches the pod template's labels (spec.jobTemplate.spec.template.metadata.labels), " +
					"but backupguard selects the Jobs by theirs: move the label to spec.jobTemplate.metadata.labels, or its Jobs are not placed next to their volumes"},
			},
			denied("in.yaml#6", "v1", "PersistentVolumeClaim", "shop", "sized", offline.Violation{
				Field: "spec.accessModes", Type: "FieldValueTypeInvalid", Message: `Invalid value: "ReadWriteOnce": must be a list`}),
			denied("in.yaml#7", "v1", "PersistentVolumeClaim", "shop", "quantity", offline.Violation{
				Field: "spec.resources.requests[storage]", Type: "FieldValueInvalid",
				Message: `Invalid value: "lots": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`}),
			denied("in.yaml#8", "longhorn.io/v1beta2", "RecuringJob", "longhorn-system", "daily", offline.Violation{
				Field: "kind", Type: "FieldValueInvalid", Message: `Invalid value: "RecuringJob": longhorn.io has no such kind: did you mean "RecurringJob"?`}),
			denied("in.yaml#9", "longhorn.io/v1beta2", "Snapshots", "longhorn-system", "snap", offline.Violation{
				Field: "kind", Type: "FieldValueInvalid", Message: `Invalid value: "Snapshots": longhorn.io has no such kind: did you mean "Snapshot"?`}),
			denied("in.yaml#10", "batch/v1", "Cronjob", "shop", "cased", offline.Violation{
				Field: "kind", Type: "FieldValueInvalid", Message: `Invalid value: "Cronjob": did you mean "CronJob"? kinds are case-sensitive and backupguard checks CronJob.batch`}),
			denied("in.yaml#11", "v1", "PersistentVolumeClaims", "shop", "plural", offline.Violation{
				Field: "kind", Type: "FieldValueInvalid", Message: `Invalid value: "PersistentVolumeClaims": did you mean "PersistentVolumeClaim"? kinds are case-sensitive and backupguard checks PersistentVolumeClaim`}),
			{
				Source: "in.yaml#15", APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "on-storage-1", Allowed: true,
				Violations: []offline.Violation{}, Patch: []jsonpatch.Operation{},
				Warnings: []string{"no storageClassName and no default StorageClass in the input; assuming the cluster's default has one of the provisioners driver.longhorn.io"},
			},
		},
		// The Job without the label, the Pod, the Volume and the CronTab.
		Summary: offline.Summary{Checked: 11, Denied: 9, Skipped: 4},
	}
	if diff := cmp.Diff(want, report, ignoreLocation); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
