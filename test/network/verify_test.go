package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
	"github.com/backupguard/backupguard/test/netlab"
)

// probeSandbox is the network namespace the test's kubelet gives the probe pod.
var probeSandbox = netlab.PodSpec{Name: "probe-sandbox"}

// TestWindowVerifyOnKubeRouter runs the real `backupguard window verify` against the lab, the test
// playing the kubelet for its probe pod: with kube-router enforcing the probe's policy, the fence
// works (exit 0); with no policy enforced, the store is reachable (exit 1, "enforces nothing").
func TestWindowVerifyOnKubeRouter(t *testing.T) {
	inLab(t, "TestWindowVerifyOnKubeRouter", []netlab.PodSpec{probeSandbox}, runVerifyInside)
}

const fenceWorksOutput = `object store    http://10.99.0.2:80: unreachable ✓ (connection refused)
kube-apiserver  10.43.0.1:443: reachable ✓ (HTTP 200 from /version)
DNS             kubernetes.default.svc: resolves ✓ (10.43.0.1)
the fence works: a pod with the window's egress rules cannot reach the object store, and reaches the kube-apiserver and DNS
`

const enforcesNothingOutput = `object store    http://10.99.0.2:80: REACHABLE ✗ (TCP connection accepted, HTTP 200)
kube-apiserver  10.43.0.1:443: reachable ✓ (HTTP 200 from /version)
DNS             kubernetes.default.svc: resolves ✓ (10.43.0.1)
the fence does not work: a pod with the window's egress rules reached the object store, so the CNI enforces no NetworkPolicy (flannel alone enforces nothing: use Canal, Calico, Cilium or k3s's built-in policy controller), or the store is inside a range the rules allow (window.allowedCIDRs, the cluster's pods)
`

func runVerifyInside(t *testing.T, l lab) {
	ctx := context.Background()
	lp := startControlPlane(t, l, nil)
	kube := lp.kube
	binary, err := cluster.BuildBackupguard(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The store as Longhorn's S3 convention gives it: the target URL, and its endpoint in the
	// credential Secret.
	create(t, kube, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: longhornNamespace},
		StringData: map[string]string{"AWS_ENDPOINTS": fmt.Sprintf("http://%s:%d", netlab.StoreAddress, netlab.StorePort),
			"AWS_ACCESS_KEY_ID": "netlab", "AWS_SECRET_ACCESS_KEY": "netlab"}})
	target := &longhorn.BackupTarget{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: "default"}, target); err != nil {
		t.Fatal(err)
	}
	target.Spec.BackupTargetURL, target.Spec.CredentialSecret = "s3://backups@us-east-1/", "s3-credentials"
	if err := kube.Update(ctx, target); err != nil {
		t.Fatal(err)
	}
	create(t, kube, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: controllers.WindowConfigMap, Namespace: ownNamespace}})

	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	t.Cleanup(stopKubelet)
	kubelet := &testKubelet{t: t, kube: kube, binary: binary, sandbox: l.Network.Pods[0], dir: l.Dir, apiPort: lp.apiPort}
	go kubelet.run(kubeletCtx)

	verify := func() (string, string, int) {
		started := time.Now()
		command := exec.Command(binary, "window", "verify", "--kubeconfig", lp.c.Kubeconfig, "-n", ownNamespace, "--timeout", "60s")
		var stdout, stderr bytes.Buffer
		command.Stdout, command.Stderr = &stdout, &stderr
		err := command.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("$ backupguard window verify   (exit %d, %s)\n%s%s", code, time.Since(started).Round(100*time.Millisecond), stdout.String(), stderr.String())
		return stdout.String(), stderr.String(), code
	}
	leftBehind := func() {
		t.Helper()
		pods, policyList := &corev1.PodList{}, &networkingv1.NetworkPolicyList{}
		if err := kube.List(ctx, pods, client.InNamespace(longhornNamespace)); err != nil {
			t.Fatal(err)
		}
		if err := kube.List(ctx, policyList, client.InNamespace(longhornNamespace)); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 0 || len(policyList.Items) != 0 {
			t.Errorf("left behind: %d pods, %d NetworkPolicies", len(pods.Items), len(policyList.Items))
		}
	}

	// kube-router enforces the probe's policy: the fence works.
	stdout, stderr, code := verify()
	if code != 0 || stderr != "" {
		t.Errorf("fence works: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if diff := cmp.Diff(fenceWorksOutput, stdout); diff != "" {
		t.Errorf("fence works: stdout (-want +got):\n%s", diff)
	}
	leftBehind()
	events := &corev1.EventList{}
	if err := kube.List(ctx, events, client.InNamespace(ownNamespace)); err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 1 || events.Items[0].Reason != "WindowVerified" || events.Items[0].Type != corev1.EventTypeNormal ||
		events.Items[0].InvolvedObject.Name != controllers.WindowConfigMap {
		t.Errorf("events after a working fence: %+v", events.Items)
	}

	// No policy enforced, as with flannel alone: kube-router stopped and its rules flushed.
	lp.kubeRouter.Stop()
	if out, err := exec.Command("iptables", "-F").CombinedOutput(); err != nil {
		t.Fatalf("iptables -F: %v\n%s", err, out)
	}
	stdout, stderr, code = verify()
	if code != 1 || stderr != "" {
		t.Errorf("nothing enforced: exit %d, stderr %q; want 1 and nothing", code, stderr)
	}
	if diff := cmp.Diff(enforcesNothingOutput, stdout); diff != "" {
		t.Errorf("nothing enforced: stdout (-want +got):\n%s", diff)
	}
	leftBehind()
	if err := kube.List(ctx, events, client.InNamespace(ownNamespace)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, event := range events.Items {
		reasons = append(reasons, event.Type+" "+event.Reason)
	}
	slices.Sort(reasons)
	if diff := cmp.Diff([]string{"Normal WindowVerified", "Warning WindowVerifyFailed"}, reasons); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if ran := kubelet.ran.Load(); ran != 2 {
		t.Errorf("the test's kubelet ran %d probes, want 2", ran)
	}
}

// testKubelet plays the scheduler and the kubelet for the probe pods: it binds each to the node,
// gives it the sandbox's network namespace (status Running, podIP, hostIP the node's InternalIP, so
// that kube-router enforces the probe's policy on it), runs its container's command there with the
// environment a kubelet gives, and ends it Succeeded with the termination message the probe wrote.
type testKubelet struct {
	t       *testing.T
	kube    client.WithWatch
	binary  string
	sandbox *netlab.Pod
	dir     string
	apiPort string
	ran     atomic.Int32
}

func (k *testKubelet) run(ctx context.Context) {
	watcher, err := k.kube.Watch(ctx, &corev1.PodList{}, client.InNamespace(longhornNamespace), client.HasLabels{policies.ProbeLabel})
	if err != nil {
		k.t.Error(err)
		return
	}
	defer watcher.Stop()
	for change := range watcher.ResultChan() {
		pod, ok := change.Object.(*corev1.Pod)
		if !ok || change.Type != watch.Added {
			continue
		}
		if err := k.runPod(ctx, pod); err != nil && ctx.Err() == nil {
			k.t.Errorf("the test's kubelet, pod %s: %v", pod.Name, err)
		}
	}
}

func (k *testKubelet) runPod(ctx context.Context, pod *corev1.Pod) error {
	binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		Target: corev1.ObjectReference{Kind: "Node", Name: netlab.NodeName}}
	if err := k.kube.SubResource("binding").Create(ctx, pod, binding); err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	if err := k.kube.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		return err
	}
	started := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: k.sandbox.Address, PodIPs: []corev1.PodIP{{IP: k.sandbox.Address}},
		HostIP: netlab.NodeAddress, HostIPs: []corev1.HostIP{{IP: netlab.NodeAddress}}, StartTime: &started,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "probe", Image: pod.Spec.Containers[0].Image,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}}}
	if err := k.kube.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("status Running: %w", err)
	}
	// The container: the pod's args, the kubernetes Service's address as a kubelet puts it in the
	// environment, the termination log in a file of the test's, and the lab's DNS server in place
	// of the resolv.conf a kubelet writes.
	terminationLog := filepath.Join(k.dir, pod.Name+".termination-log")
	args := append(append([]string(nil), pod.Spec.Containers[0].Args...), "--termination-log", terminationLog,
		"--dns-server", net.JoinHostPort(netlab.NodeAddress, strconv.Itoa(netlab.DNSPort)))
	command := netlab.Command(k.sandbox.Namespace, k.binary, args...)
	command.Env = []string{"KUBERNETES_SERVICE_HOST=" + netlab.KubernetesClusterIP, "KUBERNETES_SERVICE_PORT=443"}
	output, runErr := command.CombinedOutput()
	k.ran.Add(1)
	message, err := os.ReadFile(terminationLog)
	if err != nil {
		return fmt.Errorf("the probe wrote no result (%v): %s", runErr, output)
	}
	exitCode := int32(0)
	if runErr != nil {
		exitCode = 1
	}
	if err := k.kube.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		return err
	}
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "probe", Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: "Completed",
			Message: strings.TrimSpace(string(message)), StartedAt: started, FinishedAt: metav1.Now()}}}}
	if err := k.kube.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("status Succeeded: %w", err)
	}
	return nil
}
