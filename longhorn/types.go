// Package longhorn holds typed views of the Longhorn objects backupguard reads, with only the fields it
// needs. backupguard never writes these structs back: mutations are JSON patches on metadata.labels, so
// fields that a newer Longhorn adds are never lost.
package longhorn

import (
	"strings"

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

// RecurringJobSpec mirrors every field of Longhorn's RecurringJobSpec (v1.12, plus the retention fields
// v1.13 adds), so that strict decoding can tell a typo from a real field.
type RecurringJobSpec struct {
	Name        string            `json:"name,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	Task        Task              `json:"task,omitempty"`
	Cron        string            `json:"cron,omitempty"`
	Retain      int               `json:"retain,omitempty"`
	Concurrency int               `json:"concurrency,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Parameters  map[string]string `json:"parameters,omitempty"`
	// RetentionPolicy (Longhorn v1.13) is count-based (the CRD's default: keep Retain) or age-based (keep
	// what is younger than RetainAge; Retain is then not consulted). Empty means count-based.
	RetentionPolicy RetentionPolicy `json:"retentionPolicy,omitempty"`
	// RetainAge (Longhorn v1.13) is a Go duration such as "720h".
	RetainAge string `json:"retainAge,omitempty"`
}

// RetentionPolicy says how a RecurringJob prunes what it created (Longhorn v1.13).
type RetentionPolicy string

// The retention policies of Longhorn v1.13's RecurringJob CRD.
const (
	RetentionCountBased RetentionPolicy = "count-based"
	RetentionAgeBased   RetentionPolicy = "age-based"
)

// RetentionPolicies lists the values the v1.13 CRD's enum allows.
var RetentionPolicies = []RetentionPolicy{RetentionCountBased, RetentionAgeBased}

// RecurringJobStatus mirrors Longhorn's RecurringJobStatus.
type RecurringJobStatus struct {
	OwnerID string `json:"ownerID,omitempty"`
	// ExecutionCount counts triggers, not successes.
	ExecutionCount int `json:"executionCount,omitempty"`
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
	scheme.AddKnownTypes(GroupVersion, &RecurringJob{}, &RecurringJobList{}, &Setting{}, &SettingList{}, &Volume{}, &VolumeList{},
		&Backup{}, &BackupList{}, &BackupTarget{}, &BackupTargetList{}, &SystemBackup{}, &SystemBackupList{},
		&BackupBackingImage{}, &BackupBackingImageList{}, &BackupVolume{}, &BackupVolumeList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}

// VolumeGVK identifies Volume objects in admission requests.
var VolumeGVK = GroupVersion.WithKind("Volume")

// Label keys and values that make Longhorn select volumes for recurring jobs.
const (
	// RecurringJobLabelPrefix + job name selects a volume for that job.
	RecurringJobLabelPrefix = "recurring-job.longhorn.io/"
	// RecurringJobGroupLabelPrefix + group name selects a volume for every job of the group.
	RecurringJobGroupLabelPrefix = "recurring-job-group.longhorn.io/"
	// RecurringJobSourceLabel on a PVC makes Longhorn copy the PVC's recurring labels to its Volume.
	RecurringJobSourceLabel = RecurringJobLabelPrefix + "source"
	// LabelEnabled is the only value Longhorn honours; any other is silently ignored.
	LabelEnabled = "enabled"
	// DefaultGroup is the group Longhorn gives a Volume that has no recurring label at all.
	DefaultGroup = "default"
	// RecurringJobPodLabel names the RecurringJob on the CronJob, Job and pod Longhorn runs for it
	// (longhorn-manager types/types.go, GetCronJobLabels).
	RecurringJobPodLabel = "recurring-job.longhorn.io"
	// CSIDriver is Longhorn's CSI driver and StorageClass provisioner.
	CSIDriver = "driver.longhorn.io"
)

// IsRecurringLabel tells whether a label key selects recurring jobs (the source label included).
func IsRecurringLabel(key string) bool {
	return strings.HasPrefix(key, RecurringJobLabelPrefix) || strings.HasPrefix(key, RecurringJobGroupLabelPrefix)
}

// Volume is longhorn.io/v1beta2 Volume, reduced to what backupguard reads.
type Volume struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VolumeSpec   `json:"spec,omitempty"`
	Status            VolumeStatus `json:"status,omitempty"`
}

// VolumeSpec holds the desired attachment.
type VolumeSpec struct {
	NodeID string `json:"nodeID,omitempty"`
	// FromBackup is the backup URL a restored volume is created from.
	FromBackup string `json:"fromBackup,omitempty"`
	// Standby makes the volume a disaster-recovery volume, which keeps restoring the latest backup.
	Standby bool `json:"Standby,omitempty"`
}

// VolumeStatus holds where the volume is attached and which PVC uses it.
type VolumeStatus struct {
	State string `json:"state,omitempty"`
	// Robustness is healthy, degraded, faulted or unknown.
	Robustness       string           `json:"robustness,omitempty"`
	CurrentNodeID    string           `json:"currentNodeID,omitempty"`
	KubernetesStatus KubernetesStatus `json:"kubernetesStatus,omitempty"`
	// RestoreRequired is true while the volume restores from a backup (a DR volume: while it is standby).
	RestoreRequired bool `json:"restoreRequired,omitempty"`
	// RestoreInitiated is true once Longhorn began the restore, and stays true.
	RestoreInitiated bool `json:"restoreInitiated,omitempty"`
	IsStandby        bool `json:"isStandby,omitempty"`
}

// KubernetesStatus links a Volume to its PV and PVC.
type KubernetesStatus struct {
	PVName    string `json:"pvName,omitempty"`
	PVStatus  string `json:"pvStatus,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	PVCName   string `json:"pvcName,omitempty"`
	// LastPVCRefAt is set when the PVC named above is gone: the Volume is Released, and a newer PVC of
	// the same namespace and name is not its PVC.
	LastPVCRefAt string `json:"lastPVCRefAt,omitempty"`
}

// VolumeList is a list of Volumes.
type VolumeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Volume `json:"items"`
}

// DeepCopyInto copies the receiver into out.
func (v *Volume) DeepCopyInto(out *Volume) {
	*out = *v
	v.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
}

// DeepCopyObject implements runtime.Object.
func (v *Volume) DeepCopyObject() runtime.Object {
	if v == nil {
		return nil
	}
	out := new(Volume)
	v.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *VolumeList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &VolumeList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Volume, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

// Backup is longhorn.io/v1beta2 Backup, reduced to its state.
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            BackupStatus `json:"status,omitempty"`
}

// BackupStatus holds a backup's progress: "", Pending, InProgress, Completed, Error, Unknown or Deleting.
type BackupStatus struct {
	State string `json:"state,omitempty"`
	// VolumeName is the backed-up volume, set once the backup is read back from the store
	// (longhorn-manager controller/backup_controller.go); until then the label backup-volume names it.
	VolumeName string `json:"volumeName,omitempty"`
	// BackupCreatedAt is when the upload finished (RFC 3339), set when the backup is Completed.
	BackupCreatedAt string `json:"backupCreatedAt,omitempty"`
	// Error says why the backup failed.
	Error string `json:"error,omitempty"`
}

// BackupVolumeLabel on a Backup names its volume from the backup's creation on (longhorn-manager
// types.LonghornLabelBackupVolume).
const BackupVolumeLabel = "backup-volume"

// BackupVolume is longhorn.io/v1beta2 BackupVolume: the backups of one volume in the store.
type BackupVolume struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BackupVolumeSpec   `json:"spec,omitempty"`
	Status            BackupVolumeStatus `json:"status,omitempty"`
}

// BackupVolumeSpec names the volume (the BackupVolume's own name need not be it since Longhorn v1.8).
type BackupVolumeSpec struct {
	VolumeName string `json:"volumeName,omitempty"`
}

// BackupVolumeStatus holds when the newest backup in the store was made.
type BackupVolumeStatus struct {
	// LastBackupAt is an RFC 3339 time, empty when the store holds no backup of the volume.
	LastBackupAt string `json:"lastBackupAt,omitempty"`
}

// BackupVolumeList is a list of BackupVolumes.
type BackupVolumeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupVolume `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (b *BackupVolume) DeepCopyObject() runtime.Object {
	if b == nil {
		return nil
	}
	out := &BackupVolume{TypeMeta: b.TypeMeta, Spec: b.Spec, Status: b.Status}
	b.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *BackupVolumeList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &BackupVolumeList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*BackupVolume))
	}
	return out
}

// BackupList is a list of Backups.
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

// BackupTarget is longhorn.io/v1beta2 BackupTarget, reduced to its polling and availability.
type BackupTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BackupTargetSpec   `json:"spec,omitempty"`
	Status            BackupTargetStatus `json:"status,omitempty"`
}

// BackupTargetSpec holds where the store is, how often Longhorn polls it, and the one-shot sync request.
type BackupTargetSpec struct {
	// BackupTargetURL is the store, e.g. s3://bucket@region/path; CredentialSecret names the Secret
	// in Longhorn's namespace with its credentials and, for S3 not on AWS, its endpoint (AWS_ENDPOINTS).
	BackupTargetURL  string `json:"backupTargetURL,omitempty"`
	CredentialSecret string `json:"credentialSecret,omitempty"`
	// PollInterval is a duration string; "0s" turns periodic polling off.
	PollInterval    string      `json:"pollInterval,omitempty"`
	SyncRequestedAt metav1.Time `json:"syncRequestedAt,omitempty"`
}

// BackupTargetStatus says whether Longhorn can use the target.
type BackupTargetStatus struct {
	Available    bool        `json:"available,omitempty"`
	LastSyncedAt metav1.Time `json:"lastSyncedAt,omitempty"`
}

// BackupTargetList is a list of BackupTargets.
type BackupTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupTarget `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (b *Backup) DeepCopyObject() runtime.Object {
	if b == nil {
		return nil
	}
	out := &Backup{TypeMeta: b.TypeMeta, Status: b.Status}
	b.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *BackupList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &BackupList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*Backup))
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (t *BackupTarget) DeepCopyObject() runtime.Object {
	if t == nil {
		return nil
	}
	out := &BackupTarget{TypeMeta: t.TypeMeta, Spec: t.Spec, Status: t.Status}
	t.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	t.Spec.SyncRequestedAt.DeepCopyInto(&out.Spec.SyncRequestedAt)
	t.Status.LastSyncedAt.DeepCopyInto(&out.Status.LastSyncedAt)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *BackupTargetList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &BackupTargetList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*BackupTarget))
	}
	return out
}

// SystemBackup is longhorn.io/v1beta2 SystemBackup, reduced to its state.
type SystemBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            SystemBackupStatus `json:"status,omitempty"`
}

// SystemBackupStatus holds a system backup's progress: "", Generating, CreatingVolumeBackups,
// CreatingBackingImageBackups, Uploading, Syncing, Deleting, Ready or Error.
type SystemBackupStatus struct {
	State string `json:"state,omitempty"`
}

// SystemBackupList is a list of SystemBackups.
type SystemBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SystemBackup `json:"items"`
}

// BackupBackingImage is longhorn.io/v1beta2 BackupBackingImage, reduced to its state (a Backup's states).
type BackupBackingImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            BackupStatus `json:"status,omitempty"`
}

// BackupBackingImageList is a list of BackupBackingImages.
type BackupBackingImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupBackingImage `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (b *SystemBackup) DeepCopyObject() runtime.Object {
	if b == nil {
		return nil
	}
	out := &SystemBackup{TypeMeta: b.TypeMeta, Status: b.Status}
	b.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *SystemBackupList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &SystemBackupList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*SystemBackup))
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (b *BackupBackingImage) DeepCopyObject() runtime.Object {
	if b == nil {
		return nil
	}
	out := &BackupBackingImage{TypeMeta: b.TypeMeta, Status: b.Status}
	b.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *BackupBackingImageList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &BackupBackingImageList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*BackupBackingImage))
	}
	return out
}
