package policies

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Labels of what `backupguard window verify` creates. The probe's policies carry a managed-by value of
// their own, so that neither the window controller (which deletes what it manages while the window is
// open) nor `window release` takes them for the window's.
const (
	ProbeManagedByValue = "backupguard-verify"
	ProbeLabel          = "backupguard.io/verify-probe"
	probeRationale      = "backupguard window verify: the window's egress rules, for its probe pod only; deleted when the probe ends. Keep it out of Git."
)

// ProbeNetworkPolicies are the window's policies for the probe pod of `backupguard window verify`:
// the same egress rules as WindowNetworkPolicies and WindowCiliumNetworkPolicies build (window nil when
// no config is known: no allowedCIDRs), selecting only the pods labelled ProbeLabel=id, named name.
func ProbeNetworkPolicies(window *Window, namespace, name, id string, apiServer []APIServerEndpoint) (*networkingv1.NetworkPolicy, *unstructured.Unstructured) {
	probe := &Window{Targets: []WindowTarget{{Name: "verify", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{ProbeLabel: id}}}}}
	if window != nil {
		probe.AllowedCIDRs = window.AllowedCIDRs
	}
	labels := map[string]string{ManagedByLabel: ProbeManagedByValue, ProbeLabel: id}
	policy := WindowNetworkPolicies(probe, namespace, apiServer)[0]
	policy.Name, policy.Labels = name, labels
	policy.Annotations = map[string]string{windowPolicyRationale: probeRationale}
	cilium := WindowCiliumNetworkPolicies(probe, namespace)[0]
	cilium.SetName(name)
	cilium.SetLabels(labels)
	cilium.SetAnnotations(map[string]string{windowPolicyRationale: probeRationale})
	return policy, cilium
}
