package offline

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

var (
	backupGroupKind       = schema.GroupKind{Group: longhorn.GroupVersion.Group, Kind: "Backup"}
	backupVolumeGroupKind = schema.GroupKind{Group: longhorn.GroupVersion.Group, Kind: "BackupVolume"}
	settingGroupKind      = schema.GroupKind{Group: longhorn.GroupVersion.Group, Kind: "Setting"}
)

var _ lookup.ListReader = inventory{}

// Coverage gathers the facts of the coverage report from the documents, through the same function as
// the cluster path.
func Coverage(documents []Document, config *policies.Config, now time.Time, maxAge time.Duration) (lookup.CoverageInput, error) {
	return lookup.Coverage(context.Background(), takeInventory(documents), config, now, maxAge)
}

// addBackupState records the Backups, BackupVolumes and Settings of the input.
func (found *inventory) addBackupState(document Document, kind schema.GroupKind) {
	switch kind {
	case backupGroupKind:
		backup := &longhorn.Backup{}
		if decodeInto(document.Object, backup) == nil {
			found.backups = append(found.backups, backup)
		}
	case backupVolumeGroupKind:
		backupVolume := &longhorn.BackupVolume{}
		if decodeInto(document.Object, backupVolume) == nil {
			found.backupVolumes = append(found.backupVolumes, backupVolume)
		}
	case settingGroupKind:
		setting := &longhorn.Setting{}
		if decodeInto(document.Object, setting) == nil {
			found.settings[setting.Namespace+"/"+setting.Name] = setting
		}
	}
}

// inNamespace keeps the objects of namespace, and those of none (a namespace kustomize or kubectl
// gives them when applied), sorted by name.
func inNamespace[T interface {
	GetNamespace() string
	GetName() string
}](objects []T, namespace string) []T {
	var kept []T
	for _, object := range objects {
		if object.GetNamespace() == namespace || object.GetNamespace() == "" {
			kept = append(kept, object)
		}
	}
	slices.SortStableFunc(kept, func(a, b T) int { return strings.Compare(a.GetName(), b.GetName()) })
	return kept
}

// PVCs implements lookup.ListReader; a PVC that names no namespace is in "default", as validate takes it.
func (found inventory) PVCs(context.Context) ([]*corev1.PersistentVolumeClaim, error) {
	pvcs := make([]*corev1.PersistentVolumeClaim, 0, len(found.pvcs))
	for _, pvc := range found.pvcs {
		if pvc.Namespace == "" {
			pvc = pvc.DeepCopy()
			pvc.Namespace = corev1.NamespaceDefault
		}
		pvcs = append(pvcs, pvc)
	}
	slices.SortFunc(pvcs, func(a, b *corev1.PersistentVolumeClaim) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return pvcs, nil
}

// Volumes implements lookup.ListReader.
func (found inventory) Volumes(_ context.Context, namespace string) ([]*longhorn.Volume, error) {
	var volumes []*longhorn.Volume
	for _, volume := range found.volumes {
		if volume.Namespace == namespace {
			volumes = append(volumes, volume)
		}
	}
	return inNamespace(volumes, namespace), nil
}

// RecurringJobs implements lookup.ListReader.
func (found inventory) RecurringJobs(_ context.Context, namespace string) ([]*longhorn.RecurringJob, error) {
	return inNamespace(found.recurringJobs, namespace), nil
}

// Backups implements lookup.ListReader.
func (found inventory) Backups(_ context.Context, namespace string) ([]*longhorn.Backup, error) {
	return inNamespace(found.backups, namespace), nil
}

// BackupVolumes implements lookup.ListReader.
func (found inventory) BackupVolumes(_ context.Context, namespace string) ([]*longhorn.BackupVolume, error) {
	return inNamespace(found.backupVolumes, namespace), nil
}

// Setting implements lookup.ListReader.
func (found inventory) Setting(_ context.Context, namespace, name string) (*longhorn.Setting, error) {
	if setting := found.settings[namespace+"/"+name]; setting != nil {
		return setting, nil
	}
	return found.settings["/"+name], nil
}
