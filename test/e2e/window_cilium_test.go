package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
)

// ciliumCRD fetches (once) Cilium's CiliumNetworkPolicy CRD, as Cilium ships it, and returns its path.
func ciliumCRD(t *testing.T) string {
	t.Helper()
	command := exec.Command("bash", filepath.Join(cluster.RepoRoot(), "test", "tools", "ensure-cilium-crds.sh"))
	command.Stderr = os.Stderr
	out, err := command.Output()
	if err != nil {
		t.Fatalf("fetching Cilium's CRD: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "crds", "ciliumnetworkpolicies.yaml")
}

// installCiliumCRD serves CiliumNetworkPolicies until the test ends.
func installCiliumCRD(t *testing.T) {
	t.Helper()
	crd := ciliumCRD(t)
	if result := testCluster.RunKubectl("", "apply", "--server-side", "-f", crd); result.ExitCode != 0 {
		t.Fatalf("installing Cilium's CRD: %s", result.Stderr)
	}
	t.Cleanup(func() {
		if result := testCluster.RunKubectl("", "delete", "--wait", "-f", crd); result.ExitCode != 0 {
			t.Errorf("removing Cilium's CRD: %s", result.Stderr)
		}
	})
	// kubectl wait fails, instead of waiting, while the CRD has no conditions yet.
	eventually(t, "Cilium's CRD to be established", func() (bool, string) {
		result := testCluster.RunKubectl("", "wait", "--for=condition=Established", "--timeout=5s", "-f", crd)
		return result.ExitCode == 0, result.Stderr
	})
}

func (w *windowWorld) currentConfig() *policies.Config {
	w.configMu.Lock()
	defer w.configMu.Unlock()
	return w.config
}

// setWindow replaces the config's window section ("" for none) and wakes the controller, as a
// config reload does in serve.
func (w *windowWorld) setWindow(section string) {
	w.t.Helper()
	text := fmt.Sprintf("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespace: %s\n%s", w.longhorn, section)
	config, err := policies.ParseConfig([]byte(text), "window.yaml")
	if err != nil {
		w.t.Fatal(err)
	}
	w.configMu.Lock()
	w.config = config
	w.configMu.Unlock()
	w.wake()
}

// wake makes a change the controller watches (a ConfigMap in its namespace), so it checks now.
func (w *windowWorld) wake() {
	w.t.Helper()
	if err := kube.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "wake-", Namespace: w.own}}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *windowWorld) ciliumPolicies() []unstructured.Unstructured {
	w.t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(policies.CiliumNetworkPolicyGVK.GroupVersion().WithKind("CiliumNetworkPolicyList"))
	if err := kube.List(context.Background(), list, client.InNamespace(w.longhorn)); err != nil {
		w.t.Fatal(err)
	}
	return list.Items
}

func (w *windowWorld) ciliumPolicyNames() []string {
	var names []string
	for _, policy := range w.ciliumPolicies() {
		names = append(names, policy.GetName())
	}
	slices.Sort(names)
	return names
}

func (w *windowWorld) eventuallyCiliumPolicies(what string, present bool) {
	w.t.Helper()
	var want []string
	if present {
		want = fencedNames
	}
	eventually(w.t, what, func() (bool, string) {
		got := w.ciliumPolicyNames()
		return cmp.Equal(want, got), fmt.Sprintf("CiliumNetworkPolicies %v", got)
	})
}

// ciliumEgress is what each CiliumNetworkPolicy must allow, written out as Cilium's documentation
// writes it: the kube-apiserver and cluster entities, kube-dns, then the allowed CIDRs.
func ciliumEgress(t *testing.T, cidrs ...string) []any {
	t.Helper()
	var egress []any
	if err := json.Unmarshal([]byte(`[
		{"toEntities": ["kube-apiserver"]},
		{"toEntities": ["cluster"]},
		{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}}],
		 "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}]}]}
	]`), &egress); err != nil {
		t.Fatal(err)
	}
	if len(cidrs) > 0 {
		var toCIDR []any
		for _, cidr := range cidrs {
			toCIDR = append(toCIDR, cidr)
		}
		egress = append(egress, map[string]any{"toCIDR": toCIDR})
	}
	return egress
}

// checkCiliumPolicies compares each stored CiliumNetworkPolicy's spec and labels whole.
func (w *windowWorld) checkCiliumPolicies(cidrs ...string) {
	w.t.Helper()
	selectors := map[string]any{
		"backupguard-egress-longhorn-manager": map[string]any{"matchLabels": map[string]any{"app": "longhorn-manager"}},
		"backupguard-egress-instance-manager": map[string]any{"matchLabels": map[string]any{"longhorn.io/component": "instance-manager"}},
	}
	for _, policy := range w.ciliumPolicies() {
		want := map[string]any{
			"endpointSelector":  selectors[policy.GetName()],
			"enableDefaultDeny": map[string]any{"egress": false, "ingress": false},
			"egress":            ciliumEgress(w.t, cidrs...),
		}
		if diff := cmp.Diff(want, policy.Object["spec"]); diff != "" {
			w.t.Errorf("%s spec (-want +got):\n%s", policy.GetName(), diff)
		}
		wantLabels := map[string]string{"app.kubernetes.io/managed-by": "backupguard", "backupguard.io/window-target": strings.TrimPrefix(policy.GetName(), "backupguard-egress-")}
		if diff := cmp.Diff(wantLabels, policy.GetLabels()); diff != "" {
			w.t.Errorf("%s labels (-want +got):\n%s", policy.GetName(), diff)
		}
	}
}

// ciliumRequestsIn lists the verbs of every request made for CiliumNetworkPolicies in namespace, from
// the API server's audit log.
func ciliumRequestsIn(t *testing.T, namespace string) []string {
	t.Helper()
	file, err := os.Open(testCluster.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var verbs []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for scanner.Scan() {
		var event struct {
			Verb      string `json:"verb"`
			ObjectRef *struct {
				APIGroup  string `json:"apiGroup"`
				Namespace string `json:"namespace"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(scanner.Bytes(), &event) == nil && event.ObjectRef != nil && event.ObjectRef.APIGroup == "cilium.io" && event.ObjectRef.Namespace == namespace {
			verbs = append(verbs, event.Verb)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return verbs
}

// TestWindowCiliumNetworkPolicies runs the window with network policy flavor auto, first where the
// API server has no Cilium CRD (NetworkPolicies only, nothing asked of cilium.io), then with Cilium's
// own CiliumNetworkPolicy CRD installed (a CiliumNetworkPolicy beside each NetworkPolicy, exactly as
// expected and valid under Cilium's schema), through flavor changes, the removal of the window, and an
// opening.
func TestWindowCiliumNetworkPolicies(t *testing.T) {
	ctx := context.Background()
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	w.start(clock, false)

	// No Cilium: the NetworkPolicies alone, and not one request for a CiliumNetworkPolicy.
	w.eventuallyFenced("the fences to go up without Cilium", true)
	if got := ciliumRequestsIn(t, w.longhorn); len(got) != 0 {
		t.Errorf("requests for CiliumNetworkPolicies without Cilium's CRD: %v", got)
	}

	// Cilium's CRD appears: found at the next check after the detection's minute has passed.
	installCiliumCRD(t)
	setTime(t, clock, clock.Now().Add(2*time.Minute))
	w.wake()
	w.eventuallyCiliumPolicies("the CiliumNetworkPolicies to appear once Cilium's CRD is served", true)
	w.eventuallyFenced("the NetworkPolicies to stay", true)
	w.checkCiliumPolicies()

	// What the window writes passes Cilium's schema with strict field validation, and that check has
	// teeth: a misspelt field and an unknown entity are refused.
	for _, policy := range policies.WindowCiliumNetworkPolicies(w.currentConfig().CompiledWindow(), w.longhorn) {
		policy.SetName(policy.GetName() + "-dry-run")
		if err := kube.Create(ctx, policy, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("server-side dry run of %s: %v", policy.GetName(), err)
		}
	}
	misspelt := policies.WindowCiliumNetworkPolicies(w.currentConfig().CompiledWindow(), w.longhorn)[0]
	misspelt.Object["spec"].(map[string]any)["egress"].([]any)[0].(map[string]any)["toEntity"] = []any{"cluster"}
	if err := kube.Create(ctx, misspelt, client.DryRunAll, client.FieldValidation("Strict")); !apierrors.IsBadRequest(err) {
		t.Errorf("a misspelt field: got %v, want a strict field validation refusal", err)
	}
	unknownEntity := policies.WindowCiliumNetworkPolicies(w.currentConfig().CompiledWindow(), w.longhorn)[0]
	unknownEntity.Object["spec"].(map[string]any)["egress"].([]any)[0].(map[string]any)["toEntities"] = []any{"apiserver"}
	if err := kube.Create(ctx, unknownEntity, client.DryRunAll, client.FieldValidation("Strict")); !apierrors.IsInvalid(err) {
		t.Errorf("an unknown entity: got %v, want Invalid", err)
	}

	// Flavor kubernetes: the CiliumNetworkPolicies go, the NetworkPolicies stay.
	window := "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  maxExtension: 1h\n"
	w.setWindow(window + "  networkPolicyFlavor: kubernetes\n")
	w.eventuallyCiliumPolicies("the CiliumNetworkPolicies to go with flavor kubernetes", false)
	w.eventuallyFenced("the NetworkPolicies to stay with flavor kubernetes", true)

	// Flavor cilium, with an allowed CIDR: back, with the CIDR.
	w.setWindow(window + "  networkPolicyFlavor: cilium\n  allowedCIDRs: [\"192.0.2.0/24\"]\n")
	eventually(t, "the CiliumNetworkPolicies to come back with flavor cilium and the CIDR", func() (bool, string) {
		got := w.ciliumPolicies()
		if len(got) != 2 {
			return false, fmt.Sprintf("%d policies", len(got))
		}
		want := ciliumEgress(t, "192.0.2.0/24")
		return cmp.Equal(want, got[0].Object["spec"].(map[string]any)["egress"]), cmp.Diff(want, got[0].Object["spec"].(map[string]any)["egress"])
	})
	w.checkCiliumPolicies("192.0.2.0/24")

	// The window removed from the config: nothing of it is left.
	w.setWindow("")
	w.eventuallyCiliumPolicies("the CiliumNetworkPolicies to go with the window", false)
	w.eventuallyFenced("the NetworkPolicies to go with the window", false)

	// Back, then open at 00:55: both kinds come down together.
	w.setWindow(window)
	w.eventuallyCiliumPolicies("the CiliumNetworkPolicies to come back with the window", true)
	w.eventuallyFenced("the NetworkPolicies to come back with the window", true)
	setTime(t, clock, time.Date(2026, 11, 22, 0, 55, 0, 0, time.UTC))
	w.eventuallyFenced("the NetworkPolicies to come down at the opening", false)
	w.eventuallyCiliumPolicies("the CiliumNetworkPolicies to come down at the opening", false)
}
