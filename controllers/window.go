package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// The window's object in backupguard's namespace: `backupguard window` writes the override into its
// data (policies.OverrideData), the controller publishes the state in its annotations, and Events are
// recorded on it. It is the shared truth: a new leader, `window status` and the dead man's switch read
// the state and the last opening from it.
const (
	WindowConfigMap         = "backupguard-window"
	StateAnnotation         = "backupguard.io/window-state"
	ReasonAnnotation        = "backupguard.io/window-reason"
	NextTransitionAnnoation = "backupguard.io/window-next-transition"
	// OpenedAtAnnotation is when the window last opened (from closed, or at a scheduled opening).
	OpenedAtAnnotation = "backupguard.io/window-opened-at"
	// OnDemandSinceAnnotation is when the latest on-demand opening began.
	OnDemandSinceAnnotation = "backupguard.io/window-on-demand-since"
	// ClosedAtAnnotation is when the window last closed: Backups asked for after it open it on demand.
	ClosedAtAnnotation = "backupguard.io/window-closed-at"
	windowFieldOwner   = "backupguard"
)

var (
	windowOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_window_open", Help: "1 while Longhorn may reach the object store, 0 while it is fenced off.",
	})
	windowNextTransition = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_window_next_transition_timestamp_seconds", Help: "When the window state may next change (Unix time).",
	})
	windowTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backupguard_window_transitions_total", Help: "Window state changes, by the state entered.",
	}, []string{"state"})
	backupTargetAvailable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_backup_target_available", Help: "1 when Longhorn reports the BackupTarget available.",
	}, []string{"name"})
	backupTargetLastSynced = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backupguard_backup_target_last_synced_timestamp_seconds",
		Help: "When Longhorn last synced the BackupTarget with the store (status.lastSyncedAt, Unix time; 0 before the first sync): time() minus it is the seconds since.",
	}, []string{"name"})
	windowLastOpened = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_window_last_opened_timestamp_seconds", Help: "When the window last opened (Unix time), as recorded in its ConfigMap; 0 before the first opening.",
	})
	windowOpeningOverdue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "backupguard_window_next_opening_overdue", Help: "1 when the window is still closed 10 minutes past a scheduled opening (a close or release override aside).",
	})
)

// windowGauges are the window's plain gauges, exported only once this replica leads and has checked the
// window: a follower would otherwise export their zero values, which read as "closed, never opened" on
// its own /metrics and make max() across replicas 0 while no replica leads. The vectors (transitions,
// BackupTargets) have no series until the leader sets one.
var windowGauges = &leaderOnly{collectors: []prometheus.Collector{windowOpen, windowNextTransition, windowLastOpened, windowOpeningOverdue}}

func init() {
	metrics.Registry.MustRegister(windowGauges, windowTransitions, backupTargetAvailable, backupTargetLastSynced)
}

// leaderOnly collects its collectors only after lead: before, it describes them and collects nothing.
type leaderOnly struct {
	collectors []prometheus.Collector
	leading    atomic.Bool
}

func (l *leaderOnly) lead() { l.leading.Store(true) }

func (l *leaderOnly) Describe(descriptions chan<- *prometheus.Desc) {
	for _, collector := range l.collectors {
		collector.Describe(descriptions)
	}
}

func (l *leaderOnly) Collect(metrics chan<- prometheus.Metric) {
	if !l.leading.Load() {
		return
	}
	for _, collector := range l.collectors {
		collector.Collect(metrics)
	}
}

// WindowController keeps Longhorn's object-store egress fenced outside the S3 window: it applies the
// NetworkPolicies while closed and removes them while open, asks the BackupTargets to sync at each
// opening until they report it, holds the window open while the store is busy, opens it on demand for
// a backup asked for while closed, and restores a policy someone removed. It derives everything from
// the clock and the cluster, so a restart at any moment converges at once.
type WindowController struct {
	// Client reads through the cache and writes to the API server.
	Client client.Client
	Config func() *policies.Config
	Clock  clock.WithTicker
	// Namespace is backupguard's own namespace, where the window ConfigMap lives.
	Namespace string
	Recorder  recorder.EventRecorder
	Log       logr.Logger
	// Resync bounds the time between two checks, whatever the informers say.
	Resync time.Duration
	// Pods lists Longhorn's recurring-job pods; SetupWithManager sets it from the manager's cache.
	Pods RecurringJobPodLister

	trigger       chan struct{}
	lastAvailable map[string]bool
	cilium        ciliumDetection
}

// RecurringJobPodLister lists the recurring-job pods of a namespace (lookup.RecurringJobPods).
type RecurringJobPodLister interface {
	In(namespace string) ([]policies.RecurringJobPod, error)
}

// NeedLeaderElection is true: one replica drives the window.
func (w *WindowController) NeedLeaderElection() bool { return true }

// SetupWithManager makes every change to what the window depends on wake the controller.
func (w *WindowController) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	w.init()
	kick := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.Kick() },
		UpdateFunc: func(any, any) { w.Kick() },
		DeleteFunc: func(any) { w.Kick() },
	}
	watched := []client.Object{&networkingv1.NetworkPolicy{}, &longhorn.Backup{}, &longhorn.SystemBackup{}, &longhorn.BackupBackingImage{},
		&longhorn.Volume{}, &longhorn.BackupTarget{}, &discoveryv1.EndpointSlice{}, &corev1.ConfigMap{}}
	for _, object := range watched {
		informer, err := mgr.GetCache().GetInformer(ctx, object)
		if err != nil {
			return fmt.Errorf("watching %T: %w", object, err)
		}
		if _, err := informer.AddEventHandler(kick); err != nil {
			return err
		}
	}
	// Pods are cached cluster-wide for placement: only recurring-job pods wake the window.
	pods, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("watching Pods: %w", err)
	}
	if _, err := pods.AddEventHandler(toolscache.FilteringResourceEventHandler{FilterFunc: lookup.IsRecurringJobPod, Handler: kick}); err != nil {
		return err
	}
	if w.Pods == nil {
		if w.Pods, err = lookup.NewRecurringJobPods(ctx, mgr.GetCache()); err != nil {
			return err
		}
	}
	return mgr.Add(w)
}

func (w *WindowController) init() {
	if w.trigger == nil {
		w.trigger = make(chan struct{}, 1)
	}
	if w.lastAvailable == nil {
		w.lastAvailable = map[string]bool{}
	}
}

// Kick asks for a check now, e.g. after the config changed.
func (w *WindowController) Kick() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Start runs the loop until ctx ends: check, then sleep until the next transition, the resync, or a
// change in the cluster, whichever comes first.
func (w *WindowController) Start(ctx context.Context) error {
	w.init()
	w.Log.Info("window controller started")
	for {
		// The deadline is absolute, so time that passes while checking is not slept again.
		deadline := w.Clock.Now().Add(w.Reconcile(ctx))
		windowGauges.lead()
		if !w.Clock.Now().Before(deadline) {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.Clock.After(deadline.Sub(w.Clock.Now())):
		case <-w.trigger:
		}
	}
}

// retryAfterError is how soon a failed check is retried.
const retryAfterError = 2 * time.Second

// Reconcile checks the window once: it gathers the facts, decides (policies.Window.StateAt), enforces
// the decision, asks for syncs and publishes; it returns how soon to check again.
//
// The order is the honest one: the fences come down first, then the BackupTargets are asked to sync,
// then "open" is published; so a published "open" means Longhorn can reach the store and a sync is
// under way. That backups can run is told apart, when a target reports available (Event
// BackupTargetAvailable, metric backupguard_backup_target_available). Closing, the fences go up before
// "closed" is published.
func (w *WindowController) Reconcile(ctx context.Context) time.Duration {
	w.init()
	config := w.Config()
	window := config.CompiledWindow()
	namespace := config.Longhorn.Namespace
	if window == nil {
		if err := w.removePolicies(ctx, namespace, nil); err != nil {
			w.Log.Error(err, "removing the window's NetworkPolicies after the window was unconfigured")
			return retryAfterError
		}
		windowOpen.Set(1)
		windowOpeningOverdue.Set(0)
		return w.Resync
	}
	now := w.Clock.Now().UTC()
	state, err := w.readState(ctx)
	if err != nil {
		w.Log.Error(err, "reading the window's ConfigMap")
		return retryAfterError
	}
	override, err := policies.ParseOverride(state.Data)
	if err != nil {
		w.Log.Error(err, "ignoring the window override")
	}
	// The dead man's switch is set first: a check that fails below is what it reports.
	lastOpened := annotationTime(state, OpenedAtAnnotation)
	windowLastOpened.Set(unixOrZero(lastOpened))
	windowOpeningOverdue.Set(boolGauge(window.OpeningOverdue(now, lastOpened, override)))

	facts, err := w.facts(ctx, namespace, override, state)
	if err != nil {
		w.Log.Error(err, "reading what the window depends on")
		return retryAfterError
	}
	status := window.StateAt(now, facts)
	previous := policies.WindowState(state.Annotations[StateAnnotation])
	if status.State.IsOpen() {
		err = w.removePolicies(ctx, namespace, nil)
	} else {
		err = w.applyPolicies(ctx, namespace, window)
	}
	if err != nil {
		w.Log.Error(err, "enforcing the window", "state", status.State)
		return retryAfterError
	}
	wait := w.Resync
	if status.State.IsOpen() {
		// An opening is recorded from closed, at a scheduled opening, and when none is recorded yet
		// (published by a version that did not record it).
		if !previous.IsOpen() || (status.State == policies.WindowOpen && previous != policies.WindowOpen) || lastOpened.IsZero() {
			lastOpened = now
		}
		// While fenced, a target that polls was marked unavailable and Longhorn refuses backups until a
		// sync succeeds; with polling off nothing would ever re-probe it.
		recheck, err := w.requestSyncs(ctx, namespace, window, lastOpened, now)
		if err != nil {
			w.Log.Error(err, "requesting a BackupTarget sync")
			return retryAfterError
		}
		if !recheck.IsZero() {
			wait = min(wait, max(recheck.Sub(now), 0))
		}
	}
	closedAt := annotationTime(state, ClosedAtAnnotation)
	if !status.State.IsOpen() && (previous != policies.WindowClosed || closedAt.IsZero()) {
		closedAt = now
	}
	if err := w.publish(ctx, state, status, lastOpened, closedAt); err != nil {
		w.Log.Error(err, "publishing the window state")
		return retryAfterError
	}
	if published, err := w.readState(ctx); err == nil && published.ResourceVersion != "" {
		state = published
	}
	if previous != status.State {
		windowTransitions.WithLabelValues(string(status.State)).Inc()
		w.Log.Info("window changed", "from", previous, "to", status.State, "reason", status.Reason, "next", status.NextTransition)
		w.record(state, corev1.EventTypeNormal, eventReasons[status.State], status.Reason)
	}
	if len(status.Requests) > 0 {
		w.Log.Info("window opened on demand", "requests", status.Requests, "until", status.NextTransition)
		w.record(state, corev1.EventTypeNormal, "WindowOpenedOnDemand", fmt.Sprintf("for %s: %s", strings.Join(status.Requests, ", "), status.Reason))
	}
	w.reportAvailability(ctx, namespace, window, state)
	windowOpen.Set(boolGauge(status.State.IsOpen()))
	windowLastOpened.Set(unixOrZero(lastOpened))
	windowOpeningOverdue.Set(boolGauge(window.OpeningOverdue(now, lastOpened, override)))
	if !status.NextTransition.IsZero() {
		windowNextTransition.Set(float64(status.NextTransition.Unix()))
		wait = min(wait, max(status.NextTransition.Sub(now), 0))
	}
	return wait
}

// eventReasons are the Event reasons of the states entered.
var eventReasons = map[policies.WindowState]string{
	policies.WindowClosed: "WindowClosed", policies.WindowOpen: "WindowOpen", policies.WindowExtended: "WindowExtended",
	policies.WindowOverridden: "WindowOverridden", policies.WindowOnDemand: "WindowOnDemand", policies.WindowReleased: "WindowReleased",
}

// readState gets the window ConfigMap, or an empty one when it does not exist yet.
func (w *WindowController) readState(ctx context.Context) (*corev1.ConfigMap, error) {
	state := &corev1.ConfigMap{}
	err := w.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: WindowConfigMap}, state)
	if apierrors.IsNotFound(err) {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: WindowConfigMap}}, nil
	}
	return state, err
}

// facts gathers, once, everything the window's decision reads.
func (w *WindowController) facts(ctx context.Context, namespace string, override *policies.Override, state *corev1.ConfigMap) (policies.WindowFacts, error) {
	facts := policies.WindowFacts{Override: override, OnDemandSince: annotationTime(state, OnDemandSinceAnnotation),
		ClosedSince: annotationTime(state, ClosedAtAnnotation)}
	backups := &longhorn.BackupList{}
	systemBackups := &longhorn.SystemBackupList{}
	backingImageBackups := &longhorn.BackupBackingImageList{}
	volumes := &longhorn.VolumeList{}
	jobs := &longhorn.RecurringJobList{}
	existing := &networkingv1.NetworkPolicyList{}
	for _, list := range []client.ObjectList{backups, systemBackups, backingImageBackups, volumes, jobs, existing} {
		if err := w.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return facts, fmt.Errorf("listing %T: %w", list, err)
		}
	}
	pods, err := w.Pods.In(namespace)
	if err != nil {
		return facts, fmt.Errorf("listing recurring-job pods: %w", err)
	}
	facts.Store = policies.StoreFacts{Backups: backups.Items, SystemBackups: systemBackups.Items, BackupBackingImages: backingImageBackups.Items,
		Volumes: volumes.Items, RecurringJobs: jobs.Items, RecurringJobPods: pods}
	facts.Fenced = policies.WindowFenced(existing.Items)
	return facts, nil
}

// apiServerEndpoints reads where the kube-apiserver answers, so the fence never cuts Longhorn off from it.
func (w *WindowController) apiServerEndpoints(ctx context.Context) ([]policies.APIServerEndpoint, error) {
	return ReadAPIServerEndpoints(ctx, w.Client)
}

// ReadAPIServerEndpoints reads where the kube-apiserver answers, from the default/kubernetes Service
// and its EndpointSlices (see policies.APIServerEndpoints).
func ReadAPIServerEndpoints(ctx context.Context, reader client.Reader) ([]policies.APIServerEndpoint, error) {
	slices := &discoveryv1.EndpointSliceList{}
	if err := reader.List(ctx, slices, client.InNamespace(metav1.NamespaceDefault), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return nil, fmt.Errorf("listing the kubernetes EndpointSlices: %w", err)
	}
	service := &corev1.Service{}
	switch err := reader.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: "kubernetes"}, service); {
	case apierrors.IsNotFound(err):
		service = nil
	case err != nil:
		return nil, fmt.Errorf("reading the kubernetes Service: %w", err)
	}
	return policies.APIServerEndpoints(slices.Items, service)
}

func (w *WindowController) applyPolicies(ctx context.Context, namespace string, window *policies.Window) error {
	endpoints, err := w.apiServerEndpoints(ctx)
	if err != nil {
		return err
	}
	if err := w.applyCiliumPolicies(ctx, namespace, window); err != nil {
		return err
	}
	desired := policies.WindowNetworkPolicies(window, namespace, endpoints)
	keep := map[string]bool{}
	for _, policy := range desired {
		keep[policy.Name] = true
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(policy)
		if err != nil {
			return err
		}
		object := &unstructured.Unstructured{Object: content}
		unstructured.RemoveNestedField(object.Object, "metadata", "creationTimestamp")
		if err := w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(object), client.FieldOwner(windowFieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying NetworkPolicy %s/%s: %w", namespace, policy.Name, err)
		}
	}
	return w.removePolicies(ctx, namespace, keep)
}

// removePolicies deletes the managed NetworkPolicies, except those in keep.
func (w *WindowController) removePolicies(ctx context.Context, namespace string, keep map[string]bool) error {
	existing := &networkingv1.NetworkPolicyList{}
	if err := w.Client.List(ctx, existing, client.InNamespace(namespace), client.MatchingLabels{policies.ManagedByLabel: policies.ManagedByValue}); err != nil {
		return fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	for i := range existing.Items {
		policy := &existing.Items[i]
		if keep[policy.Name] {
			continue
		}
		if err := w.Client.Delete(ctx, policy.DeepCopy()); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", namespace, policy.Name, err)
		}
	}
	return w.removeCiliumPolicies(ctx, namespace, keep)
}

// requestSyncs sets spec.syncRequestedAt on the BackupTargets due for a (new) sync request, and says
// when to look again.
func (w *WindowController) requestSyncs(ctx context.Context, namespace string, window *policies.Window, openedAt, now time.Time) (time.Time, error) {
	targets := &longhorn.BackupTargetList{}
	if err := w.Client.List(ctx, targets, client.InNamespace(namespace)); err != nil {
		return time.Time{}, fmt.Errorf("listing BackupTargets: %w", err)
	}
	plan := window.SyncsDue(targets.Items, openedAt, now)
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"syncRequestedAt": metav1.NewTime(now).Rfc3339Copy()}})
	if err != nil {
		return time.Time{}, err
	}
	for _, name := range plan.Due {
		target := &longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		if err := w.Client.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return time.Time{}, fmt.Errorf("requesting a sync of BackupTarget %s: %w", name, err)
		}
		w.Log.Info("requested a BackupTarget sync", "backupTarget", name, "at", now)
	}
	return plan.Recheck, nil
}

// reportAvailability tells, by metric, log line and Event, when a BackupTarget becomes available again.
func (w *WindowController) reportAvailability(ctx context.Context, namespace string, window *policies.Window, state *corev1.ConfigMap) {
	list := &longhorn.BackupTargetList{}
	if err := w.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		w.Log.Error(err, "reading BackupTarget availability")
		return
	}
	for _, target := range window.SyncTargets(list.Items) {
		available := target.Status.Available
		if synced := target.Status.LastSyncedAt; synced.IsZero() {
			backupTargetLastSynced.WithLabelValues(target.Name).Set(0)
		} else {
			backupTargetLastSynced.WithLabelValues(target.Name).Set(float64(synced.Unix()))
		}
		if available {
			backupTargetAvailable.WithLabelValues(target.Name).Set(1)
		} else {
			backupTargetAvailable.WithLabelValues(target.Name).Set(0)
		}
		if wasAvailable, seen := w.lastAvailable[target.Name]; available && (!seen || !wasAvailable) {
			w.Log.Info("BackupTarget is available", "backupTarget", target.Name)
			w.record(state, corev1.EventTypeNormal, "BackupTargetAvailable", fmt.Sprintf("BackupTarget %s is available: backups can run", target.Name))
		}
		w.lastAvailable[target.Name] = available
	}
}

// publish writes the state into the ConfigMap's annotations, for `backupguard window status`, the dead
// man's switch and the next leader, when it changed.
func (w *WindowController) publish(ctx context.Context, state *corev1.ConfigMap, status policies.WindowStatus, openedAt, closedAt time.Time) error {
	annotations := map[string]string{
		StateAnnotation:  string(status.State),
		ReasonAnnotation: status.Reason,
	}
	for key, at := range map[string]time.Time{NextTransitionAnnoation: status.NextTransition, OpenedAtAnnotation: openedAt,
		OnDemandSinceAnnotation: status.OnDemandSince, ClosedAtAnnotation: closedAt} {
		if !at.IsZero() {
			annotations[key] = at.UTC().Format(time.RFC3339)
		}
	}
	if state.ResourceVersion != "" && state.Labels[policies.ManagedByLabel] == policies.ManagedByValue && maps.Equal(annotations, ownAnnotations(state.Annotations)) {
		return nil
	}
	object := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": WindowConfigMap, "namespace": w.Namespace, "annotations": annotations,
			"labels": map[string]any{policies.ManagedByLabel: policies.ManagedByValue},
		},
	}}
	return w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(object), client.FieldOwner(windowFieldOwner+"-window"), client.ForceOwnership)
}

// ownAnnotations are the annotations the controller publishes, out of all the ConfigMap has.
func ownAnnotations(all map[string]string) map[string]string {
	own := map[string]string{}
	for _, key := range []string{StateAnnotation, ReasonAnnotation, NextTransitionAnnoation, OpenedAtAnnotation, OnDemandSinceAnnotation, ClosedAtAnnotation} {
		if value, found := all[key]; found {
			own[key] = value
		}
	}
	return own
}

// annotationTime reads a published instant; zero when absent or unreadable.
func annotationTime(state *corev1.ConfigMap, key string) time.Time {
	at, err := time.Parse(time.RFC3339, state.Annotations[key])
	if err != nil {
		return time.Time{}
	}
	return at
}

func unixOrZero(at time.Time) float64 {
	if at.IsZero() {
		return 0
	}
	return float64(at.Unix())
}

func boolGauge(value bool) float64 {
	if value {
		return 1
	}
	return 0
}

func (w *WindowController) record(state *corev1.ConfigMap, eventType, reason, note string) {
	if w.Recorder == nil || state.ResourceVersion == "" {
		return
	}
	w.Recorder.Eventf(state, nil, eventType, reason, "Window", "%s", note)
}
