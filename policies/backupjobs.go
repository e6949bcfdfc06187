package policies

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// BackupJobsConfig says which Jobs are backup Jobs to place next to their volumes.
type BackupJobsConfig struct {
	// Selector picks the backup Jobs by their labels (a Job made by a CronJob carries the CronJob's
	// jobTemplate labels). Default: backupguard.io/backup-job=true. The webhook configuration's
	// objectSelector must let these Jobs through.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// UnresolvedNode is Deny (default) or Allow: what happens when the node of a ReadWriteOnce volume
	// cannot be told.
	UnresolvedNode UnresolvedNodePolicy `json:"unresolvedNode,omitempty"`
}

// BackupJobRules are the backup-Job settings compiled.
type BackupJobRules struct {
	selector   labels.Selector
	Unresolved UnresolvedNodePolicy
}

// Selects tells whether a Job is a backup Job.
func (r *BackupJobRules) Selects(job *batchv1.Job) bool {
	return r.selector.Matches(labels.Set(job.Labels))
}

// CompileBackupJobRules checks and compiles the backupJobs section.
func CompileBackupJobRules(config BackupJobsConfig, path *field.Path) (*BackupJobRules, field.ErrorList) {
	rules := &BackupJobRules{Unresolved: config.UnresolvedNode}
	var errs field.ErrorList
	switch config.UnresolvedNode {
	case "":
		rules.Unresolved = UnresolvedDeny
	case UnresolvedDeny, UnresolvedAllow:
	default:
		errs = append(errs, field.NotSupported(path.Child("unresolvedNode"), config.UnresolvedNode, []UnresolvedNodePolicy{UnresolvedDeny, UnresolvedAllow}))
	}
	selector := config.Selector
	if selector == nil {
		selector = &metav1.LabelSelector{MatchLabels: map[string]string{DefaultBackupJobLabel: "true"}}
	}
	compiled, selectorErrs := compileSelector(selector, path.Child("selector"))
	errs = append(errs, selectorErrs...)
	if compiled != nil && compiled.Empty() {
		errs = append(errs, field.Invalid(path.Child("selector"), fmt.Sprint(selector), "must select something: an empty selector would place every Job"))
	}
	rules.selector = compiled
	return rules, errs
}
