package lookup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// ListReader is what the coverage report reads besides Reader: whole lists, in the cache or in the
// documents of an offline run. Longhorn objects are listed in the given namespace.
type ListReader interface {
	Reader
	PVCs(ctx context.Context) ([]*corev1.PersistentVolumeClaim, error)
	Volumes(ctx context.Context, namespace string) ([]*longhorn.Volume, error)
	RecurringJobs(ctx context.Context, namespace string) ([]*longhorn.RecurringJob, error)
	Backups(ctx context.Context, namespace string) ([]*longhorn.Backup, error)
	BackupVolumes(ctx context.Context, namespace string) ([]*longhorn.BackupVolume, error)
	// Setting returns nil for a Setting that does not exist.
	Setting(ctx context.Context, namespace, name string) (*longhorn.Setting, error)
}

// CoverageInput is what the coverage report and its audit are decided from.
type CoverageInput struct {
	Facts policies.CoverageFacts
	// Settings are the Longhorn Settings in force; SettingWarnings say which could not be read.
	Settings        policies.LonghornSettings
	SettingWarnings []string
}

// Coverage gathers, through reader, the facts of the coverage report at now: one volume per PVC of a
// configured provisioner (with its bound Volume, found as the webhooks find it) and one per Volume
// bound to no PVC, a Released one included; the RecurringJobs, the Settings, and the newest backups.
//
// Offline, a PVC's labels are those backupguard's label rules give it, and a PVC whose Volume is not
// in the input is taken to be what Longhorn makes of it: a source PVC's Volume carries the PVC's
// recurring labels; any other starts in the default group.
func Coverage(ctx context.Context, reader ListReader, config *policies.Config, now time.Time, maxAge time.Duration) (CoverageInput, error) {
	namespace := config.Longhorn.Namespace
	input := CoverageInput{Facts: policies.CoverageFacts{
		Now: now, Window: config.CompiledWindow(), MaxAge: maxAge, CronZone: config.RecurringJobRules().CronTimeZone,
	}}
	var err error
	if input.Settings, input.SettingWarnings, err = coverageSettings(ctx, reader, config); err != nil {
		return input, err
	}
	input.Facts.AllowDetached = input.Settings.AllowRecurringJobWhileVolumeDetached
	if input.Facts.Jobs, err = reader.RecurringJobs(ctx, namespace); err != nil {
		return input, err
	}
	backups, err := newestBackups(ctx, reader, namespace)
	if err != nil {
		return input, err
	}
	pvcs, err := reader.PVCs(ctx)
	if err != nil {
		return input, err
	}
	claimed := sets.New[string]()
	for _, pvc := range pvcs {
		env, err := PVCEnvironment(ctx, reader, pvc.Namespace, pvc, config)
		if err != nil {
			return input, err
		}
		if !isLonghornPVC(env, config) {
			continue
		}
		row := policies.CoverageVolume{Namespace: pvc.Namespace, PVC: pvc.Name, Created: pvc.CreationTimestamp.Time}
		labels := pvc.Labels
		if reader.Offline() {
			labels = policies.DecidePVCLabels(pvc, env, config.LabelRules()).Labels
		}
		switch volume := env.Volume; {
		case volume != nil:
			claimed.Insert(volume.Name)
			fillFromVolume(&row, volume)
		case labels[longhorn.RecurringJobSourceLabel] == longhorn.LabelEnabled:
			row.Labels = recurringLabels(labels)
		}
		backups.fill(&row)
		input.Facts.Volumes = append(input.Facts.Volumes, row)
	}
	volumes, err := reader.Volumes(ctx, namespace)
	if err != nil {
		return input, err
	}
	for _, volume := range volumes {
		if claimed.Has(volume.Name) {
			continue
		}
		var row policies.CoverageVolume
		fillFromVolume(&row, volume)
		backups.fill(&row)
		input.Facts.Volumes = append(input.Facts.Volumes, row)
	}
	return input, nil
}

// isLonghornPVC tells whether a PVC's volume is one of the configured provisioners': it has a Volume,
// or its StorageClass or PV says so. Offline, a PVC whose class is not in the input is taken to be
// Longhorn's, as validate takes it.
func isLonghornPVC(env policies.PVCEnvironment, config *policies.Config) bool {
	rules := config.LabelRules()
	switch {
	case env.Volume != nil:
		return true
	case env.StorageClass != nil:
		return rules.IsProvisioner(env.StorageClass.Provisioner)
	case env.BoundPVDriver != "":
		return rules.IsProvisioner(env.BoundPVDriver)
	}
	return env.Offline
}

func fillFromVolume(row *policies.CoverageVolume, volume *longhorn.Volume) {
	row.Volume = volume.Name
	row.Labels = recurringLabels(volume.Labels)
	// Longhorn runs a job for a volume only when it is attached (or the Setting allows any state), not
	// faulted and not restoring (app/recurringjob/util.go filterVolumesForJob). A Volume without a
	// state (a manifest without status) is not known to be detached.
	row.Detached = volume.Status.State != "" && volume.Status.State != "attached"
	row.Faulted = volume.Status.Robustness == "faulted"
	row.Restoring = volume.Status.RestoreRequired
	if row.Created.IsZero() {
		row.Created = volume.CreationTimestamp.Time
	}
}

// recurringLabels keeps the labels that select recurring jobs, the source label left out.
func recurringLabels(labels map[string]string) map[string]string {
	kept := map[string]string{}
	for key, value := range labels {
		if longhorn.IsRecurringLabel(key) && key != longhorn.RecurringJobSourceLabel {
			kept[key] = value
		}
	}
	return kept
}

// coverageSettings reads the Settings the report depends on. Offline, a Setting that is not in the
// input takes the config's stand-in value.
func coverageSettings(ctx context.Context, reader ListReader, config *policies.Config) (policies.LonghornSettings, []string, error) {
	namespace := config.Longhorn.Namespace
	maxRetention, err := reader.Setting(ctx, namespace, longhorn.SettingRecurringJobMaxRetention)
	if err != nil {
		return policies.LonghornSettings{}, nil, err
	}
	allowDetached, err := reader.Setting(ctx, namespace, longhorn.SettingAllowRecurringJobWhileVolumeDetached)
	if err != nil {
		return policies.LonghornSettings{}, nil, err
	}
	settings, warnings := policies.LonghornSettingsFrom(maxRetention, allowDetached)
	if reader.Offline() {
		standIn := policies.OfflineLonghornSettings(config)
		if maxRetention == nil {
			settings.RecurringJobMaxRetention = standIn.RecurringJobMaxRetention
		}
		if allowDetached == nil {
			settings.AllowRecurringJobWhileVolumeDetached = standIn.AllowRecurringJobWhileVolumeDetached
		}
	}
	return settings, warnings, nil
}

// volumeBackups is the newest backup of each volume, and its newest completed one.
type volumeBackups struct {
	newest         map[string]*longhorn.Backup
	lastCompleted  map[string]time.Time
	lastInTheStore map[string]time.Time
}

func newestBackups(ctx context.Context, reader ListReader, namespace string) (volumeBackups, error) {
	found := volumeBackups{newest: map[string]*longhorn.Backup{}, lastCompleted: map[string]time.Time{}, lastInTheStore: map[string]time.Time{}}
	backups, err := reader.Backups(ctx, namespace)
	if err != nil {
		return found, err
	}
	for _, backup := range backups {
		volume := backup.Status.VolumeName
		if volume == "" {
			volume = backup.Labels[longhorn.BackupVolumeLabel]
		}
		if volume == "" || backup.DeletionTimestamp != nil || backup.Status.State == "Deleting" {
			continue
		}
		at := backupTime(backup)
		if newest := found.newest[volume]; newest == nil || at.After(backupTime(newest)) ||
			(at.Equal(backupTime(newest)) && backup.Name > newest.Name) {
			found.newest[volume] = backup
		}
		if backup.Status.State == "Completed" && at.After(found.lastCompleted[volume]) {
			found.lastCompleted[volume] = at
		}
	}
	backupVolumes, err := reader.BackupVolumes(ctx, namespace)
	if err != nil {
		return found, err
	}
	for _, backupVolume := range backupVolumes {
		volume := backupVolume.Spec.VolumeName
		if volume == "" {
			volume = backupVolume.Name
		}
		if at, err := time.Parse(time.RFC3339, backupVolume.Status.LastBackupAt); err == nil && at.After(found.lastInTheStore[volume]) {
			found.lastInTheStore[volume] = at
		}
	}
	return found, nil
}

// backupTime orders backups: when the upload finished, else (not finished) when the Backup was created.
func backupTime(backup *longhorn.Backup) time.Time {
	if at, err := time.Parse(time.RFC3339, backup.Status.BackupCreatedAt); err == nil {
		return at
	}
	return backup.CreationTimestamp.Time
}

func (found volumeBackups) fill(row *policies.CoverageVolume) {
	row.LastBackup = found.lastCompleted[row.Volume]
	// The store may hold a newer backup than the Backups in the cluster (one not synced yet).
	if inTheStore := found.lastInTheStore[row.Volume]; inTheStore.After(row.LastBackup) {
		row.LastBackup = inTheStore
	}
	if newest := found.newest[row.Volume]; newest != nil {
		row.NewestBackupState, row.NewestBackupError = newest.Status.State, newest.Status.Error
	}
}

// PVCs implements ListReader.
func (c Cache) PVCs(ctx context.Context) ([]*corev1.PersistentVolumeClaim, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := c.Client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing PVCs: %w", err)
	}
	return pointers(list.Items), nil
}

// Volumes implements ListReader.
func (c Cache) Volumes(ctx context.Context, namespace string) ([]*longhorn.Volume, error) {
	list := &longhorn.VolumeList{}
	if err := c.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Longhorn volumes in %s: %w", namespace, err)
	}
	return pointers(list.Items), nil
}

// RecurringJobs implements ListReader.
func (c Cache) RecurringJobs(ctx context.Context, namespace string) ([]*longhorn.RecurringJob, error) {
	list := &longhorn.RecurringJobList{}
	if err := c.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing RecurringJobs in %s: %w", namespace, err)
	}
	return pointers(list.Items), nil
}

// Backups implements ListReader.
func (c Cache) Backups(ctx context.Context, namespace string) ([]*longhorn.Backup, error) {
	list := &longhorn.BackupList{}
	if err := c.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Backups in %s: %w", namespace, err)
	}
	return pointers(list.Items), nil
}

// BackupVolumes implements ListReader.
func (c Cache) BackupVolumes(ctx context.Context, namespace string) ([]*longhorn.BackupVolume, error) {
	list := &longhorn.BackupVolumeList{}
	if err := c.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing BackupVolumes in %s: %w", namespace, err)
	}
	return pointers(list.Items), nil
}

// Setting implements ListReader.
func (c Cache) Setting(ctx context.Context, namespace, name string) (*longhorn.Setting, error) {
	return get[longhorn.Setting](ctx, c.Client, namespace, name, "Longhorn setting")
}

var _ ListReader = Cache{}

// pointers points at each item of a list, in the order of namespace/name. Each key is built once, not
// at every comparison: over the Backups of a large cluster that was most of a report's garbage.
func pointers[T any, PT interface {
	*T
	client.Object
}](items []T) []PT {
	type keyed struct {
		key    string
		object PT
	}
	sorted := make([]keyed, len(items))
	for i := range items {
		object := PT(&items[i])
		sorted[i] = keyed{object.GetNamespace() + "/" + object.GetName(), object}
	}
	slices.SortFunc(sorted, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]PT, len(items))
	for i := range sorted {
		out[i] = sorted[i].object
	}
	return out
}
