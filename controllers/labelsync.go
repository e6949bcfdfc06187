// Package controllers holds backupguard's background loops. Each decides through policies and only does
// the I/O; they run on the elected leader only.
package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// SyncMode says what the label sync does with what it finds.
type SyncMode string

// The label sync modes.
const (
	SyncOn     SyncMode = "on"
	SyncDryRun SyncMode = "dry-run"
	SyncOff    SyncMode = "off"
)

var labelSyncChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "backupguard_label_sync_changes_total",
	Help: "Label changes the sync made (patched), would make in dry-run mode (would-patch), found made stale by another writer first (conflict) or failed to make, by kind.",
}, []string{"kind", "result"})

func init() { metrics.Registry.MustRegister(labelSyncChanges) }

// writeAttempts bounds how often one reconcile decides again after another writer changed the object
// between its read and its write; past it the request goes back to the queue with the controller's
// backoff.
const writeAttempts = 3

// LabelSync brings PVCs and Volumes that existed before the webhook, or before a rule or a namespace's
// labels changed, to the labels the policies want.
type LabelSync struct {
	// Client reads through the cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server itself: after another writer got in first, the cache may not
	// have its write yet.
	APIReader client.Reader
	Config    func() *policies.Config
	Mode      SyncMode
	// Writes limits the rate of patches, so a first install over thousands of PVCs does not flood the
	// API server.
	Writes *rate.Limiter
	Log    logr.Logger
}

// SetupWithManager registers the PVC and Volume loops. configChanged receives an event whenever the
// config is reloaded, which re-checks every PVC.
func (s *LabelSync) SetupWithManager(mgr ctrl.Manager, configChanged <-chan event.GenericEvent) error {
	labelsChanged := builder.WithPredicates(predicate.LabelChangedPredicate{})
	err := ctrl.NewControllerManagedBy(mgr).
		Named("pvc-labels").
		For(&corev1.PersistentVolumeClaim{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(s.pvcsInNamespace), labelsChanged).
		Watches(&storagev1.StorageClass{}, handler.EnqueueRequestsFromMapFunc(s.pvcsOfStorageClass)).
		WatchesRawSource(source.Channel(configChanged, handler.EnqueueRequestsFromMapFunc(s.allPVCs))).
		Complete(reconcile.Func(s.ReconcilePVC))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("volume-labels").
		For(&longhorn.Volume{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(s.volumesOfPVC)).
		Complete(reconcile.Func(s.ReconcileVolume))
}

// ReconcilePVC brings one PVC's labels to what the rules want.
func (s *LabelSync) ReconcilePVC(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	return reconcile.Result{}, syncLabels(ctx, s, "PersistentVolumeClaim", request.NamespacedName, s.decidePVC)
}

func (s *LabelSync) decidePVC(ctx context.Context, pvc *corev1.PersistentVolumeClaim) ([]jsonpatch.Operation, error) {
	config := s.Config()
	env, err := lookup.PVCEnvironment(ctx, lookup.Cache{Client: s.Client}, pvc.Namespace, pvc, config)
	if err != nil {
		return nil, err
	}
	return policies.DecidePVCLabels(pvc, env, config.LabelRules()).Patch, nil
}

// ReconcileVolume gives one Volume the recurring labels of its source PVC.
func (s *LabelSync) ReconcileVolume(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	return reconcile.Result{}, syncLabels(ctx, s, "Volume", request.NamespacedName, s.decideVolume)
}

func (s *LabelSync) decideVolume(ctx context.Context, volume *longhorn.Volume) ([]jsonpatch.Operation, error) {
	pvc, err := lookup.PVCOfVolume(ctx, lookup.Cache{Client: s.Client}, volume)
	if err != nil {
		return nil, err
	}
	return policies.DecideVolumeLabels(volume, pvc).Patch, nil
}

// syncLabels reads an object from the cache, decides its label patch and writes it on condition that
// the object is still the version it was decided from (policies.PatchIfUnchanged), so a label another
// writer set in between is never lost. When that condition fails it decides again from the object as
// the API server has it now, up to writeAttempts times, then returns an error so that the controller
// retries later with backoff.
func syncLabels[T any, P interface {
	*T
	client.Object
}](ctx context.Context, s *LabelSync, kind string, key types.NamespacedName, decide func(context.Context, P) ([]jsonpatch.Operation, error)) error {
	object := P(new(T))
	if err := s.Client.Get(ctx, key, object); err != nil {
		return client.IgnoreNotFound(err)
	}
	for attempt := 1; ; attempt++ {
		patch, err := decide(ctx, object)
		if err != nil {
			return err
		}
		switch err = s.write(ctx, kind, object, patch); {
		case err == nil || apierrors.IsNotFound(err):
			return nil
		case !mayHaveLostARace(err):
			return fmt.Errorf("patching %s %s: %w", kind, key, err)
		}
		fresh := P(new(T))
		if err := s.APIReader.Get(ctx, key, fresh); err != nil {
			return client.IgnoreNotFound(err)
		}
		if fresh.GetResourceVersion() == object.GetResourceVersion() {
			// Nobody else wrote: the API server refused the change itself.
			labelSyncChanges.WithLabelValues(kind, "failed").Inc()
			return fmt.Errorf("patching %s %s: %w", kind, key, err)
		}
		labelSyncChanges.WithLabelValues(kind, "conflict").Inc()
		if attempt == writeAttempts {
			return fmt.Errorf("%s %s changed %d times between reading and patching its labels; trying again later", kind, key, attempt)
		}
		s.Log.V(1).Info("another writer changed the object first; deciding again", "kind", kind, "namespace", key.Namespace, "name", key.Name,
			"readVersion", object.GetResourceVersion(), "currentVersion", fresh.GetResourceVersion())
		object = fresh
	}
}

// write applies a label patch on condition that the object is still at the resourceVersion it was
// read at, or only logs it in dry-run mode.
func (s *LabelSync) write(ctx context.Context, kind string, object client.Object, patch []jsonpatch.Operation) error {
	if len(patch) == 0 {
		return nil
	}
	log := s.Log.WithValues("kind", kind, "namespace", object.GetNamespace(), "name", object.GetName(), "patch", patch)
	if s.Mode == SyncDryRun {
		labelSyncChanges.WithLabelValues(kind, "would-patch").Inc()
		log.Info("dry run: would patch labels")
		return nil
	}
	if err := s.Writes.Wait(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(policies.PatchIfUnchanged(object.GetResourceVersion(), patch))
	if err != nil {
		return err
	}
	// An object read from the cache is shared and must not receive the response: patch a copy.
	if err := s.Client.Patch(ctx, object.DeepCopyObject().(client.Object), client.RawPatch(types.JSONPatchType, data)); err != nil {
		if !mayHaveLostARace(err) && !apierrors.IsNotFound(err) {
			labelSyncChanges.WithLabelValues(kind, "failed").Inc()
		}
		return err
	}
	labelSyncChanges.WithLabelValues(kind, "patched").Inc()
	log.Info("patched labels")
	return nil
}

// mayHaveLostARace tells whether a patch may have failed because its resourceVersion test did. The API
// server answers a failed JSON-patch test with 422 Invalid, the same as a change it refuses; only a
// newer resourceVersion on the object tells the two apart.
func mayHaveLostARace(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsConflict(err)
}

func (s *LabelSync) pvcsInNamespace(ctx context.Context, namespace client.Object) []reconcile.Request {
	return s.listPVCs(ctx, client.InNamespace(namespace.GetName()))
}

func (s *LabelSync) pvcsOfStorageClass(ctx context.Context, class client.Object) []reconcile.Request {
	return s.listPVCs(ctx, client.MatchingFields{lookup.PVCByStorageClass: class.GetName()})
}

func (s *LabelSync) allPVCs(ctx context.Context, _ client.Object) []reconcile.Request {
	return s.listPVCs(ctx)
}

func (s *LabelSync) listPVCs(ctx context.Context, options ...client.ListOption) []reconcile.Request {
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := s.Client.List(ctx, pvcs, options...); err != nil {
		s.Log.Error(err, "listing PVCs to re-check")
		return nil
	}
	requests := make([]reconcile.Request, len(pvcs.Items))
	for i, pvc := range pvcs.Items {
		requests[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pvc.Namespace, Name: pvc.Name}}
	}
	return requests
}

// volumesOfPVC maps a PVC to the Volume bound to it (lookup.VolumeOfPVC: the same link the decisions use).
func (s *LabelSync) volumesOfPVC(ctx context.Context, object client.Object) []reconcile.Request {
	volume, _, err := lookup.VolumeOfPVC(ctx, lookup.Cache{Client: s.Client}, object.(*corev1.PersistentVolumeClaim), s.Config())
	if err != nil {
		s.Log.Error(err, "looking up the Volume of a PVC")
	}
	if volume == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: volume.Namespace, Name: volume.Name}}}
}
