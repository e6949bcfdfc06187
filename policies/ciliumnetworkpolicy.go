package policies

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// NetworkPolicyFlavor says which kinds of policy fence Longhorn's pods outside the window.
type NetworkPolicyFlavor string

// The network policy flavors.
const (
	// NetworkPolicyFlavorAuto writes CiliumNetworkPolicies too when the API server serves them.
	NetworkPolicyFlavorAuto NetworkPolicyFlavor = "auto"
	// NetworkPolicyFlavorKubernetes writes NetworkPolicies only: right on CNIs that match ipBlock
	// against node addresses (kube-router, as in k3s; Calico).
	NetworkPolicyFlavorKubernetes NetworkPolicyFlavor = "kubernetes"
	// NetworkPolicyFlavorCilium writes a CiliumNetworkPolicy beside each NetworkPolicy, and refuses to
	// fence when the API server does not serve them.
	NetworkPolicyFlavorCilium NetworkPolicyFlavor = "cilium"
)

var networkPolicyFlavors = []string{string(NetworkPolicyFlavorAuto), string(NetworkPolicyFlavorKubernetes), string(NetworkPolicyFlavorCilium)}

// compileNetworkPolicyFlavor checks window.networkPolicyFlavor. Auto compiles to "", so that a Window
// without the setting has the default.
func compileNetworkPolicyFlavor(value string, path *field.Path) (NetworkPolicyFlavor, field.ErrorList) {
	if !slices.Contains(networkPolicyFlavors, value) && value != "" {
		return "", field.ErrorList{field.NotSupported(path, value, networkPolicyFlavors)}
	}
	if NetworkPolicyFlavor(value) == NetworkPolicyFlavorAuto {
		return "", nil
	}
	return NetworkPolicyFlavor(value), nil
}

// NetworkPolicyFlavor is the configured flavor; auto unless set.
func (w *Window) NetworkPolicyFlavor() NetworkPolicyFlavor {
	if w.networkPolicyFlavor == "" {
		return NetworkPolicyFlavorAuto
	}
	return w.networkPolicyFlavor
}

// WantsCiliumNetworkPolicies decides whether the window writes CiliumNetworkPolicies, given whether the
// API server serves them; with flavor cilium and none served it refuses to fence at all, since the
// NetworkPolicies alone cut Longhorn off the kube-apiserver on Cilium.
func (w *Window) WantsCiliumNetworkPolicies(served bool) (bool, error) {
	switch flavor := w.NetworkPolicyFlavor(); {
	case flavor == NetworkPolicyFlavorCilium && !served:
		return false, fmt.Errorf("window.networkPolicyFlavor is cilium, but the API server does not serve CiliumNetworkPolicies (%s): refusing to fence Longhorn with NetworkPolicies alone, which cut it off the kube-apiserver on Cilium", CiliumNetworkPolicyGVK.GroupVersion())
	case flavor == NetworkPolicyFlavorKubernetes:
		return false, nil
	}
	return served, nil
}

// CiliumNetworkPolicyGVK is the CiliumNetworkPolicy kind; its CRD is ciliumnetworkpolicies.cilium.io.
var CiliumNetworkPolicyGVK = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: "CiliumNetworkPolicy"}

// WindowCiliumNetworkPolicies are what Cilium needs besides WindowNetworkPolicies for the fence to
// keep Longhorn working, one per target with the same name and pod selector.
//
// On Cilium, ipBlock (and toCIDR) selectors do not match cluster nodes unless the agent runs with
// policy-cidr-match-mode=nodes (1.15+): node addresses carry the host and remote-node identities
// (Cilium Documentation/network/kubernetes/policy.rst, "NetworkPolicy";
// Documentation/security/policy/layer3.rst, "Selecting pods or nodes with CIDR / ipBlock"). A
// kube-apiserver on host network (kubeadm, k3s, RKE2, Talos) is reached at node addresses, so the
// NetworkPolicy's ipBlock rules for it match nothing there, and neither does its namespaceSelector
// for host-network pods. Cilium's answer is entities (layer3.rst, "Entities based";
// pkg/policy/api/entity.go): kube-apiserver "represents both deployments of the kube-apiserver:
// within the cluster and outside of the cluster", and cluster includes "the host, remote-node, init,
// ingress, health, and kube-apiserver entities".
//
// Cilium's policies are additive: a pod that any egress rule selects is in default-deny for egress
// and may send what some rule allows (Documentation/security/policy/intro.rst). The NetworkPolicy
// puts the pods in default-deny; this policy only adds allows, and with enableDefaultDeny off
// (intro.rst; pkg/policy/api/rule.go, EnableDefaultDeny) it never fences anything by itself, so
// a copy left behind while the window is open keeps nothing from the object store.
//
// The paths are in Cilium v1.20.2, the release whose CRD the e2e suite validates these against.
func WindowCiliumNetworkPolicies(window *Window, namespace string) []*unstructured.Unstructured {
	policies := make([]*unstructured.Unstructured, 0, len(window.Targets))
	for _, target := range window.Targets {
		policy := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{
				"name":      WindowPolicyPrefix + target.Name,
				"namespace": namespace,
				"labels":    map[string]any{ManagedByLabel: ManagedByValue, WindowTargetLabel: target.Name},
				"annotations": map[string]any{windowPolicyRationale: fmt.Sprintf(
					"on Cilium, lets %s reach the kube-apiserver, DNS and the cluster while the NetworkPolicy of the same name keeps it away from the object store outside the backup window (%s); backupguard deletes both while the window is open. Keep it out of Git.",
					target.Name, window.Describe())},
			},
			"spec": map[string]any{
				"endpointSelector":  labelSelectorObject(target.PodSelector),
				"enableDefaultDeny": map[string]any{"egress": false, "ingress": false},
				"egress":            ciliumEgress(window),
			},
		}}
		policy.SetGroupVersionKind(CiliumNetworkPolicyGVK)
		policies = append(policies, policy)
	}
	return policies
}

// ciliumEgress allows, by identity rather than address, what WindowNetworkPolicies allow by address.
func ciliumEgress(window *Window) []any {
	dnsPorts := []any{
		map[string]any{"port": "53", "protocol": "UDP"},
		map[string]any{"port": "53", "protocol": "TCP"},
	}
	egress := []any{
		// Wherever it runs, host network and outside the cluster included.
		map[string]any{"toEntities": []any{"kube-apiserver"}},
		// Every endpoint of the cluster, host-network pods and nodes included.
		map[string]any{"toEntities": []any{"cluster"}},
		// Cluster DNS, as Cilium's documentation selects it (Documentation/security/policy/intro.rst;
		// examples/policies/l7/dns/dns.yaml); an explicit namespace label, because a namespaced
		// policy's toEndpoints select in its own namespace otherwise (Documentation/security/policy/
		// kubernetes.rst, "Specifying Namespace In EndpointSelector, FromEndpoints, ToEndpoints").
		map[string]any{
			"toEndpoints": []any{map[string]any{"matchLabels": map[string]any{
				"k8s:io.kubernetes.pod.namespace": "kube-system",
				"k8s:k8s-app":                     "kube-dns",
			}}},
			"toPorts": []any{map[string]any{"ports": dnsPorts}},
		},
	}
	if len(window.AllowedCIDRs) > 0 {
		cidrs := make([]any, 0, len(window.AllowedCIDRs))
		for _, cidr := range window.AllowedCIDRs {
			cidrs = append(cidrs, cidr.String())
		}
		egress = append(egress, map[string]any{"toCIDR": cidrs})
	}
	return egress
}

// labelSelectorObject is a label selector as unstructured content, the shape of Cilium's
// endpointSelector.
func labelSelectorObject(selector *metav1.LabelSelector) map[string]any {
	object := map[string]any{}
	if len(selector.MatchLabels) > 0 {
		labels := map[string]any{}
		for key, value := range selector.MatchLabels {
			labels[key] = value
		}
		object["matchLabels"] = labels
	}
	if len(selector.MatchExpressions) > 0 {
		expressions := make([]any, 0, len(selector.MatchExpressions))
		for _, requirement := range selector.MatchExpressions {
			expression := map[string]any{"key": requirement.Key, "operator": string(requirement.Operator)}
			if len(requirement.Values) > 0 {
				values := make([]any, 0, len(requirement.Values))
				for _, value := range requirement.Values {
					values = append(values, value)
				}
				expression["values"] = values
			}
			expressions = append(expressions, expression)
		}
		object["matchExpressions"] = expressions
	}
	return object
}
