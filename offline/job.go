package offline

import (
	"context"

	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

var (
	jobGroupKind     = schema.GroupKind{Group: "batch", Kind: "Job"}
	cronJobGroupKind = schema.GroupKind{Group: "batch", Kind: "CronJob"}
	podGroupKind     = schema.GroupKind{Kind: "Pod"}
)

// checkBackupJob places a backup Job, or the Jobs a CronJob will create, with what the input holds:
// conflicting pins and a ReadWriteOncePod volume used by a pod in the input are denied; where volumes
// are attached is left to the cluster, with a warning.
func checkBackupJob(document Document, kind schema.GroupKind, config *policies.Config, found inventory) (Result, bool) {
	result := Result{Source: document.Source, Violations: []Violation{}, Warnings: []string{}, Patch: []jsonpatch.Operation{}}
	result.APIVersion, _ = document.Object["apiVersion"].(string)
	result.Kind, _ = document.Object["kind"].(string)
	job := &batchv1.Job{}
	if kind == cronJobGroupKind {
		cronJob := &batchv1.CronJob{}
		if err := decodeInto(document.Object, cronJob); err != nil {
			return result, false
		}
		// The CronJob controller gives each Job the jobTemplate's labels and spec.
		job.ObjectMeta = cronJob.ObjectMeta
		job.Labels = cronJob.Spec.JobTemplate.Labels
		job.Spec = cronJob.Spec.JobTemplate.Spec
	} else if err := decodeInto(document.Object, job); err != nil {
		return result, false
	}
	if !config.BackupJobRules().Selects(job) {
		return result, false
	}
	result.Namespace, result.Name = job.Namespace, job.Name
	// The inventory answers without errors.
	input, _ := lookup.Placement(context.Background(), found, job.Namespace, job, config)
	placement := policies.PlaceBackupJob(input)
	result.Allowed = len(placement.Errors) == 0
	result.Violations = ViolationsFrom(placement.Errors)
	result.Warnings = append(result.Warnings, placement.Warnings...)
	if result.Allowed && placement.Patch != nil {
		result.Patch = placement.Patch
	}
	return result, true
}

// addWorkloads records the PVCs, Pods, PVs and Nodes of the input for placement.
func (found *inventory) addWorkloads(document Document, kind schema.GroupKind) {
	switch kind {
	case pvcGroupKind:
		pvc := &corev1.PersistentVolumeClaim{}
		if decodeInto(document.Object, pvc) == nil {
			found.pvcs[pvc.Namespace+"/"+pvc.Name] = pvc
		}
	case podGroupKind:
		pod := &corev1.Pod{}
		if decodeInto(document.Object, pod) == nil {
			for _, claim := range policies.ClaimNames(&pod.Spec) {
				key := pod.Namespace + "/" + claim
				found.podsByClaim[key] = append(found.podsByClaim[key], policies.MountingPodOf(pod))
			}
		}
	case pvGroupKind:
		pv := &corev1.PersistentVolume{}
		if decodeInto(document.Object, pv) == nil {
			found.pvs[pv.Name] = pv
		}
	case nodeGroupKind:
		node := &corev1.Node{}
		if decodeInto(document.Object, node) == nil {
			found.nodes[node.Name] = node
		}
	}
}
