package policies

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/backupguard/backupguard/longhorn"
)

// StoreFacts are the Longhorn objects whose work talks to the object store, each kind listed once.
type StoreFacts struct {
	Backups             []longhorn.Backup
	SystemBackups       []longhorn.SystemBackup
	BackupBackingImages []longhorn.BackupBackingImage
	Volumes             []longhorn.Volume
	// RecurringJobPods are the pods Longhorn's recurring-job CronJobs run, in the Longhorn namespace.
	RecurringJobPods []RecurringJobPod
	// RecurringJobs tell which of those pods back up (a snapshot job never reaches the store).
	RecurringJobs []longhorn.RecurringJob
}

// RecurringJobPod is a pod Longhorn runs for a RecurringJob (label recurring-job.longhorn.io).
type RecurringJobPod struct {
	Name         string
	RecurringJob string
	Phase        corev1.PodPhase
}

// StoreWork counts the work in progress with the object store, by kind.
type StoreWork struct {
	Backups             int
	SystemBackups       int
	BackupBackingImages int
	Restores            int
	DRVolumes           int
	RecurringJobPods    int
}

// Total is all the work.
func (w StoreWork) Total() int {
	return w.Backups + w.SystemBackups + w.BackupBackingImages + w.Restores + w.DRVolumes + w.RecurringJobPods
}

// String says what is busy, e.g. "2 backups, 1 system backup, 1 recurring-job pod".
func (w StoreWork) String() string {
	var parts []string
	for _, kind := range []struct {
		count          int
		singular, many string
	}{
		{w.Backups, "backup", "backups"},
		{w.SystemBackups, "system backup", "system backups"},
		{w.BackupBackingImages, "backing-image backup", "backing-image backups"},
		{w.Restores, "restoring volume", "restoring volumes"},
		{w.DRVolumes, "DR volume", "DR volumes"},
		{w.RecurringJobPods, "recurring-job pod", "recurring-job pods"},
	} {
		switch {
		case kind.count == 1:
			parts = append(parts, "1 "+kind.singular)
		case kind.count > 1:
			parts = append(parts, fmt.Sprintf("%d %s", kind.count, kind.many))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Backup states that still need the store (longhorn-manager k8s/pkg/apis/longhorn/v1beta2/backup.go):
// "" is a Backup Longhorn has not picked up yet, Pending waits for a snapshot, an attachment or another
// backup's deletion, InProgress uploads, Deleting walks the store. BackupBackingImages share the enum.
func backupBusy(deleting bool, state string) bool {
	switch state {
	case "", "Pending", "InProgress", "Deleting":
		return true
	}
	return deleting
}

// systemBackupBusy: every SystemBackup state but Ready and Error is a step that reads or writes the
// store (longhorn-manager k8s/pkg/apis/longhorn/v1beta2/systembackup.go,
// controller/system_backup_controller.go); "" has not started yet.
func systemBackupBusy(deleting bool, state string) bool {
	switch state {
	case "", "Generating", "CreatingVolumeBackups", "CreatingBackingImageBackups", "Uploading", "Syncing", "Deleting":
		return true
	}
	return deleting
}

// Work counts what talks to the object store now. A deletion counts in any state: deleting a backup
// walks the store with up to tens of thousands of LIST calls, after the recurring-job pod has exited.
func (s StoreFacts) Work() StoreWork {
	var work StoreWork
	for _, backup := range s.Backups {
		if backupBusy(backup.DeletionTimestamp != nil, backup.Status.State) {
			work.Backups++
		}
	}
	for _, backup := range s.SystemBackups {
		if systemBackupBusy(backup.DeletionTimestamp != nil, backup.Status.State) {
			work.SystemBackups++
		}
	}
	for _, backup := range s.BackupBackingImages {
		if backupBusy(backup.DeletionTimestamp != nil, backup.Status.State) {
			work.BackupBackingImages++
		}
	}
	for _, volume := range s.Volumes {
		switch {
		// A DR volume keeps restoring each new backup while it is standby
		// (longhorn-manager controller/volume_controller.go, checkAndFinishVolumeRestore).
		case volume.Spec.Standby || volume.Status.IsStandby:
			work.DRVolumes++
		// restoreRequired is set when the restore starts and cleared when it finished; before Longhorn
		// saw the volume, spec.fromBackup without restoreInitiated is a restore about to start
		// (controller/volume_controller.go, checkAndInitVolumeRestore).
		case volume.Status.RestoreRequired || (volume.Spec.FromBackup != "" && !volume.Status.RestoreInitiated):
			work.Restores++
		}
	}
	tasks := map[string]longhorn.Task{}
	for _, job := range s.RecurringJobs {
		tasks[job.Name] = job.Spec.Task
	}
	for _, pod := range s.RecurringJobPods {
		if pod.Phase == corev1.PodSucceeded || pod.Phase == corev1.PodFailed {
			continue
		}
		// Between two volumes a backup job's pod may have no Backup in progress at all. A pod whose
		// RecurringJob is gone counts too: its task is unknown.
		if task, known := tasks[pod.RecurringJob]; !known || isBackupTask(task) {
			work.RecurringJobPods++
		}
	}
	return work
}

// Requests are the Backups and SystemBackups asked for and not started yet (state "" or Pending, not
// being deleted) that were created after since: what a manual backup, a CSI VolumeSnapshot of a Longhorn
// class or a system backup looks like before Longhorn reaches the store. Sorted "Kind name".
func (s StoreFacts) Requests(since time.Time) []string {
	var requests []string
	isNew := func(created time.Time) bool { return since.IsZero() || created.After(since) }
	for _, backup := range s.Backups {
		if backup.DeletionTimestamp == nil && (backup.Status.State == "" || backup.Status.State == "Pending") && isNew(backup.CreationTimestamp.Time) {
			requests = append(requests, "Backup "+backup.Name)
		}
	}
	for _, backup := range s.SystemBackups {
		if backup.DeletionTimestamp == nil && backup.Status.State == "" && isNew(backup.CreationTimestamp.Time) {
			requests = append(requests, "SystemBackup "+backup.Name)
		}
	}
	slices.Sort(requests)
	return requests
}
