// Package lookup reads, through the manager's cache, the cluster state that policies need. The webhooks
// and the background loops share it, so both decide from the same facts.
package lookup

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// Cache index names.
const (
	// PVCByUID indexes PVCs by metadata.uid: a new Volume's only link to its PVC is its "pvc-<uid>" name.
	PVCByUID = "backupguard.io/pvc-uid"
	// PVCByStorageClass indexes PVCs by the StorageClass they ask for.
	PVCByStorageClass = "backupguard.io/pvc-storage-class"
	// VolumeByPVC indexes Volumes by "namespace/name" of the PVC in status.kubernetesStatus.
	VolumeByPVC = "backupguard.io/volume-pvc"
)

// AddIndexes registers the cache indexes the lookups use.
func AddIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &corev1.PersistentVolumeClaim{}, PVCByUID, func(object client.Object) []string {
		return []string{string(object.GetUID())}
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &corev1.PersistentVolumeClaim{}, PVCByStorageClass, func(object client.Object) []string {
		return []string{policies.StorageClassName(object.(*corev1.PersistentVolumeClaim))}
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &longhorn.Volume{}, VolumeByPVC, func(object client.Object) []string {
		status := object.(*longhorn.Volume).Status.KubernetesStatus
		if status.PVCName == "" {
			return nil
		}
		return []string{status.Namespace + "/" + status.PVCName}
	})
}

// PVCEnvironment gathers what the label decision for a PVC in namespace needs. withKnownJobs also
// lists the RecurringJobs, for the warnings about rules that name jobs nobody runs.
func PVCEnvironment(ctx context.Context, reader client.Reader, namespace string, pvc *corev1.PersistentVolumeClaim, longhornNamespace string, withKnownJobs bool) (policies.PVCEnvironment, error) {
	env := policies.PVCEnvironment{Namespace: namespace}
	ns := &corev1.Namespace{}
	switch err := reader.Get(ctx, client.ObjectKey{Name: namespace}, ns); {
	case err == nil:
		env.NamespaceLabels, env.NamespaceFound = ns.Labels, true
	case !apierrors.IsNotFound(err):
		return env, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	if className := policies.StorageClassName(pvc); className != "" {
		class := &storagev1.StorageClass{}
		switch err := reader.Get(ctx, client.ObjectKey{Name: className}, class); {
		case err == nil:
			env.StorageClass = class
		case !apierrors.IsNotFound(err):
			return env, fmt.Errorf("reading StorageClass %s: %w", className, err)
		}
	}
	if env.StorageClass == nil && pvc.Spec.VolumeName != "" {
		pv := &corev1.PersistentVolume{}
		switch err := reader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); {
		case err == nil:
			if pv.Spec.CSI != nil {
				env.BoundPVDriver = pv.Spec.CSI.Driver
			}
		case !apierrors.IsNotFound(err):
			return env, fmt.Errorf("reading PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
		}
	}
	if withKnownJobs {
		jobs := &longhorn.RecurringJobList{}
		if err := reader.List(ctx, jobs, client.InNamespace(longhornNamespace)); err != nil {
			return env, fmt.Errorf("listing RecurringJobs in %s: %w", longhornNamespace, err)
		}
		env.KnownJobs, env.KnownGroups = sets.New[string](), sets.New[string]()
		for _, job := range jobs.Items {
			env.KnownJobs.Insert(job.EffectiveName())
			env.KnownGroups.Insert(job.Spec.Groups...)
		}
	}
	return env, nil
}

// PVCOfVolume finds the PVC a Volume belongs to: by the "pvc-<uid>" name (the only link while the
// Volume is being provisioned), else by status.kubernetesStatus. nil when there is none.
func PVCOfVolume(ctx context.Context, reader client.Reader, volume *longhorn.Volume) (*corev1.PersistentVolumeClaim, error) {
	if uid, ok := policies.PVCUIDOfVolume(volume.Name); ok {
		pvcs := &corev1.PersistentVolumeClaimList{}
		if err := reader.List(ctx, pvcs, client.MatchingFields{PVCByUID: uid}); err != nil {
			return nil, fmt.Errorf("looking up the PVC with uid %s: %w", uid, err)
		}
		if len(pvcs.Items) == 1 {
			return &pvcs.Items[0], nil
		}
	}
	status := volume.Status.KubernetesStatus
	if status.PVCName == "" || status.Namespace == "" {
		return nil, nil
	}
	pvc := &corev1.PersistentVolumeClaim{}
	switch err := reader.Get(ctx, client.ObjectKey{Namespace: status.Namespace, Name: status.PVCName}, pvc); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading PVC %s/%s: %w", status.Namespace, status.PVCName, err)
	}
	return pvc, nil
}
