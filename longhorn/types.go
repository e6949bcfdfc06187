// Package longhorn holds typed views of the Longhorn objects backupguard reads, with only the fields it
// needs. backupguard never writes these structs back: mutations are JSON patches on metadata.labels, so
// fields that a newer Longhorn adds are never lost.
package longhorn

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the only Longhorn API version backupguard speaks (v1beta1 is gone since Longhorn v1.10).
var GroupVersion = schema.GroupVersion{Group: "longhorn.io", Version: "v1beta2"}

// RecurringJobGVK identifies RecurringJob objects in admission requests and manifests.
var RecurringJobGVK = GroupVersion.WithKind("RecurringJob")

// Task is what a RecurringJob does when it fires.
type Task string

// The tasks Longhorn v1.12 knows.
const (
	TaskSnapshot            Task = "snapshot"
	TaskSnapshotForceCreate Task = "snapshot-force-create"
	TaskSnapshotCleanup     Task = "snapshot-cleanup"
	TaskSnapshotDelete      Task = "snapshot-delete"
	TaskBackup              Task = "backup"
	TaskBackupForceCreate   Task = "backup-force-create"
	TaskFilesystemTrim      Task = "filesystem-trim"
	TaskSystemBackup        Task = "system-backup"
)

// Tasks lists every task in the order Longhorn documents them.
var Tasks = []Task{
	TaskSnapshot, TaskSnapshotForceCreate, TaskSnapshotCleanup, TaskSnapshotDelete,
	TaskBackup, TaskBackupForceCreate, TaskFilesystemTrim, TaskSystemBackup,
}

// Parameter keys of RecurringJob.spec.parameters.
const (
	ParameterFullBackupInterval = "full-backup-interval"
	ParameterVolumeBackupPolicy = "volume-backup-policy"
)

// Names of the Longhorn Settings that RecurringJob validation reads.
const (
	SettingRecurringJobMaxRetention             = "recurring-job-max-retention"
	SettingAllowRecurringJobWhileVolumeDetached = "allow-recurring-job-while-volume-detached"
)

// RecurringJob is longhorn.io/v1beta2 RecurringJob.
type RecurringJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RecurringJobSpec   `json:"spec,omitempty"`
	Status            RecurringJobStatus `json:"status,omitempty"`
}

// RecurringJobSpec mirrors every field of Longhorn's RecurringJobSpec, so that strict decoding can tell
// a typo from a real field.
type RecurringJobSpec struct {
	Name        string            `json:"name,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	Task        Task              `json:"task,omitempty"`
	Cron        string            `json:"cron,omitempty"`
	Retain      int               `json:"retain,omitempty"`
	Concurrency int               `json:"concurrency,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Parameters  map[string]string `json:"parameters,omitempty"`
}

// RecurringJobStatus mirrors Longhorn's RecurringJobStatus.
type RecurringJobStatus struct {
	OwnerID string `json:"ownerID,omitempty"`
	// ExecutionCount counts triggers, not successes.
	ExecutionCount int `json:"executionCount,omitempty"`
}

// EffectiveName is the name Longhorn uses in labels: spec.name, or metadata.name when spec.name is empty
// (Longhorn's mutator fills it that way).
func (j *RecurringJob) EffectiveName() string {
	if j.Spec.Name != "" {
		return j.Spec.Name
	}
	return j.Name
}

// RecurringJobList is a list of RecurringJobs.
type RecurringJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RecurringJob `json:"items"`
}

// Setting is longhorn.io/v1beta2 Setting: a named string value in the Longhorn namespace.
type Setting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Value             string `json:"value"`
}

// SettingList is a list of Settings.
type SettingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Setting `json:"items"`
}

// AddToScheme registers the Longhorn kinds backupguard reads.
func AddToScheme(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &RecurringJob{}, &RecurringJobList{}, &Setting{}, &SettingList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
