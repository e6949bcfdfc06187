package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

var (
	fenceWorks = probeResult{
		Store:     probeCheck{Target: "http://10.99.0.2:80", Address: "10.99.0.2:80", Detail: "connection refused"},
		APIServer: probeCheck{Target: "10.43.0.1:443", OK: true, Detail: "HTTP 200 from /version"},
		DNS:       probeCheck{Target: "kubernetes.default.svc", OK: true, Detail: "10.43.0.1"},
	}
	storeReachable = probeResult{
		Store:     probeCheck{Target: "http://10.99.0.2:80", OK: true, Address: "10.99.0.2:80", Detail: "TCP connection accepted, HTTP 200"},
		APIServer: fenceWorks.APIServer, DNS: fenceWorks.DNS,
	}
)

func TestVerdict(t *testing.T) {
	cases := []struct {
		name    string
		result  probeResult
		allowed []netip.Prefix
		want    []string
		wantOK  bool
	}{
		{"fence works", fenceWorks, nil, []string{
			"object store    http://10.99.0.2:80: unreachable ✓ (connection refused)",
			"kube-apiserver  10.43.0.1:443: reachable ✓ (HTTP 200 from /version)",
			"DNS             kubernetes.default.svc: resolves ✓ (10.43.0.1)",
			"the fence works: a pod with the window's egress rules cannot reach the object store, and reaches the kube-apiserver and DNS",
		}, true},
		{"no policy enforced", storeReachable, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, []string{
			"object store    http://10.99.0.2:80: REACHABLE ✗ (TCP connection accepted, HTTP 200)",
			"kube-apiserver  10.43.0.1:443: reachable ✓ (HTTP 200 from /version)",
			"DNS             kubernetes.default.svc: resolves ✓ (10.43.0.1)",
			"the fence does not work: a pod with the window's egress rules reached the object store, so the CNI enforces no NetworkPolicy (flannel alone enforces nothing: use Canal, Calico, Cilium or k3s's built-in policy controller), or the store is inside a range the rules allow (window.allowedCIDRs, the cluster's pods)",
		}, false},
		{"store in an allowed CIDR", storeReachable, []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}, []string{
			"object store    http://10.99.0.2:80: REACHABLE ✗ (TCP connection accepted, HTTP 200)",
			"kube-apiserver  10.43.0.1:443: reachable ✓ (HTTP 200 from /version)",
			"DNS             kubernetes.default.svc: resolves ✓ (10.43.0.1)",
			"the fence does not work: the object store's address 10.99.0.2:80 is inside 10.99.0.0/24, which the window's rules allow (window.allowedCIDRs or the kube-apiserver's addresses)",
		}, false},
		{"apiserver and DNS cut off", probeResult{Store: fenceWorks.Store,
			APIServer: probeCheck{Target: "10.43.0.1:443", Detail: "no answer within 5s"},
			DNS:       probeCheck{Target: "kubernetes.default.svc", Detail: "lookup kubernetes.default.svc: i/o timeout"}}, nil, []string{
			"object store    http://10.99.0.2:80: unreachable ✓ (connection refused)",
			"kube-apiserver  10.43.0.1:443: UNREACHABLE ✗ (no answer within 5s)",
			"DNS             kubernetes.default.svc: DOES NOT RESOLVE ✗ (lookup kubernetes.default.svc: i/o timeout)",
			"the window's egress rules cut the kube-apiserver off: with the window closed Longhorn would lose it (on Cilium, see docs/window.md: the CiliumNetworkPolicy or policy-cidr-match-mode: nodes)",
			"DNS does not resolve from a pod with the window's egress rules",
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := verdict(c.result, c.allowed)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if ok != c.wantOK {
				t.Errorf("ok: got %v, want %v", ok, c.wantOK)
			}
		})
	}
}

func TestProbePod(t *testing.T) {
	want := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "backupguard-verify-b2c4d", Namespace: "longhorn-system", Labels: map[string]string{
			"backupguard.io/verify-probe": "b2c4d", "app.kubernetes.io/managed-by": "backupguard-verify",
			"app.kubernetes.io/name": "backupguard", "app.kubernetes.io/component": "window-verify",
		}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(int64(120)),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "probe", Image: "ghcr.io/backupguard/backupguard:v0.1.0",
				Args:                   []string{"probe", "--endpoint", "https://minio.example:9000"},
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
	got := probePod("longhorn-system", "backupguard-verify-b2c4d", "b2c4d", defaultImage, "https://minio.example:9000", 2*time.Minute)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
}

func TestProbeNetworkPolicyHasTheWindowsRules(t *testing.T) {
	config, err := policies.ParseConfig([]byte(`apiVersion: backupguard.io/v1alpha1
kind: Config
window:
  opens: "0 1 * * *"
  duration: 1h
  allowedCIDRs: [192.168.7.0/24]
`), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	window := config.CompiledWindow()
	apiServer := []policies.APIServerEndpoint{{Address: netip.MustParseAddr("10.99.0.1"), Port: 6443}}
	policy, cilium := policies.ProbeNetworkPolicies(window, "longhorn-system", "backupguard-verify-b2c4d", "b2c4d", apiServer)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	dns, api := intstr.FromInt32(53), intstr.FromInt32(6443)
	labels := map[string]string{"app.kubernetes.io/managed-by": "backupguard-verify", "backupguard.io/verify-probe": "b2c4d"}
	annotations := map[string]string{"backupguard.io/why": "backupguard window verify: the window's egress rules, for its probe pod only; deleted when the probe ends. Keep it out of Git."}
	want := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "backupguard-verify-b2c4d", Namespace: "longhorn-system", Labels: labels, Annotations: annotations},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"backupguard.io/verify-probe": "b2c4d"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.99.0.1/32"}}}, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &api}}},
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.7.0/24"}}}},
			},
		},
	}
	if diff := cmp.Diff(want, policy); diff != "" {
		t.Errorf("NetworkPolicy (-want +got):\n%s", diff)
	}
	// The same rules as the window's own policy, only the selector, name and labels differ.
	windowPolicy := policies.WindowNetworkPolicies(window, "longhorn-system", apiServer)[0]
	if diff := cmp.Diff(windowPolicy.Spec.Egress, policy.Spec.Egress); diff != "" {
		t.Errorf("egress differs from the window's (-window +probe):\n%s", diff)
	}
	windowCilium := policies.WindowCiliumNetworkPolicies(window, "longhorn-system")[0]
	if diff := cmp.Diff(windowCilium.Object["spec"].(map[string]any)["egress"], cilium.Object["spec"].(map[string]any)["egress"]); diff != "" {
		t.Errorf("Cilium egress differs from the window's (-window +probe):\n%s", diff)
	}
	wantCilium := map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": "backupguard-verify-b2c4d", "namespace": "longhorn-system",
			"labels":      map[string]any{"app.kubernetes.io/managed-by": "backupguard-verify", "backupguard.io/verify-probe": "b2c4d"},
			"annotations": map[string]any{"backupguard.io/why": annotations["backupguard.io/why"]}},
		"spec": map[string]any{
			"endpointSelector":  map[string]any{"matchLabels": map[string]any{"backupguard.io/verify-probe": "b2c4d"}},
			"enableDefaultDeny": map[string]any{"egress": false, "ingress": false},
			"egress":            windowCilium.Object["spec"].(map[string]any)["egress"],
		},
	}
	if diff := cmp.Diff(wantCilium, cilium.Object); diff != "" {
		t.Errorf("CiliumNetworkPolicy (-want +got):\n%s", diff)
	}
}

func TestDefaultImageIsTheDeployments(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "manifests", "base", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "image: "+defaultImage+"\n") {
		t.Errorf("manifests/base/deployment.yaml does not use the image %s, --image's default", defaultImage)
	}
}

func TestTargetEndpoint(t *testing.T) {
	cases := []struct {
		url    string
		secret map[string][]byte
		want   string
	}{
		{"s3://backups@us-east-1/", map[string][]byte{"AWS_ENDPOINTS": []byte("https://minio.example:9000\n")}, "https://minio.example:9000"},
		{"s3://backups@eu-west-3/cluster1", nil, "https://s3.eu-west-3.amazonaws.com"},
		{"nfs://nfs.example:/exports/backups", nil, "nfs://nfs.example:"},
		{"cifs://smb.example/backups", nil, "cifs://smb.example"},
	}
	for _, c := range cases {
		got, err := targetEndpoint(c.url, c.secret)
		if err != nil || got != c.want {
			t.Errorf("targetEndpoint(%q): got %q, %v; want %q", c.url, got, err, c.want)
		}
	}
	if _, err := targetEndpoint("azblob://container@core.windows.net/", nil); err == nil {
		t.Error("azblob: want an error asking for --endpoint")
	}
}

func TestProbeChecks(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer server.Close()
	ctx := context.Background()
	if got := probeStore(ctx, server.URL, time.Second); !got.OK || got.Detail != "TCP connection accepted, HTTP 403" {
		t.Errorf("reachable store: got %+v", got)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := listener.Addr().String()
	listener.Close()
	if got := probeStore(ctx, "http://"+closed, time.Second); got.OK || got.Detail != "connection refused" || got.Address != closed {
		t.Errorf("closed port: got %+v", got)
	}
	if got := probeAPIServer(ctx, "", "", time.Second); got.OK {
		t.Errorf("no KUBERNETES_SERVICE_HOST: got %+v", got)
	}
	if got := probeDNS(ctx, "localhost", "", time.Second); !got.OK {
		t.Errorf("localhost: got %+v", got)
	}
}

// TestRunVerifyCleansUp plays the kubelet on a fake client: the result is read from the termination
// message, an Event is recorded, and the pod and the policy are gone afterwards.
func TestRunVerifyCleansUp(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	port := int32(6443)
	kube := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: controllers.WindowConfigMap, Namespace: "backupguard-system"}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.99.0.1"}}}, Ports: []discoveryv1.EndpointPort{{Port: &port}}},
		&longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "longhorn-system"},
			Spec: longhorn.BackupTargetSpec{BackupTargetURL: "s3://backups@us-east-1/", CredentialSecret: "s3"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "longhorn-system"}, Data: map[string][]byte{"AWS_ENDPOINTS": []byte("http://10.99.0.2:80")}},
	).WithStatusSubresource(&corev1.Pod{}).Build()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sawPolicy := make(chan bool, 1)
	go func() {
		for ctx.Err() == nil {
			pods := &corev1.PodList{}
			_ = kube.List(ctx, pods, client.InNamespace("longhorn-system"))
			if len(pods.Items) == 1 {
				pod := &pods.Items[0]
				// The policy selects the pod, and the pod owns it.
				policy := &networkingv1.NetworkPolicy{}
				for ctx.Err() == nil && (kube.Get(ctx, client.ObjectKeyFromObject(pod), policy) != nil || len(policy.OwnerReferences) == 0) {
					time.Sleep(10 * time.Millisecond)
				}
				sawPolicy <- policy.Spec.PodSelector.MatchLabels[policies.ProbeLabel] == pod.Labels[policies.ProbeLabel] &&
					cmp.Equal(policy.OwnerReferences, []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}) &&
					pod.Spec.Containers[0].Args[2] == "http://10.99.0.2:80"
				message, _ := json.Marshal(fenceWorks)
				pod.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "probe",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: string(message)}}}}}
				_ = kube.Status().Update(ctx, pod)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var out, errOut bytes.Buffer
	ok, err := runVerify(ctx, kube, "backupguard-system", verifyOptions{image: defaultImage, backupTarget: "default",
		longhornNamespace: "longhorn-system", timeout: 5 * time.Second}, &out, &errOut)
	if err != nil || !ok {
		t.Fatalf("runVerify: %v, %v; stderr %s", ok, err, errOut.String())
	}
	if !<-sawPolicy {
		t.Error("the probe pod had no NetworkPolicy selecting it and owned by it, or the wrong endpoint")
	}
	want, _ := verdict(fenceWorks, nil)
	if diff := cmp.Diff(strings.Join(want, "\n")+"\n", out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	pods, policyList, events := &corev1.PodList{}, &networkingv1.NetworkPolicyList{}, &corev1.EventList{}
	_ = kube.List(ctx, pods)
	_ = kube.List(ctx, policyList)
	_ = kube.List(ctx, events, client.InNamespace("backupguard-system"))
	if len(pods.Items) != 0 || len(policyList.Items) != 0 {
		t.Errorf("left behind: %d pods, %d NetworkPolicies", len(pods.Items), len(policyList.Items))
	}
	if len(events.Items) != 1 || events.Items[0].Reason != "WindowVerified" || events.Items[0].InvolvedObject.Name != controllers.WindowConfigMap {
		t.Errorf("events: got %+v", events.Items)
	}
}
