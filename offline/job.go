package offline

import (
	"context"

	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

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
// are attached is left to the cluster, with a warning. A selected Job or CronJob that cannot be decoded
// is denied at the offending field. A CronJob that is not selected only because the selector's labels
// are on its pod template gets a warning. selected is false for the Jobs and CronJobs left alone.
func checkBackupJob(document Document, kind schema.GroupKind, config *policies.Config, found inventory) (result Result, selected bool) {
	result = Result{Source: document.Source, Violations: []Violation{}, Warnings: []string{}, Patch: []jsonpatch.Operation{}}
	result.APIVersion, _ = document.Object["apiVersion"].(string)
	result.Kind, _ = document.Object["kind"].(string)
	rules := config.BackupJobRules()
	job := &batchv1.Job{}
	var errs field.ErrorList
	var podTemplateLabels map[string]string
	if kind == cronJobGroupKind {
		cronJob := &batchv1.CronJob{}
		errs = decodeChecked(document.Object, cronJob)
		// The CronJob controller gives each Job the jobTemplate's labels and spec.
		job.ObjectMeta = cronJob.ObjectMeta
		job.Labels = cronJob.Spec.JobTemplate.Labels
		job.Spec = cronJob.Spec.JobTemplate.Spec
		podTemplateLabels = cronJob.Spec.JobTemplate.Spec.Template.Labels
	} else {
		errs = decodeChecked(document.Object, job)
	}
	result.Namespace, result.Name = job.Namespace, job.Name
	if len(errs) > 0 {
		// What cannot be read cannot be placed: deny it unless its labels say it is no backup Job.
		if labels, readable := selectorLabels(document.Object, kind); readable && !rules.Selects(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: labels}}) {
			return result, false
		}
		result.Namespace, result.Name = objectIdentity(document.Object)
		result.Violations = ViolationsFrom(errs)
		return result, true
	}
	if !rules.Selects(job) {
		if podTemplateLabels != nil && rules.Selects(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: podTemplateLabels}}) {
			result.Allowed = true
			result.Warnings = append(result.Warnings, "the backup Job selector matches the pod template's labels (spec.jobTemplate.spec.template.metadata.labels), "+
				"but backupguard selects the Jobs by theirs: move the label to spec.jobTemplate.metadata.labels, or its Jobs are not placed next to their volumes")
			return result, true
		}
		return result, false
	}
	// The inventory answers without errors.
	input, _ := lookup.Placement(context.Background(), found, job.Namespace, job, config)
	placement := policies.PlaceBackupJob(input)
	errs, patch := placement.Errors, placement.Patch
	if kind == cronJobGroupKind {
		errs, patch = underJobTemplate(errs, patch)
	}
	result.Allowed = len(errs) == 0
	result.Violations = ViolationsFrom(errs)
	result.Warnings = append(result.Warnings, placement.Warnings...)
	if result.Allowed && patch != nil {
		result.Patch = patch
	}
	return result, true
}

// underJobTemplate moves a Job's field paths and patch to where they are in a CronJob: below
// spec.jobTemplate, so that a report points at the CronJob's own fields.
func underJobTemplate(errs field.ErrorList, patch []jsonpatch.Operation) (field.ErrorList, []jsonpatch.Operation) {
	moved := make(field.ErrorList, 0, len(errs))
	for _, err := range errs {
		copied := *err
		copied.Field = "spec.jobTemplate." + err.Field
		moved = append(moved, &copied)
	}
	var movedPatch []jsonpatch.Operation
	for _, operation := range patch {
		operation.Path = "/spec/jobTemplate" + operation.Path
		movedPatch = append(movedPatch, operation)
	}
	return moved, movedPatch
}

// selectorLabels reads only the labels the backup Job selector looks at (a CronJob's jobTemplate's), for
// an object that does not decode as a whole.
func selectorLabels(object map[string]any, kind schema.GroupKind) (map[string]string, bool) {
	var job struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	var cronJob struct {
		Spec struct {
			JobTemplate struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if kind == cronJobGroupKind {
		stripped := map[string]any{"spec": map[string]any{"jobTemplate": map[string]any{}}}
		if spec, ok := object["spec"].(map[string]any); ok {
			if template, ok := spec["jobTemplate"].(map[string]any); ok {
				stripped["spec"] = map[string]any{"jobTemplate": map[string]any{"metadata": template["metadata"]}}
			}
		}
		err := decodeInto(stripped, &cronJob)
		return cronJob.Spec.JobTemplate.Metadata.Labels, err == nil
	}
	err := decodeInto(map[string]any{"metadata": object["metadata"]}, &job)
	return job.Metadata.Labels, err == nil
}

// objectIdentity reads the namespace and name of an object that does not decode, as far as they can be.
func objectIdentity(object map[string]any) (namespace, name string) {
	metadata, _ := object["metadata"].(map[string]any)
	namespace, _ = metadata["namespace"].(string)
	name, _ = metadata["name"].(string)
	return namespace, name
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
