package policies

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and names of the NetworkPolicies the window controller manages.
const (
	ManagedByLabel        = "app.kubernetes.io/managed-by"
	ManagedByValue        = "backupguard"
	WindowTargetLabel     = "backupguard.io/window-target"
	WindowPolicyPrefix    = "backupguard-egress-"
	windowPolicyRationale = "backupguard.io/why"
)

// APIServerEndpoint is one address and port the kube-apiserver is reached at: its endpoints, and the
// kubernetes Service's cluster IP, since CNIs differ in whether they see the address before or after
// the Service translates it.
type APIServerEndpoint struct {
	Address netip.Addr
	Port    int32
}

// WindowNetworkPolicies are the Egress NetworkPolicies that fence Longhorn's pods outside the window.
// Each allows only what Longhorn needs to keep working: every pod in the cluster, DNS, the
// kube-apiserver (cutting it off is what broke the CronJob approach: lost leader-election leases, pods
// not Ready) and the configured CIDRs. Everything else, the object store included, is denied.
func WindowNetworkPolicies(window *Window, namespace string, apiServer []APIServerEndpoint) []*networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	dns := intstr.FromInt32(53)
	rules := []networkingv1.NetworkPolicyEgressRule{
		{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}},
		{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
	}
	endpoints := slices.Clone(apiServer)
	slices.SortFunc(endpoints, func(a, b APIServerEndpoint) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
	endpoints = slices.Compact(endpoints)
	for _, endpoint := range endpoints {
		port := intstr.FromInt32(endpoint.Port)
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(endpoint.Address, endpoint.Address.BitLen()).String()}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		})
	}
	for _, cidr := range window.AllowedCIDRs {
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr.String()}}}})
	}
	policies := make([]*networkingv1.NetworkPolicy, 0, len(window.Targets))
	for _, target := range window.Targets {
		policies = append(policies, &networkingv1.NetworkPolicy{
			TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      WindowPolicyPrefix + target.Name,
				Namespace: namespace,
				Labels:    map[string]string{ManagedByLabel: ManagedByValue, WindowTargetLabel: target.Name},
				Annotations: map[string]string{windowPolicyRationale: fmt.Sprintf(
					"backupguard keeps %s away from the object store outside the backup window (%s); it deletes this policy while the window is open. Keep it out of Git.",
					target.Name, window.Describe())},
			},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *target.PodSelector.DeepCopy(),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      slices.Clone(rules),
			},
		})
	}
	return policies
}

// WindowFenced tells whether the window's fences are up: any NetworkPolicy backupguard manages is there.
func WindowFenced(existing []networkingv1.NetworkPolicy) bool {
	for _, policy := range existing {
		if policy.Labels[ManagedByLabel] == ManagedByValue {
			return true
		}
	}
	return false
}

// APIServerEndpoints reads where the kube-apiserver answers: the addresses and ports of the
// default/kubernetes EndpointSlices, and the Service's cluster IPs (service nil when absent). Without
// any, fencing would cut Longhorn off from the kube-apiserver, the failure the window exists to avoid:
// it is an error, and the controller does not fence.
func APIServerEndpoints(endpointSlices []discoveryv1.EndpointSlice, service *corev1.Service) ([]APIServerEndpoint, error) {
	var endpoints []APIServerEndpoint
	for _, slice := range endpointSlices {
		for _, port := range slice.Ports {
			if port.Port == nil {
				continue
			}
			for _, endpoint := range slice.Endpoints {
				for _, address := range endpoint.Addresses {
					if ip, err := netip.ParseAddr(address); err == nil {
						endpoints = append(endpoints, APIServerEndpoint{Address: ip, Port: *port.Port})
					}
				}
			}
		}
	}
	if service != nil {
		for _, clusterIP := range service.Spec.ClusterIPs {
			ip, err := netip.ParseAddr(clusterIP)
			if err != nil {
				continue
			}
			for _, port := range service.Spec.Ports {
				endpoints = append(endpoints, APIServerEndpoint{Address: ip, Port: port.Port})
			}
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("no kube-apiserver address found in default/kubernetes: refusing to fence Longhorn off from it")
	}
	return endpoints, nil
}
