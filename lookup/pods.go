package lookup

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// PodClaims is all that is cached of a Pod: the claims it mounts, where it runs, whether it still runs,
// and the labels that tie it to a Job. A cluster has many more Pods than anything else backupguard
// reads, and a *corev1.Pod costs over 1 KiB even when emptied, so the Pod informer stores this instead.
type PodClaims struct {
	Namespace string
	// Pod is what placement reads: name, node, phase and Job labels.
	Pod policies.MountingPod
	// Claims are the names of the PVCs it mounts.
	Claims []string
	// RecurringJob is the RecurringJob a Longhorn recurring-job pod runs for, "" for any other pod.
	RecurringJob string
}

// GetObjectMeta gives the informer's store the namespace and name it keys objects by.
func (p *PodClaims) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Pod.Name}
}

// GetObjectKind: PodClaims is never serialised.
func (p *PodClaims) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject copies p; the informer only needs it for its interface.
func (p *PodClaims) DeepCopyObject() runtime.Object {
	out := &PodClaims{Namespace: p.Namespace, Pod: p.Pod, Claims: slices.Clone(p.Claims), RecurringJob: p.RecurringJob}
	out.Pod.JobLabels = maps.Clone(p.Pod.JobLabels)
	return out
}

// SlimPod is the Pod informer's transform: a Pod becomes its PodClaims; anything else (a deletion
// tombstone, an object already transformed) passes unchanged.
func SlimPod(object any) (any, error) {
	pod, ok := object.(*corev1.Pod)
	if !ok {
		return object, nil
	}
	return &PodClaims{Namespace: pod.Namespace, Pod: policies.MountingPodOf(pod), Claims: policies.ClaimNames(&pod.Spec),
		RecurringJob: pod.Labels[longhorn.RecurringJobPodLabel]}, nil
}

// PodsByClaim finds the Pods of a namespace that mount a PVC.
type PodsByClaim interface {
	PodsMounting(namespace, claim string) ([]policies.MountingPod, error)
}

// podByClaim indexes PodClaims by "namespace/claim" of every PVC they mount.
const podByClaim = "backupguard.io/pod-claims"

// PodIndex finds, among the cached Pods, the ones that mount a PVC.
type PodIndex struct {
	indexer toolscache.Indexer
}

// NewPodIndex sets up the Pod informer of informers (which must be configured by CacheOptions, so its
// store holds PodClaims) with the claim index. Call it before the cache starts.
func NewPodIndex(ctx context.Context, informers cache.Informers) (*PodIndex, error) {
	indexer, err := indexPods(ctx, informers, podByClaim, claimKeys)
	if err != nil {
		return nil, err
	}
	return &PodIndex{indexer: indexer}, nil
}

// indexPods adds an index to the Pod informer of informers (configured by CacheOptions, so that its store
// holds PodClaims) and returns its indexer.
func indexPods(ctx context.Context, informers cache.Informers, name string, keys toolscache.IndexFunc) (toolscache.Indexer, error) {
	informer, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, err
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the Pod informer is a %T, not a client-go SharedIndexInformer", informer)
	}
	if err := shared.AddIndexers(toolscache.Indexers{name: keys}); err != nil {
		return nil, err
	}
	return shared.GetIndexer(), nil
}

// claimKeys is the claim index of a cached Pod: "namespace/claim" of each PVC it mounts.
func claimKeys(object any) ([]string, error) {
	pod, ok := object.(*PodClaims)
	if !ok {
		return nil, fmt.Errorf("the Pod informer holds a %T: is the cache set up with lookup.CacheOptions?", object)
	}
	keys := make([]string, 0, len(pod.Claims))
	for _, claim := range pod.Claims {
		keys = append(keys, pod.Namespace+"/"+claim)
	}
	return keys, nil
}

// PodsMounting lists the cached Pods of namespace that mount claim.
func (p *PodIndex) PodsMounting(namespace, claim string) ([]policies.MountingPod, error) {
	objects, err := p.indexer.ByIndex(podByClaim, namespace+"/"+claim)
	if err != nil {
		return nil, err
	}
	pods := make([]policies.MountingPod, 0, len(objects))
	for _, object := range objects {
		pod, ok := object.(*PodClaims)
		if !ok {
			return nil, fmt.Errorf("the Pod informer holds a %T", object)
		}
		pods = append(pods, pod.Pod)
	}
	return pods, nil
}

// recurringJobPodsByNamespace indexes the cached recurring-job pods by namespace.
const recurringJobPodsByNamespace = "backupguard.io/recurring-job-pods"

// RecurringJobPods finds, among the cached Pods, Longhorn's recurring-job pods.
type RecurringJobPods struct {
	indexer toolscache.Indexer
}

// NewRecurringJobPods sets up the Pod informer of informers (configured by CacheOptions) with the
// recurring-job index. Call it before the cache starts.
func NewRecurringJobPods(ctx context.Context, informers cache.Informers) (*RecurringJobPods, error) {
	indexer, err := indexPods(ctx, informers, recurringJobPodsByNamespace, recurringJobPodKeys)
	if err != nil {
		return nil, err
	}
	return &RecurringJobPods{indexer: indexer}, nil
}

func recurringJobPodKeys(object any) ([]string, error) {
	pod, ok := object.(*PodClaims)
	if !ok {
		return nil, fmt.Errorf("the Pod informer holds a %T: is the cache set up with lookup.CacheOptions?", object)
	}
	if pod.RecurringJob == "" {
		return nil, nil
	}
	return []string{pod.Namespace}, nil
}

// In lists the recurring-job pods of namespace.
func (r *RecurringJobPods) In(namespace string) ([]policies.RecurringJobPod, error) {
	objects, err := r.indexer.ByIndex(recurringJobPodsByNamespace, namespace)
	if err != nil {
		return nil, err
	}
	pods := make([]policies.RecurringJobPod, 0, len(objects))
	for _, object := range objects {
		pod, ok := object.(*PodClaims)
		if !ok {
			return nil, fmt.Errorf("the Pod informer holds a %T", object)
		}
		pods = append(pods, policies.RecurringJobPod{Name: pod.Pod.Name, RecurringJob: pod.RecurringJob, Phase: pod.Pod.Phase})
	}
	return pods, nil
}

// IsRecurringJobPod tells whether a cached Pod is a Longhorn recurring-job pod, for event filters.
func IsRecurringJobPod(object any) bool {
	if tombstone, ok := object.(toolscache.DeletedFinalStateUnknown); ok {
		object = tombstone.Obj
	}
	pod, ok := object.(*PodClaims)
	return ok && pod.RecurringJob != ""
}
