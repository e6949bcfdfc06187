package offline_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

func TestCheckPlacesBackupJobsWithWhatTheInputHolds(t *testing.T) {
	input := `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pinned, namespace: shop, annotations: {backupguard.io/node: storage-1}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: exclusive, namespace: shop}
spec: {accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: shop}
spec:
  containers: [{name: app, image: app}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: exclusive}}]
---
apiVersion: v1
kind: Node
metadata: {name: storage-1, labels: {kubernetes.io/hostname: storage-1}}
spec:
  taints: [{key: dedicated, value: storage, effect: NoSchedule}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    metadata: {labels: {backupguard.io/backup-job: "true"}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: restic, image: restic}]
          volumes:
            - {name: a, persistentVolumeClaim: {claimName: pinned}}
            - {name: b, persistentVolumeClaim: {claimName: elsewhere}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: conflicting, namespace: shop, labels: {backupguard.io/backup-job: "true"}}
spec:
  template:
    spec:
      nodeName: storage-2
      restartPolicy: Never
      containers: [{name: restic, image: restic}]
      volumes: [{name: a, persistentVolumeClaim: {claimName: pinned}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: exclusive, namespace: shop, labels: {backupguard.io/backup-job: "true"}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: restic, image: restic}]
      volumes: [{name: a, persistentVolumeClaim: {claimName: exclusive}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: not-a-backup, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: app, image: app}]
`
	documents, err := offline.ParseDocuments([]byte(input), "jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	report := offline.Check(documents, policies.DefaultConfig(), testNow)
	var jobs []offline.Result
	for _, result := range report.Results {
		if result.Kind == "Job" || result.Kind == "CronJob" {
			jobs = append(jobs, result)
		}
	}
	want := []offline.Result{
		{
			Source: "jobs.yaml#5", APIVersion: "batch/v1", Kind: "CronJob", Namespace: "shop", Name: "nightly", Allowed: true,
			Violations: []offline.Violation{},
			Warnings:   []string{`PVC "elsewhere" is not in the input: where it is attached is checked in the cluster`},
			Patch: []jsonpatch.Operation{
				{Operation: "add", Path: "/spec/jobTemplate/spec/template/spec/affinity", Value: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"storage-1"}},
					}}}},
				}}},
				{Operation: "add", Path: "/spec/jobTemplate/spec/template/spec/tolerations", Value: []corev1.Toleration{
					{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
				}},
			},
		},
		{
			Source: "jobs.yaml#6", APIVersion: "batch/v1", Kind: "Job", Namespace: "shop", Name: "conflicting",
			Violations: []offline.Violation{{Field: "spec.template.spec.nodeName", Type: "FieldValueInvalid",
				Message: `Invalid value: "storage-2": pins the Job to another node, but PVC "pinned" is on node "storage-1" (its backupguard.io/node annotation says so)`}},
			Warnings: []string{}, Patch: []jsonpatch.Operation{},
		},
		{
			Source: "jobs.yaml#7", APIVersion: "batch/v1", Kind: "Job", Namespace: "shop", Name: "exclusive",
			Violations: []offline.Violation{{Field: "spec.template.spec.volumes[0].persistentVolumeClaim.claimName", Type: "FieldValueForbidden",
				Message: `Forbidden: PVC "exclusive" is ReadWriteOncePod and in use by pod "app": it cannot be mounted by a second pod`}},
			Warnings: []string{}, Patch: []jsonpatch.Operation{},
		},
	}
	if diff := cmp.Diff(want, jobs, ignoreLocation); diff != "" {
		t.Errorf("job results (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(offline.Summary{Checked: 5, Denied: 2, Mutated: 1, Skipped: 3}, report.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}
