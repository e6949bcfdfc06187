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

// Reader is what backupguard's decisions read of a cluster, the way Kubernetes' admission plugins take
// listers. Cache reads the manager's cache (serve); the offline package reads the documents of a
// `backupguard validate` run. The gathering functions of this package take a Reader, so both paths
// collect each decision's facts in the same code. A getter returns nil and no error for an object that
// does not exist.
type Reader interface {
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	PVC(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error)
	PVCByUID(ctx context.Context, uid string) (*corev1.PersistentVolumeClaim, error)
	PV(ctx context.Context, name string) (*corev1.PersistentVolume, error)
	StorageClass(ctx context.Context, name string) (*storagev1.StorageClass, error)
	StorageClasses(ctx context.Context) ([]*storagev1.StorageClass, error)
	Volume(ctx context.Context, namespace, name string) (*longhorn.Volume, error)
	// RecurringJobsProviding tells which of jobs (names) and groups some RecurringJob in namespace
	// provides; nil sets when the reader cannot tell.
	RecurringJobsProviding(ctx context.Context, namespace string, jobs, groups []string) (foundJobs, foundGroups sets.Set[string], err error)
	PodsMounting(ctx context.Context, namespace, claim string) ([]policies.MountingPod, error)
	Node(ctx context.Context, name string) (*corev1.Node, error)
	// Offline tells that the reader holds only part of a cluster (the files of an offline run): what it
	// lacks may still exist.
	Offline() bool
}

// Cache is the Reader over the manager's cache: typed objects through Client, the Pods that mount a
// claim through Pods (Pods are cached as PodClaims, apart from the typed cache).
type Cache struct {
	Client client.Reader
	// Pods is nil where no decision reads pods (the label sync).
	Pods PodsByClaim
}

var _ Reader = Cache{}

// get reads one object; nil when it does not exist.
func get[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, reader client.Reader, namespace, name, what string) (PT, error) {
	object := PT(new(T))
	switch err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, object); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		if namespace != "" {
			name = namespace + "/" + name
		}
		return nil, fmt.Errorf("reading %s %s: %w", what, name, err)
	}
	return object, nil
}

// Namespace implements Reader.
func (c Cache) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return get[corev1.Namespace](ctx, c.Client, "", name, "namespace")
}

// PVC implements Reader.
func (c Cache) PVC(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return get[corev1.PersistentVolumeClaim](ctx, c.Client, namespace, name, "PVC")
}

// PVCByUID implements Reader, through the PVCByUID index.
func (c Cache) PVCByUID(ctx context.Context, uid string) (*corev1.PersistentVolumeClaim, error) {
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := c.Client.List(ctx, pvcs, client.MatchingFields{PVCByUID: uid}); err != nil {
		return nil, fmt.Errorf("looking up the PVC with uid %s: %w", uid, err)
	}
	if len(pvcs.Items) != 1 {
		return nil, nil
	}
	return &pvcs.Items[0], nil
}

// PV implements Reader.
func (c Cache) PV(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	return get[corev1.PersistentVolume](ctx, c.Client, "", name, "PersistentVolume")
}

// StorageClass implements Reader.
func (c Cache) StorageClass(ctx context.Context, name string) (*storagev1.StorageClass, error) {
	return get[storagev1.StorageClass](ctx, c.Client, "", name, "StorageClass")
}

// StorageClasses implements Reader.
func (c Cache) StorageClasses(ctx context.Context) ([]*storagev1.StorageClass, error) {
	list := &storagev1.StorageClassList{}
	if err := c.Client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing StorageClasses: %w", err)
	}
	classes := make([]*storagev1.StorageClass, len(list.Items))
	for i := range list.Items {
		classes[i] = &list.Items[i]
	}
	return classes, nil
}

// Volume implements Reader.
func (c Cache) Volume(ctx context.Context, namespace, name string) (*longhorn.Volume, error) {
	return get[longhorn.Volume](ctx, c.Client, namespace, name, "Longhorn volume")
}

// RecurringJobsProviding implements Reader through the RecurringJobProvides index, so that its cost
// does not grow with the number of RecurringJobs.
func (c Cache) RecurringJobsProviding(ctx context.Context, namespace string, jobs, groups []string) (sets.Set[string], sets.Set[string], error) {
	foundJobs, foundGroups := sets.New[string](), sets.New[string]()
	for _, named := range []struct {
		prefix string
		names  []string
		found  sets.Set[string]
	}{{"job/", jobs, foundJobs}, {"group/", groups, foundGroups}} {
		for _, name := range named.names {
			list := &longhorn.RecurringJobList{}
			if err := c.Client.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{RecurringJobProvides: named.prefix + name}); err != nil {
				return nil, nil, fmt.Errorf("looking up RecurringJobs in %s: %w", namespace, err)
			}
			if len(list.Items) > 0 {
				named.found.Insert(name)
			}
		}
	}
	return foundJobs, foundGroups, nil
}

// PodsMounting implements Reader.
func (c Cache) PodsMounting(_ context.Context, namespace, claim string) ([]policies.MountingPod, error) {
	if c.Pods == nil {
		return nil, fmt.Errorf("this reader has no pod index")
	}
	pods, err := c.Pods.PodsMounting(namespace, claim)
	if err != nil {
		return nil, fmt.Errorf("listing the pods that mount PVC %s/%s: %w", namespace, claim, err)
	}
	return pods, nil
}

// Node implements Reader.
func (c Cache) Node(ctx context.Context, name string) (*corev1.Node, error) {
	return get[corev1.Node](ctx, c.Client, "", name, "node")
}

// Offline implements Reader: the cache is the whole cluster.
func (Cache) Offline() bool { return false }
