package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// defaultImage is the image of manifests/base/deployment.yaml (a test keeps them equal).
const defaultImage = "ghcr.io/backupguard/backupguard:v0.1.0"

// defaultTerminationLog is where a container's termination message goes by default.
const defaultTerminationLog = "/dev/termination-log"

// probeCheck is one check of `backupguard probe`: whether Target could be reached (or resolved).
type probeCheck struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Address is the address the store was reached or refused at, when known.
	Address string `json:"address,omitempty"`
	Detail  string `json:"detail"`
}

// probeResult is what the probe writes to its termination message (kept well under the 4096 bytes
// the kubelet keeps).
type probeResult struct {
	Store     probeCheck `json:"store"`
	APIServer probeCheck `json:"apiServer"`
	DNS       probeCheck `json:"dns"`
}

// probeOptions are the probe's flags.
type probeOptions struct {
	endpoint       string
	terminationLog string
	dnsName        string
	dnsServer      string
	settle         time.Duration
	timeout        time.Duration
}

func newProbeCommand() *cobra.Command {
	opts := probeOptions{}
	command := &cobra.Command{
		Use:    "probe --endpoint URL [flags]",
		Short:  "Run by the probe pod of window verify: try the object store, the kube-apiserver and DNS",
		Hidden: true,
		Args:   noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if opts.endpoint == "" {
				return usageError("probe needs --endpoint")
			}
			result := runProbe(context.Background(), opts, os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
			data, err := json.Marshal(result)
			if err != nil {
				return failure(err)
			}
			fmt.Fprintln(command.OutOrStdout(), string(data))
			if err := os.WriteFile(opts.terminationLog, data, 0o644); err != nil { //nolint:gosec // read by the kubelet
				return failure(err)
			}
			return nil
		},
	}
	flags := command.Flags()
	flags.StringVar(&opts.endpoint, "endpoint", "", "the object store's endpoint URL")
	flags.StringVar(&opts.terminationLog, "termination-log", defaultTerminationLog, "where the JSON result goes")
	flags.StringVar(&opts.dnsName, "dns-name", "kubernetes.default.svc", "the name to resolve")
	flags.StringVar(&opts.dnsServer, "dns-server", "", "ask this DNS server (host:port) instead of the pod's resolver")
	flags.DurationVar(&opts.settle, "settle", 3*time.Second, "wait this long before trying the store, so that the CNI has applied the probe's policy")
	flags.DurationVar(&opts.timeout, "timeout", 5*time.Second, "how long each attempt may take")
	return command
}

// runProbe tries the store once, after settle; the kube-apiserver and DNS until they answer, at most
// three times (a pod's network may come up a moment after it starts).
func runProbe(ctx context.Context, opts probeOptions, apiHost, apiPort string) probeResult {
	time.Sleep(opts.settle)
	result := probeResult{Store: probeStore(ctx, opts.endpoint, opts.timeout)}
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		if !result.APIServer.OK {
			result.APIServer = probeAPIServer(ctx, apiHost, apiPort, opts.timeout)
		}
		if !result.DNS.OK {
			result.DNS = probeDNS(ctx, opts.dnsName, opts.dnsServer, opts.timeout)
		}
	}
	return result
}

// storeAddress is the host:port an endpoint URL is reached at.
func storeAddress(endpoint string) (string, error) {
	parsed, err := url.Parse(endpoint)
	if err != nil || parsed.Host == "" {
		return "", fmt.Errorf("endpoint %q: not a URL such as https://minio.example:9000", endpoint)
	}
	if parsed.Port() != "" {
		return parsed.Host, nil
	}
	port, ok := map[string]string{"http": "80", "https": "443", "nfs": "2049", "cifs": "445"}[parsed.Scheme]
	if !ok {
		return "", fmt.Errorf("endpoint %q: no port, and none known for scheme %q", endpoint, parsed.Scheme)
	}
	return net.JoinHostPort(parsed.Hostname(), port), nil
}

// probeStore opens a new TCP connection to the store, then, for http(s), sends a request on a new
// connection: any HTTP answer means reachable.
func probeStore(ctx context.Context, endpoint string, timeout time.Duration) probeCheck {
	check := probeCheck{Target: endpoint}
	address, err := storeAddress(endpoint)
	if err != nil {
		check.Detail = err.Error()
		return check
	}
	dialer := &net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		check.Address = dialedAddress(err, address)
		check.Detail = dialFailure(err, timeout)
		return check
	}
	check.OK, check.Address, check.Detail = true, conn.RemoteAddr().String(), "TCP connection accepted"
	conn.Close()
	if scheme := strings.SplitN(endpoint, ":", 2)[0]; scheme == "http" || scheme == "https" {
		if status, err := httpGet(ctx, endpoint, timeout); err != nil {
			check.Detail += ", HTTP request failed: " + err.Error()
		} else {
			check.Detail += ", HTTP " + strconv.Itoa(status)
		}
	}
	return check
}

// dialedAddress is the address a failed dial went to, when the error tells.
func dialedAddress(err error, fallback string) string {
	var opError *net.OpError
	if errors.As(err, &opError) && opError.Addr != nil {
		return opError.Addr.String()
	}
	return fallback
}

// dialFailure says shortly why a connection could not be opened.
func dialFailure(err error, timeout time.Duration) string {
	var netError net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.As(err, &netError) && netError.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	}
	return err.Error()
}

// httpGet sends one GET on a new connection (the certificate is not checked: the question is only
// whether the network lets it through) and returns the status.
func httpGet(ctx context.Context, target string, timeout time.Duration) (int, error) {
	httpClient := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true, Proxy: nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // reachability only
	}}
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	response, err := httpClient.Do(request)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(response.Body, 1<<16))
	_ = response.Body.Close()
	return response.StatusCode, nil
}

// probeAPIServer sends GET /version to the kubernetes Service's address, as the pod's environment
// gives it; any HTTP answer means reachable.
func probeAPIServer(ctx context.Context, host, port string, timeout time.Duration) probeCheck {
	if host == "" || port == "" {
		return probeCheck{Target: "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT", Detail: "not set in the pod's environment"}
	}
	check := probeCheck{Target: net.JoinHostPort(host, port)}
	status, err := httpGet(ctx, "https://"+check.Target+"/version", timeout)
	if err != nil {
		check.Detail = dialFailure(err, timeout)
		return check
	}
	check.OK, check.Detail = true, fmt.Sprintf("HTTP %d from /version", status)
	return check
}

// probeDNS resolves name with the pod's resolver, or with server when given.
func probeDNS(ctx context.Context, name, server string, timeout time.Duration) probeCheck {
	check := probeCheck{Target: name}
	resolver := net.DefaultResolver
	if server != "" {
		dialer := &net.Dialer{Timeout: timeout}
		resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, server)
		}}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addresses, err := resolver.LookupHost(ctx, name)
	if err != nil {
		check.Detail = err.Error()
		return check
	}
	check.OK, check.Detail = true, strings.Join(addresses, ", ")
	return check
}

// verdict reads a probe's result: a line per check, then what it means; ok when the fence works (the
// store unreachable, the kube-apiserver and DNS reachable). allowed are the destinations the window's
// rules let through besides the cluster's pods, to tell why a store was reachable.
func verdict(result probeResult, allowed []netip.Prefix) (lines []string, ok bool) {
	mark := func(good bool, yes, no string) string {
		if good {
			return yes + " ✓"
		}
		return no + " ✗"
	}
	lines = append(lines,
		fmt.Sprintf("object store    %s: %s (%s)", result.Store.Target, mark(!result.Store.OK, "unreachable", "REACHABLE"), result.Store.Detail),
		fmt.Sprintf("kube-apiserver  %s: %s (%s)", result.APIServer.Target, mark(result.APIServer.OK, "reachable", "UNREACHABLE"), result.APIServer.Detail),
		fmt.Sprintf("DNS             %s: %s (%s)", result.DNS.Target, mark(result.DNS.OK, "resolves", "DOES NOT RESOLVE"), result.DNS.Detail))
	ok = !result.Store.OK && result.APIServer.OK && result.DNS.OK
	if ok {
		return append(lines, "the fence works: a pod with the window's egress rules cannot reach the object store, and reaches the kube-apiserver and DNS"), true
	}
	if result.Store.OK {
		var inside string
		if host, _, err := net.SplitHostPort(result.Store.Address); err == nil {
			if address, err := netip.ParseAddr(host); err == nil {
				for _, prefix := range allowed {
					if prefix.Contains(address.Unmap()) {
						inside = prefix.String()
						break
					}
				}
			}
		}
		if inside != "" {
			lines = append(lines, fmt.Sprintf("the fence does not work: the object store's address %s is inside %s, which the window's rules allow (window.allowedCIDRs or the kube-apiserver's addresses)", result.Store.Address, inside))
		} else {
			lines = append(lines, "the fence does not work: a pod with the window's egress rules reached the object store, so the CNI enforces no NetworkPolicy (flannel alone enforces nothing: use Canal, Calico, Cilium or k3s's built-in policy controller), or the store is inside a range the rules allow (window.allowedCIDRs, the cluster's pods)")
		}
	}
	if !result.APIServer.OK {
		lines = append(lines, "the window's egress rules cut the kube-apiserver off: with the window closed Longhorn would lose it (on Cilium, see docs/window.md: the CiliumNetworkPolicy or policy-cidr-match-mode: nodes)")
	}
	if !result.DNS.OK {
		lines = append(lines, "DNS does not resolve from a pod with the window's egress rules")
	}
	return lines, false
}

// verifyOptions are the flags of window verify.
type verifyOptions struct {
	image             string
	endpoint          string
	backupTarget      string
	longhornNamespace string
	configPath        string
	timeout           time.Duration
}

func newWindowVerifyCommand(opts *windowOptions) *cobra.Command {
	verify := verifyOptions{}
	command := &cobra.Command{
		Use:   "verify [--endpoint URL | --backup-target NAME] [flags]",
		Short: "Check with a probe pod that the window's fence keeps Longhorn off the store, not off the kube-apiserver",
		Long: `Runs a short-lived probe pod in Longhorn's namespace, selected by a NetworkPolicy (and, where Cilium's
CRD is served, a CiliumNetworkPolicy) with the window's egress rules, whether the window is open or
closed. The probe tries the object store (a new TCP connection and an HTTP request), the kube-apiserver
(the kubernetes Service, GET /version) and DNS (kubernetes.default.svc). Exit status 0 when the fence
works: the store unreachable, the kube-apiserver and DNS reachable; 1 otherwise. The pod and its
policies are deleted afterwards; an Event on the window ConfigMap records the result.

The store's endpoint is --endpoint, else the BackupTarget's: spec.backupTargetURL, and for S3 the
AWS_ENDPOINTS key of its credentialSecret (AWS itself without one).`,
		Example: `  backupguard window verify
  backupguard window verify --endpoint https://minio.example:9000`,
		Args: noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if verify.timeout <= 0 {
				return usageError("--timeout must be positive")
			}
			kube, err := cliClient(opts.cluster)
			if err != nil {
				return failure(err)
			}
			// Interrupted, it still deletes what it created.
			interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(interrupted, verify.timeout+time.Minute)
			defer cancel()
			out := command.OutOrStdout()
			ok, err := runVerify(ctx, kube, opts.namespace, verify, out, command.ErrOrStderr())
			if err != nil {
				return failure(err)
			}
			if !ok {
				return &exitStatus{code: exitFailure}
			}
			return nil
		},
	}
	flags := command.Flags()
	flags.StringVar(&verify.image, "image", defaultImage, "the probe pod's image: backupguard's own")
	flags.StringVar(&verify.endpoint, "endpoint", "", "the object store's endpoint URL (default: read from the BackupTarget)")
	flags.StringVar(&verify.backupTarget, "backup-target", "default", "the BackupTarget whose store to try, without --endpoint")
	flags.StringVar(&verify.longhornNamespace, "longhorn-namespace", policies.DefaultLonghornNamespace, "Longhorn's namespace, where the probe runs")
	flags.StringVar(&verify.configPath, "config", "", "backupguard's config file, for window.allowedCIDRs (default: the ConfigMap backupguard-config in backupguard's namespace, when readable)")
	flags.DurationVar(&verify.timeout, "timeout", 2*time.Minute, "how long to wait for the probe pod to finish")
	return command
}

// runVerify runs the probe and prints its verdict; ok when the fence works. Whatever it created is
// deleted before it returns.
func runVerify(ctx context.Context, kube client.Client, namespace string, opts verifyOptions, out, errOut io.Writer) (ok bool, err error) {
	endpoint := opts.endpoint
	if endpoint == "" {
		if endpoint, err = backupTargetEndpoint(ctx, kube, opts.longhornNamespace, opts.backupTarget); err != nil {
			return false, err
		}
	}
	if _, err := storeAddress(endpoint); err != nil {
		return false, err
	}
	window, err := verifyWindow(ctx, kube, namespace, opts.configPath)
	if err != nil {
		return false, err
	}
	apiServer, err := controllers.ReadAPIServerEndpoints(ctx, kube)
	if err != nil {
		return false, err
	}
	id, err := probeID()
	if err != nil {
		return false, err
	}
	name := "backupguard-verify-" + id
	policy, cilium := policies.ProbeNetworkPolicies(window, opts.longhornNamespace, name, id, apiServer)
	pod := probePod(opts.longhornNamespace, name, id, opts.image, endpoint, opts.timeout)

	defer func() {
		// A context of its own: the caller's may have run out.
		cleanupCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for kind, object := range map[string]client.Object{"Pod": pod, "NetworkPolicy": policy, "CiliumNetworkPolicy": cilium} {
			if object.GetResourceVersion() == "" {
				continue // never created
			}
			if deleteErr := kube.Delete(cleanupCtx, object); client.IgnoreNotFound(deleteErr) != nil {
				err = errors.Join(err, fmt.Errorf("deleting the probe's %s %s/%s: %w", kind, object.GetNamespace(), object.GetName(), deleteErr))
			}
		}
	}()
	if err := kube.Create(ctx, policy); err != nil {
		return false, fmt.Errorf("creating the probe's NetworkPolicy: %w", err)
	}
	// As the window: a CiliumNetworkPolicy too where Cilium's CRD is served, unless the flavor is
	// kubernetes.
	if window == nil || window.NetworkPolicyFlavor() != policies.NetworkPolicyFlavorKubernetes {
		switch err := kube.Create(ctx, cilium); {
		case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
			// No Cilium here.
		case err != nil:
			return false, fmt.Errorf("creating the probe's CiliumNetworkPolicy: %w", err)
		}
	}
	if err := kube.Create(ctx, pod); err != nil {
		return false, fmt.Errorf("creating the probe pod: %w", err)
	}
	// Should this command die before it deletes them, the policies go with the pod.
	if err := ownedByPod(ctx, kube, pod, policy, cilium); err != nil {
		return false, err
	}
	result, err := waitForProbe(ctx, kube, pod, opts.timeout)
	if err != nil {
		recordVerify(ctx, kube, namespace, corev1.EventTypeWarning, "WindowVerifyFailed", err.Error(), errOut)
		return false, err
	}
	lines, ok := verdict(result, append(allowedCIDRs(window), apiServerPrefixes(apiServer)...))
	for _, line := range lines {
		fmt.Fprintln(out, line)
	}
	eventType, reason := corev1.EventTypeNormal, "WindowVerified"
	if !ok {
		eventType, reason = corev1.EventTypeWarning, "WindowVerifyFailed"
	}
	recordVerify(ctx, kube, namespace, eventType, reason, strings.Join(lines, "; "), errOut)
	return ok, nil
}

// ownedByPod makes the pod the owner of the objects that were created, so that the garbage collector
// deletes them with it.
func ownedByPod(ctx context.Context, kube client.Client, pod *corev1.Pod, objects ...client.Object) error {
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	for _, object := range objects {
		if object.GetResourceVersion() == "" {
			continue
		}
		patch := client.MergeFrom(object.DeepCopyObject().(client.Object))
		object.SetOwnerReferences(owner)
		if err := kube.Patch(ctx, object, patch); err != nil {
			return fmt.Errorf("making the probe pod own %s: %w", object.GetName(), err)
		}
	}
	return nil
}

// allowedCIDRs returns the window's allowed CIDRs (none without a window).
func allowedCIDRs(window *policies.Window) []netip.Prefix {
	if window == nil {
		return nil
	}
	return window.AllowedCIDRs
}

func apiServerPrefixes(endpoints []policies.APIServerEndpoint) []netip.Prefix {
	prefixes := make([]netip.Prefix, 0, len(endpoints))
	for _, endpoint := range endpoints {
		prefixes = append(prefixes, netip.PrefixFrom(endpoint.Address, endpoint.Address.BitLen()))
	}
	return prefixes
}

// probeID is a short random id, so that two runs never share a pod or a policy.
func probeID() (string, error) {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	random := make([]byte, 5)
	if _, err := rand.Read(random); err != nil {
		return "", err
	}
	for i, b := range random {
		random[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(random), nil
}

// probePod is the probe: backupguard's image running `backupguard probe`, labelled for the probe's
// policies, with no service account token, as unprivileged as the restricted Pod Security Standard
// asks, gone by itself after timeout.
func probePod(namespace, name, id, image, endpoint string, timeout time.Duration) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
			policies.ProbeLabel: id, policies.ManagedByLabel: policies.ProbeManagedByValue,
			"app.kubernetes.io/name": "backupguard", "app.kubernetes.io/component": "window-verify",
		}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(int64(timeout.Seconds())),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "probe", Image: image, Args: []string{"probe", "--endpoint", endpoint},
				TerminationMessagePath: defaultTerminationLog, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// waitForProbe waits until the probe pod has ended and returns the result in its termination message.
func waitForProbe(ctx context.Context, kube client.Client, pod *corev1.Pod, timeout time.Duration) (probeResult, error) {
	deadline := time.Now().Add(timeout)
	current := &corev1.Pod{}
	for {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(pod), current); err != nil {
			return probeResult{}, fmt.Errorf("reading the probe pod: %w", err)
		}
		if current.Status.Phase == corev1.PodSucceeded || current.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			return probeResult{}, fmt.Errorf("the probe pod %s/%s did not finish within %s (phase %s%s)", pod.Namespace, pod.Name, timeout, orNone(string(current.Status.Phase)), podWaiting(current))
		}
		select {
		case <-ctx.Done():
			return probeResult{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	for _, status := range current.Status.ContainerStatuses {
		if terminated := status.State.Terminated; terminated != nil && status.Name == "probe" {
			var result probeResult
			if err := json.Unmarshal([]byte(terminated.Message), &result); err != nil {
				return probeResult{}, fmt.Errorf("the probe pod %s/%s ended (exit code %d) without a result: %q", pod.Namespace, pod.Name, terminated.ExitCode, terminated.Message)
			}
			return result, nil
		}
	}
	return probeResult{}, fmt.Errorf("the probe pod %s/%s ended (%s) without a container status: %s", pod.Namespace, pod.Name, current.Status.Phase, current.Status.Message)
}

// podWaiting says why a pod's container waits, e.g. ": probe ImagePullBackOff".
func podWaiting(pod *corev1.Pod) string {
	for _, status := range pod.Status.ContainerStatuses {
		if waiting := status.State.Waiting; waiting != nil {
			return fmt.Sprintf(", container %s: %s %s", status.Name, waiting.Reason, waiting.Message)
		}
	}
	return ""
}

// backupTargetEndpoint reads the store's endpoint from a BackupTarget: for S3, the AWS_ENDPOINTS key
// of its credential Secret (Longhorn's convention), else AWS's regional endpoint; for NFS and CIFS,
// the server.
func backupTargetEndpoint(ctx context.Context, kube client.Client, namespace, name string) (string, error) {
	target := &longhorn.BackupTarget{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, target); err != nil {
		return "", fmt.Errorf("reading BackupTarget %s/%s (or give --endpoint): %w", namespace, name, err)
	}
	var secret map[string][]byte
	if target.Spec.CredentialSecret != "" {
		object := &corev1.Secret{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: target.Spec.CredentialSecret}, object); err != nil {
			return "", fmt.Errorf("reading the BackupTarget's credential Secret %s/%s (or give --endpoint): %w", namespace, target.Spec.CredentialSecret, err)
		}
		secret = object.Data
	}
	return targetEndpoint(target.Spec.BackupTargetURL, secret)
}

// targetEndpoint is the endpoint of a backup target URL, given its credential Secret's data.
func targetEndpoint(targetURL string, secret map[string][]byte) (string, error) {
	parsed, err := url.Parse(targetURL)
	if err != nil || targetURL == "" {
		return "", fmt.Errorf("backup target URL %q: not a URL (give --endpoint)", targetURL)
	}
	switch parsed.Scheme {
	case "s3":
		if endpoint := strings.TrimSpace(string(secret["AWS_ENDPOINTS"])); endpoint != "" {
			return endpoint, nil
		}
		// s3://bucket@region/path
		if region := parsed.Host; region != "" {
			return "https://s3." + region + ".amazonaws.com", nil
		}
	case "nfs", "cifs":
		if parsed.Host != "" {
			return parsed.Scheme + "://" + parsed.Host, nil
		}
	}
	return "", fmt.Errorf("backup target URL %q: cannot tell its endpoint (give --endpoint)", targetURL)
}

// verifyWindow is the configured window, for its allowedCIDRs: from --config, else from the ConfigMap
// backupguard-config when it can be read; nil when there is none.
func verifyWindow(ctx context.Context, kube client.Client, namespace, configPath string) (*policies.Window, error) {
	if configPath != "" {
		config, err := loadConfig(configPath)
		if err != nil {
			return nil, err
		}
		return config.CompiledWindow(), nil
	}
	object := &corev1.ConfigMap{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "backupguard-config"}, object); err != nil {
		return nil, nil //nolint:nilerr // no config readable: no allowedCIDRs
	}
	data, ok := object.Data["config.yaml"]
	if !ok {
		return nil, nil
	}
	config, err := policies.ParseConfig([]byte(data), namespace+"/backupguard-config")
	if err != nil {
		return nil, err
	}
	return config.CompiledWindow(), nil
}

// recordVerify records the result as an Event on the window ConfigMap; without the ConfigMap (no
// window running), it only says so.
func recordVerify(ctx context.Context, kube client.Client, namespace, eventType, reason, message string, errOut io.Writer) {
	state := &corev1.ConfigMap{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: controllers.WindowConfigMap}, state); err != nil {
		fmt.Fprintf(errOut, "no Event recorded: reading %s/%s: %v\n", namespace, controllers.WindowConfigMap, err)
		return
	}
	if len(message) > 1024 {
		message = message[:1024]
	}
	now := metav1.Now()
	event := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: controllers.WindowConfigMap + ".", Namespace: namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: namespace, Name: state.Name,
			UID: state.UID, ResourceVersion: state.ResourceVersion},
		Reason: reason, Message: message, Type: eventType, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "backupguard-window-verify"},
	}
	if err := kube.Create(ctx, event); err != nil {
		fmt.Fprintf(errOut, "no Event recorded: %v\n", err)
	}
}
