// Package lookup reads, through the manager's cache, the cluster state that policies need. The webhooks
// and the background loops share it, so both decide from the same facts.
package lookup

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// RecurringJobProvides indexes RecurringJobs by what label rules can name: "job/<name>" and
	// "group/<group>" for each of its groups.
	RecurringJobProvides = "backupguard.io/recurringjob-provides"
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
	if err := indexer.IndexField(ctx, &longhorn.RecurringJob{}, RecurringJobProvides, RecurringJobProvidesValues); err != nil {
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

// RecurringJobProvidesValues are the RecurringJobProvides index values of a RecurringJob.
func RecurringJobProvidesValues(object client.Object) []string {
	job := object.(*longhorn.RecurringJob)
	// A job selects volumes by its metadata.name, never spec.name (longhorn-manager
	// controller/recurring_job_controller.go, app/recurringjob/volume.go).
	values := []string{"job/" + job.Name}
	for _, group := range job.Spec.Groups {
		values = append(values, "group/"+group)
	}
	return values
}

// PVCEnvironment gathers what the label decision for a PVC in namespace needs. With rules, it also
// finds which of the jobs and groups they name exist, for the warnings about rules that name jobs
// nobody runs (through the index, so the cost does not grow with the number of RecurringJobs).
func PVCEnvironment(ctx context.Context, reader client.Reader, namespace string, pvc *corev1.PersistentVolumeClaim, longhornNamespace string, rules *policies.LabelRules) (policies.PVCEnvironment, error) {
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
	if rules != nil {
		exists := func(value string) (bool, error) {
			found := &longhorn.RecurringJobList{}
			if err := reader.List(ctx, found, client.InNamespace(longhornNamespace), client.MatchingFields{RecurringJobProvides: value}); err != nil {
				return false, fmt.Errorf("looking up RecurringJobs in %s: %w", longhornNamespace, err)
			}
			return len(found.Items) > 0, nil
		}
		jobs, groups := rules.NamedJobsAndGroups()
		env.KnownJobs, env.KnownGroups = sets.New[string](), sets.New[string]()
		for _, named := range []struct {
			prefix string
			names  []string
			known  sets.Set[string]
		}{{"job/", jobs, env.KnownJobs}, {"group/", groups, env.KnownGroups}} {
			for _, name := range named.names {
				found, err := exists(named.prefix + name)
				if err != nil {
					return env, err
				}
				if found {
					named.known.Insert(name)
				}
			}
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

// Placement gathers what placing a backup Job in namespace needs: each mounted PVC, the pods that use
// it, its PV and Longhorn Volume, and the Nodes they point at.
func Placement(ctx context.Context, reader client.Reader, pods PodsByClaim, namespace string, job *batchv1.Job, longhornNamespace string) (policies.PlacementInput, error) {
	input := policies.PlacementInput{Job: job, Claims: map[string]policies.ClaimFacts{}, Nodes: map[string]*corev1.Node{}}
	for _, claim := range policies.ClaimNames(&job.Spec.Template.Spec) {
		var facts policies.ClaimFacts
		pvc := &corev1.PersistentVolumeClaim{}
		switch err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: claim}, pvc); {
		case apierrors.IsNotFound(err):
			input.Claims[claim] = facts
			continue
		case err != nil:
			return input, fmt.Errorf("reading PVC %s/%s: %w", namespace, claim, err)
		}
		facts.PVC = pvc
		var err error
		if facts.Pods, err = pods.PodsMounting(namespace, claim); err != nil {
			return input, fmt.Errorf("listing the pods that mount PVC %s/%s: %w", namespace, claim, err)
		}
		if pvc.Spec.VolumeName != "" {
			pv := &corev1.PersistentVolume{}
			switch err := reader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); {
			case err == nil:
				facts.PV = pv
			case !apierrors.IsNotFound(err):
				return input, fmt.Errorf("reading PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
			}
		}
		if facts.PV != nil && facts.PV.Spec.CSI != nil && facts.PV.Spec.CSI.Driver == longhorn.CSIDriver {
			volume := &longhorn.Volume{}
			switch err := reader.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: facts.PV.Spec.CSI.VolumeHandle}, volume); {
			case err == nil:
				facts.Volume = volume
			case !apierrors.IsNotFound(err):
				return input, fmt.Errorf("reading Longhorn volume %s: %w", facts.PV.Spec.CSI.VolumeHandle, err)
			}
		}
		input.Claims[claim] = facts
	}
	for _, name := range policies.NodesOfInterest(input) {
		node := &corev1.Node{}
		switch err := reader.Get(ctx, client.ObjectKey{Name: name}, node); {
		case err == nil:
			input.Nodes[name] = node
		case !apierrors.IsNotFound(err):
			return input, fmt.Errorf("reading node %s: %w", name, err)
		}
	}
	return input, nil
}

// SlimNode keeps only a Node's name, labels and taints.
func SlimNode(object any) (any, error) {
	node, ok := object.(*corev1.Node)
	if !ok {
		return object, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, UID: node.UID, ResourceVersion: node.ResourceVersion, Labels: node.Labels},
		Spec:       corev1.NodeSpec{Taints: node.Spec.Taints},
	}, nil
}
