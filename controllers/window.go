package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
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
	"github.com/backupguard/backupguard/policies"
)

// The window's object in backupguard's namespace: `backupguard window` writes the override into its
// data, the controller publishes the state in its annotations, and Events are recorded on it.
const (
	WindowConfigMap         = "backupguard-window"
	OverrideKey             = "override"
	OverrideUntilKey        = "until"
	OverrideReasonKey       = "reason"
	StateAnnotation         = "backupguard.io/window-state"
	ReasonAnnotation        = "backupguard.io/window-reason"
	NextTransitionAnnoation = "backupguard.io/window-next-transition"
	windowFieldOwner        = "backupguard"
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
)

func init() {
	metrics.Registry.MustRegister(windowOpen, windowNextTransition, windowTransitions, backupTargetAvailable)
}

// WindowController keeps Longhorn's object-store egress fenced outside the S3 window: it applies the
// NetworkPolicies while closed and removes them while open, asks the BackupTargets to sync at each
// opening, holds the window open while backups still run, and restores a policy someone removed. It
// derives everything from the clock and the cluster, so a restart at any moment converges at once.
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

	trigger       chan struct{}
	lastAvailable map[string]bool
	cilium        ciliumDetection
}

// NeedLeaderElection is true: one replica drives the window.
func (w *WindowController) NeedLeaderElection() bool { return true }

// SetupWithManager makes every change to what the window depends on wake the controller.
func (w *WindowController) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	w.trigger = make(chan struct{}, 1)
	w.lastAvailable = map[string]bool{}
	kick := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.Kick() },
		UpdateFunc: func(any, any) { w.Kick() },
		DeleteFunc: func(any) { w.Kick() },
	}
	for _, watched := range []client.Object{&networkingv1.NetworkPolicy{}, &longhorn.Backup{}, &longhorn.BackupTarget{}, &discoveryv1.EndpointSlice{}, &corev1.ConfigMap{}} {
		informer, err := mgr.GetCache().GetInformer(ctx, watched)
		if err != nil {
			return fmt.Errorf("watching %T: %w", watched, err)
		}
		if _, err := informer.AddEventHandler(kick); err != nil {
			return err
		}
	}
	return mgr.Add(w)
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
	w.Log.Info("window controller started")
	for {
		// The deadline is absolute, so time that passes while checking is not slept again.
		deadline := w.Clock.Now().Add(w.reconcile(ctx))
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

func (w *WindowController) reconcile(ctx context.Context) time.Duration {
	config := w.Config()
	window := config.CompiledWindow()
	namespace := config.Longhorn.Namespace
	if window == nil {
		if err := w.removePolicies(ctx, namespace, nil); err != nil {
			w.Log.Error(err, "removing the window's NetworkPolicies after the window was unconfigured")
			return retryAfterError
		}
		windowOpen.Set(1)
		return w.Resync
	}
	now := w.Clock.Now()
	state, err := w.readState(ctx)
	if err != nil {
		w.Log.Error(err, "reading the window's ConfigMap")
		return retryAfterError
	}
	facts, err := w.facts(ctx, namespace, window, state)
	if err != nil {
		w.Log.Error(err, "reading what the window depends on")
		return retryAfterError
	}
	status := window.StateAt(now, facts)
	if status.State.IsOpen() {
		err = w.removePolicies(ctx, namespace, nil)
	} else {
		err = w.applyPolicies(ctx, namespace, window)
	}
	if err != nil {
		w.Log.Error(err, "enforcing the window", "state", status.State)
		return retryAfterError
	}
	previous := policies.WindowState(state.Annotations[StateAnnotation])
	if previous != status.State {
		windowTransitions.WithLabelValues(string(status.State)).Inc()
		w.Log.Info("window changed", "from", previous, "to", status.State, "reason", status.Reason, "next", status.NextTransition)
		if err := w.publish(ctx, status); err != nil {
			w.Log.Error(err, "publishing the window state")
			return retryAfterError
		}
		if published, err := w.readState(ctx); err == nil && published.UID != "" {
			state = published
		}
		w.record(state, corev1.EventTypeNormal, "Window"+capitalize(string(status.State)), status.Reason)
		if status.State.IsOpen() && !previous.IsOpen() {
			// While fenced, Longhorn marked the target unavailable and refuses backups until a sync
			// succeeds; with polling off nothing would ever re-probe it.
			if err := w.requestSync(ctx, namespace, window, now); err != nil {
				w.Log.Error(err, "requesting a BackupTarget sync")
				return retryAfterError
			}
		}
	}
	w.reportAvailability(ctx, namespace, window, state)
	if status.State.IsOpen() {
		windowOpen.Set(1)
	} else {
		windowOpen.Set(0)
	}
	wait := w.Resync
	if !status.NextTransition.IsZero() {
		windowNextTransition.Set(float64(status.NextTransition.Unix()))
		if until := status.NextTransition.Sub(now); until < wait {
			wait = max(until, 0)
		}
	}
	return wait
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

// ParseOverride reads the override from the window ConfigMap's data; nil when there is none.
func ParseOverride(data map[string]string) (*policies.Override, error) {
	mode := data[OverrideKey]
	if mode == "" {
		return nil, nil
	}
	until, err := time.Parse(time.RFC3339, data[OverrideUntilKey])
	if err != nil {
		return nil, fmt.Errorf("override until %q: %w", data[OverrideUntilKey], err)
	}
	switch mode {
	case "open":
		return &policies.Override{Open: true, Until: until, Reason: data[OverrideReasonKey]}, nil
	case "close":
		return &policies.Override{Open: false, Until: until, Reason: data[OverrideReasonKey]}, nil
	}
	return nil, fmt.Errorf("override %q: must be open or close", mode)
}

func (w *WindowController) facts(ctx context.Context, namespace string, window *policies.Window, state *corev1.ConfigMap) (policies.WindowFacts, error) {
	var facts policies.WindowFacts
	override, err := ParseOverride(state.Data)
	if err != nil {
		// A broken override must not keep the window open: ignore it, loudly.
		w.Log.Error(err, "ignoring the window override")
	}
	facts.Override = override
	backups := &longhorn.BackupList{}
	if err := w.Client.List(ctx, backups, client.InNamespace(namespace)); err != nil {
		return facts, fmt.Errorf("listing Backups: %w", err)
	}
	facts.Busy = policies.BusyBackups(backups.Items)
	existing := &networkingv1.NetworkPolicyList{}
	if err := w.Client.List(ctx, existing, client.InNamespace(namespace), client.MatchingLabels{policies.ManagedByLabel: policies.ManagedByValue}); err != nil {
		return facts, fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	facts.Fenced = len(existing.Items) > 0
	return facts, nil
}

// apiServerEndpoints reads where the kube-apiserver answers, from the default/kubernetes Service and
// its EndpointSlices, so the fence never cuts Longhorn off from it.
func (w *WindowController) apiServerEndpoints(ctx context.Context) ([]policies.APIServerEndpoint, error) {
	slices := &discoveryv1.EndpointSliceList{}
	if err := w.Client.List(ctx, slices, client.InNamespace(metav1.NamespaceDefault), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return nil, fmt.Errorf("listing the kubernetes EndpointSlices: %w", err)
	}
	var endpoints []policies.APIServerEndpoint
	for _, slice := range slices.Items {
		for _, port := range slice.Ports {
			if port.Port == nil {
				continue
			}
			for _, endpoint := range slice.Endpoints {
				for _, address := range endpoint.Addresses {
					if ip, err := netip.ParseAddr(address); err == nil {
						endpoints = append(endpoints, policies.APIServerEndpoint{Address: ip, Port: *port.Port})
					}
				}
			}
		}
	}
	service := &corev1.Service{}
	switch err := w.Client.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: "kubernetes"}, service); {
	case err == nil:
		for _, clusterIP := range service.Spec.ClusterIPs {
			ip, parseErr := netip.ParseAddr(clusterIP)
			for _, port := range service.Spec.Ports {
				if parseErr == nil {
					endpoints = append(endpoints, policies.APIServerEndpoint{Address: ip, Port: port.Port})
				}
			}
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading the kubernetes Service: %w", err)
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("no kube-apiserver address found in default/kubernetes: refusing to fence Longhorn off from it")
	}
	return endpoints, nil
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

// requestSync sets spec.syncRequestedAt on the configured BackupTargets (all when none are named).
func (w *WindowController) requestSync(ctx context.Context, namespace string, window *policies.Window, now time.Time) error {
	targets, err := w.backupTargets(ctx, namespace, window)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"syncRequestedAt": metav1.NewTime(now.UTC()).Rfc3339Copy()}})
	if err != nil {
		return err
	}
	for i := range targets {
		target := targets[i].DeepCopyObject().(*longhorn.BackupTarget)
		if err := w.Client.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("requesting a sync of BackupTarget %s: %w", target.Name, err)
		}
		w.Log.Info("requested a BackupTarget sync", "backupTarget", target.Name, "at", now.UTC())
	}
	return nil
}

func (w *WindowController) backupTargets(ctx context.Context, namespace string, window *policies.Window) ([]longhorn.BackupTarget, error) {
	list := &longhorn.BackupTargetList{}
	if err := w.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing BackupTargets: %w", err)
	}
	if len(window.BackupTargets) == 0 {
		return list.Items, nil
	}
	var selected []longhorn.BackupTarget
	for _, target := range list.Items {
		for _, name := range window.BackupTargets {
			if target.Name == name {
				selected = append(selected, target)
			}
		}
	}
	return selected, nil
}

// reportAvailability tells, by metric, log line and Event, when a BackupTarget becomes available again.
func (w *WindowController) reportAvailability(ctx context.Context, namespace string, window *policies.Window, state *corev1.ConfigMap) {
	targets, err := w.backupTargets(ctx, namespace, window)
	if err != nil {
		w.Log.Error(err, "reading BackupTarget availability")
		return
	}
	for _, target := range targets {
		available := target.Status.Available
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

// publish writes the state into the ConfigMap's annotations, for `backupguard window status` and for
// the next leader.
func (w *WindowController) publish(ctx context.Context, status policies.WindowStatus) error {
	annotations := map[string]any{
		StateAnnotation:  string(status.State),
		ReasonAnnotation: status.Reason,
	}
	if !status.NextTransition.IsZero() {
		annotations[NextTransitionAnnoation] = status.NextTransition.UTC().Format(time.RFC3339)
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

func (w *WindowController) record(state *corev1.ConfigMap, eventType, reason, note string) {
	if w.Recorder == nil || state.UID == "" {
		return
	}
	w.Recorder.Eventf(state, nil, eventType, reason, "Window", "%s", note)
}

func capitalize(text string) string {
	if text == "" {
		return text
	}
	return string(text[0]-'a'+'A') + text[1:]
}
