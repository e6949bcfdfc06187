// Package lookup gathers the facts policies decide on, through one small Reader interface with two
// implementations: the manager's cache (Cache, here) and the documents of an offline run (package
// offline). The webhooks, the background loops and `backupguard validate` share the gathering, so
// they decide from the same facts.
package lookup

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// RecurringJobProvides indexes RecurringJobs by what label rules can name: "job/<metadata.name>"
	// (the job's identity, the name in its label key) and "group/<group>" for each of its groups.
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
	return indexer.IndexField(ctx, &longhorn.RecurringJob{}, RecurringJobProvides, RecurringJobProvidesValues)
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
