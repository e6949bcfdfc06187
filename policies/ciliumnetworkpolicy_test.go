package policies

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func compileTestWindow(t *testing.T, config WindowConfig) *Window {
	t.Helper()
	window, errs := CompileWindow(&config, field.NewPath("window"))
	if len(errs) > 0 {
		t.Fatalf("CompileWindow: %v", errs)
	}
	return window
}

// ciliumRationale is the annotation a target's CiliumNetworkPolicy carries under the nightly window.
func ciliumRationale(target string) string {
	return "on Cilium, lets " + target + " reach the kube-apiserver, DNS and the cluster while the NetworkPolicy of the same name keeps it away from the object store outside the backup window " +
		`(opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening); backupguard deletes both while the window is open. Keep it out of Git.`
}

// ciliumBaseEgress is what every CiliumNetworkPolicy allows, before the configured CIDRs.
func ciliumBaseEgress() []any {
	return []any{
		map[string]any{"toEntities": []any{"kube-apiserver"}},
		map[string]any{"toEntities": []any{"cluster"}},
		map[string]any{
			"toEndpoints": []any{map[string]any{"matchLabels": map[string]any{
				"k8s:io.kubernetes.pod.namespace": "kube-system",
				"k8s:k8s-app":                     "kube-dns",
			}}},
			"toPorts": []any{map[string]any{"ports": []any{
				map[string]any{"port": "53", "protocol": "UDP"},
				map[string]any{"port": "53", "protocol": "TCP"},
			}}},
		},
	}
}

func ciliumPolicy(target string, endpointSelector map[string]any, egress []any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2",
		"kind":       "CiliumNetworkPolicy",
		"metadata": map[string]any{
			"name":        "backupguard-egress-" + target,
			"namespace":   "longhorn-system",
			"labels":      map[string]any{"app.kubernetes.io/managed-by": "backupguard", "backupguard.io/window-target": target},
			"annotations": map[string]any{"backupguard.io/why": ciliumRationale(target)},
		},
		"spec": map[string]any{
			"endpointSelector":  endpointSelector,
			"enableDefaultDeny": map[string]any{"egress": false, "ingress": false},
			"egress":            egress,
		},
	}}
}

func TestWindowCiliumNetworkPolicies(t *testing.T) {
	nightly := WindowConfig{Opens: "55 0 * * *", Duration: metav1.Duration{Duration: 3*time.Hour + 5*time.Minute}}
	withTargetAndCIDRs := nightly
	withTargetAndCIDRs.Targets = []WindowTarget{{Name: "engines", PodSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"app": "longhorn"},
		MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "longhorn.io/component", Operator: metav1.LabelSelectorOpIn, Values: []string{"instance-manager", "engine-image"}},
			{Key: "skip", Operator: metav1.LabelSelectorOpDoesNotExist},
		},
	}}}
	withTargetAndCIDRs.AllowedCIDRs = []string{"10.43.0.0/16", "fd00::1/64"}
	cases := []struct {
		name   string
		config WindowConfig
		want   []*unstructured.Unstructured
	}{
		{
			name:   "the default targets get one policy each, allowing the kube-apiserver, the cluster and DNS by identity",
			config: nightly,
			want: []*unstructured.Unstructured{
				ciliumPolicy("longhorn-manager", map[string]any{"matchLabels": map[string]any{"app": "longhorn-manager"}}, ciliumBaseEgress()),
				ciliumPolicy("instance-manager", map[string]any{"matchLabels": map[string]any{"longhorn.io/component": "instance-manager"}}, ciliumBaseEgress()),
			},
		},
		{
			name:   "a target's selector carries over whole, and the allowed CIDRs, masked, close the egress rules",
			config: withTargetAndCIDRs,
			want: []*unstructured.Unstructured{
				ciliumPolicy("engines", map[string]any{
					"matchLabels": map[string]any{"app": "longhorn"},
					"matchExpressions": []any{
						map[string]any{"key": "longhorn.io/component", "operator": "In", "values": []any{"instance-manager", "engine-image"}},
						map[string]any{"key": "skip", "operator": "DoesNotExist"},
					},
				}, append(ciliumBaseEgress(), map[string]any{"toCIDR": []any{"10.43.0.0/16", "fd00::/64"}})),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := WindowCiliumNetworkPolicies(compileTestWindow(t, tc.config), "longhorn-system")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The controller applies each policy on its own; editing one (as a client may) must change no other,
// nor the window.
func TestWindowCiliumNetworkPoliciesShareNothing(t *testing.T) {
	window := compileTestWindow(t, WindowConfig{Opens: "55 0 * * *", Duration: metav1.Duration{Duration: time.Hour}})
	policies := WindowCiliumNetworkPolicies(window, "longhorn-system")
	spec := policies[0].Object["spec"].(map[string]any)
	spec["egress"].([]any)[0].(map[string]any)["toEntities"].([]any)[0] = "world"
	spec["endpointSelector"].(map[string]any)["matchLabels"].(map[string]any)["app"] = "changed"
	if diff := cmp.Diff(ciliumBaseEgress(), policies[1].Object["spec"].(map[string]any)["egress"]); diff != "" {
		t.Errorf("the other policy's egress after editing one (-want +got):\n%s", diff)
	}
	if got := window.Targets[0].PodSelector.MatchLabels["app"]; got != "longhorn-manager" {
		t.Errorf("the window's selector was changed through a policy: %q", got)
	}
}

func TestNetworkPolicyFlavor(t *testing.T) {
	cases := []struct {
		value    string
		want     NetworkPolicyFlavor
		wantErrs field.ErrorList
	}{
		{value: "", want: NetworkPolicyFlavorAuto},
		{value: "auto", want: NetworkPolicyFlavorAuto},
		{value: "kubernetes", want: NetworkPolicyFlavorKubernetes},
		{value: "cilium", want: NetworkPolicyFlavorCilium},
		{value: "calico", want: NetworkPolicyFlavorAuto, wantErrs: field.ErrorList{
			field.NotSupported(field.NewPath("window", "networkPolicyFlavor"), "calico", []string{"auto", "kubernetes", "cilium"}),
		}},
		{value: "Cilium", want: NetworkPolicyFlavorAuto, wantErrs: field.ErrorList{
			field.NotSupported(field.NewPath("window", "networkPolicyFlavor"), "Cilium", []string{"auto", "kubernetes", "cilium"}),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			config := WindowConfig{Opens: "55 0 * * *", Duration: metav1.Duration{Duration: time.Hour}, NetworkPolicyFlavor: tc.value}
			window, errs := CompileWindow(&config, field.NewPath("window"))
			if diff := cmp.Diff(tc.wantErrs, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if got := window.NetworkPolicyFlavor(); got != tc.want {
				t.Errorf("flavor %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNetworkPolicyFlavorMessage(t *testing.T) {
	_, err := ParseConfig([]byte(configHeader+"window:\n  opens: \"55 0 * * *\"\n  duration: 1h\n  networkPolicyFlavor: calico\n"), "c.yaml")
	want := `config c.yaml: window.networkPolicyFlavor: Unsupported value: "calico": supported values: "auto", "kubernetes", "cilium"`
	if err == nil || err.Error() != want {
		t.Errorf("ParseConfig error:\n got %v\nwant %s", err, want)
	}
}

func TestWantsCiliumNetworkPolicies(t *testing.T) {
	refusal := "window.networkPolicyFlavor is cilium, but the API server does not serve CiliumNetworkPolicies (cilium.io/v2): refusing to fence Longhorn with NetworkPolicies alone, which cut it off the kube-apiserver on Cilium"
	cases := []struct {
		flavor  string
		served  bool
		want    bool
		wantErr string
	}{
		{flavor: "auto", served: true, want: true},
		{flavor: "auto", served: false, want: false},
		{flavor: "kubernetes", served: true, want: false},
		{flavor: "kubernetes", served: false, want: false},
		{flavor: "cilium", served: true, want: true},
		{flavor: "cilium", served: false, want: false, wantErr: refusal},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s, served %t", tc.flavor, tc.served), func(t *testing.T) {
			window := compileTestWindow(t, WindowConfig{Opens: "55 0 * * *", Duration: metav1.Duration{Duration: time.Hour}, NetworkPolicyFlavor: tc.flavor})
			got, err := window.WantsCiliumNetworkPolicies(tc.served)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tc.want || gotErr != tc.wantErr {
				t.Errorf("got %t, %q; want %t, %q", got, gotErr, tc.want, tc.wantErr)
			}
		})
	}
}
