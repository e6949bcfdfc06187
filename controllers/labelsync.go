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
	Help: "Label changes the sync made (patched), would make in dry-run mode (would-patch) or failed to make, by kind.",
}, []string{"kind", "result"})

func init() { metrics.Registry.MustRegister(labelSyncChanges) }

// LabelSync brings PVCs and Volumes that existed before the webhook, or before a rule or a namespace's
// labels changed, to the labels the policies want.
type LabelSync struct {
	// Client reads through the cache and writes to the API server.
	Client client.Client
	Config func() *policies.Config
	Mode   SyncMode
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
		Complete(reconcile.Func(s.reconcilePVC))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("volume-labels").
		For(&longhorn.Volume{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(s.volumesOfPVC)).
		Complete(reconcile.Func(s.reconcileVolume))
}

func (s *LabelSync) reconcilePVC(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := s.Client.Get(ctx, request.NamespacedName, pvc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	config := s.Config()
	env, err := lookup.PVCEnvironment(ctx, lookup.Cache{Client: s.Client}, pvc.Namespace, pvc, config)
	if err != nil {
		return reconcile.Result{}, err
	}
	decision := policies.DecidePVCLabels(pvc, env, config.LabelRules())
	return reconcile.Result{}, s.write(ctx, pvc, "PersistentVolumeClaim", decision.Patch)
}

func (s *LabelSync) reconcileVolume(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	volume := &longhorn.Volume{}
	if err := s.Client.Get(ctx, request.NamespacedName, volume); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	pvc, err := lookup.PVCOfVolume(ctx, lookup.Cache{Client: s.Client}, volume)
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, s.write(ctx, volume, "Volume", policies.DecideVolumeLabels(volume, pvc).Patch)
}

// write applies a JSON patch, or only logs it in dry-run mode.
func (s *LabelSync) write(ctx context.Context, object client.Object, kind string, patch []jsonpatch.Operation) error {
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
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	// The cached object is shared and must not receive the response: patch a copy.
	if err := s.Client.Patch(ctx, object.DeepCopyObject().(client.Object), client.RawPatch(types.JSONPatchType, data)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		labelSyncChanges.WithLabelValues(kind, "failed").Inc()
		// A patch that no longer applies (the labels changed meanwhile) is retried on fresh state.
		return fmt.Errorf("patching %s %s/%s: %w", kind, object.GetNamespace(), object.GetName(), err)
	}
	labelSyncChanges.WithLabelValues(kind, "patched").Inc()
	log.Info("patched labels")
	return nil
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
