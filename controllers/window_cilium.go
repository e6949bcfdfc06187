package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/policies"
)

// ciliumRecheck is how long an answer to "does the API server serve CiliumNetworkPolicies?" is
// trusted: asking the RESTMapper about a group the server lacks costs a whole discovery each time.
const ciliumRecheck = time.Minute

// ciliumDetection remembers whether the API server serves CiliumNetworkPolicies, and since when.
type ciliumDetection struct {
	checkedAt time.Time
	served    bool
}

// applyCiliumPolicies writes the window's CiliumNetworkPolicies before the NetworkPolicies go up (so
// Cilium never sees the NetworkPolicy alone, which cuts the kube-apiserver off), or removes them when
// the flavor asks for none. Those of targets no longer configured go with the NetworkPolicies, in
// removeCiliumPolicies.
func (w *WindowController) applyCiliumPolicies(ctx context.Context, namespace string, window *policies.Window) error {
	served, err := w.ciliumServed(ctx)
	if err != nil {
		return err
	}
	wanted, err := window.WantsCiliumNetworkPolicies(served)
	if err != nil {
		return err
	}
	if !wanted {
		return w.removeCiliumPolicies(ctx, namespace, nil)
	}
	for _, policy := range policies.WindowCiliumNetworkPolicies(window, namespace) {
		err := w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(policy), client.FieldOwner(windowFieldOwner), client.ForceOwnership)
		if ciliumGone(err) && window.NetworkPolicyFlavor() == policies.NetworkPolicyFlavorAuto {
			// Uninstalled since it was last detected: fence as on any other CNI.
			w.cilium = ciliumDetection{checkedAt: w.Clock.Now()}
			return nil
		}
		if err != nil {
			return fmt.Errorf("applying CiliumNetworkPolicy %s/%s: %w", namespace, policy.GetName(), err)
		}
	}
	return nil
}

// removeCiliumPolicies deletes the managed CiliumNetworkPolicies, except those in keep; nothing to do
// where the API server does not serve them.
func (w *WindowController) removeCiliumPolicies(ctx context.Context, namespace string, keep map[string]bool) error {
	if served, err := w.ciliumServed(ctx); err != nil || !served {
		return err
	}
	// Unstructured, so read from the API server, not the cache: no informer, and no watch permission,
	// for a kind that may come and go.
	existing := &unstructured.UnstructuredList{}
	existing.SetGroupVersionKind(policies.CiliumNetworkPolicyGVK.GroupVersion().WithKind(policies.CiliumNetworkPolicyGVK.Kind + "List"))
	err := w.Client.List(ctx, existing, client.InNamespace(namespace), client.MatchingLabels{policies.ManagedByLabel: policies.ManagedByValue})
	if ciliumGone(err) {
		// Uninstalled since it was last detected: nothing of it is left to remove.
		w.cilium = ciliumDetection{checkedAt: w.Clock.Now()}
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing CiliumNetworkPolicies: %w", err)
	}
	for i := range existing.Items {
		policy := &existing.Items[i]
		if keep[policy.GetName()] {
			continue
		}
		if err := w.Client.Delete(ctx, policy); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting CiliumNetworkPolicy %s/%s: %w", namespace, policy.GetName(), err)
		}
	}
	return nil
}

// ciliumServed tells whether the API server serves CiliumNetworkPolicies, asking the RESTMapper at most
// once per ciliumRecheck.
func (w *WindowController) ciliumServed(ctx context.Context) (bool, error) {
	now := w.Clock.Now()
	if checked := w.cilium.checkedAt; !checked.IsZero() && !now.Before(checked) && now.Sub(checked) < ciliumRecheck {
		return w.cilium.served, nil
	}
	_, err := w.Client.RESTMapper().RESTMapping(policies.CiliumNetworkPolicyGVK.GroupKind(), policies.CiliumNetworkPolicyGVK.Version)
	if err != nil && !meta.IsNoMatchError(err) {
		return false, fmt.Errorf("discovering whether the API server serves CiliumNetworkPolicies: %w", err)
	}
	if served := err == nil; served != w.cilium.served || w.cilium.checkedAt.IsZero() {
		w.Log.Info("network policy flavor detected", "ciliumNetworkPolicies", served)
	}
	w.cilium = ciliumDetection{checkedAt: now, served: err == nil}
	return w.cilium.served, nil
}

// ciliumGone tells whether err says the kind is not served (any more): the RESTMapper may remember it
// from before Cilium's CRDs were removed, and the API server then answers 404 for the whole resource.
func ciliumGone(err error) bool {
	return meta.IsNoMatchError(err) || apierrors.IsNotFound(err)
}
