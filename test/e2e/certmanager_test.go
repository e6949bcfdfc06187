package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/test/cluster"
)

// testNetwork is a network namespace of the test's own with a veth pair: the API server listens on
// the host end, backupguard serves inside, so the API server reaches it through a Service and an
// EndpointSlice like in a cluster, and no traffic leaves this machine.
type testNetwork struct {
	namespace, hostLink       string
	hostAddress, guestAddress string
}

func newTestNetwork(t *testing.T) *testNetwork {
	t.Helper()
	id := os.Getpid() % 250
	network := &testNetwork{
		namespace: fmt.Sprintf("bge2e%d", id), hostLink: fmt.Sprintf("bge2e%dh", id),
		hostAddress: fmt.Sprintf("10.203.%d.1", id), guestAddress: fmt.Sprintf("10.203.%d.2", id),
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", network.namespace).Run()
	_ = exec.Command("ip", "link", "del", network.hostLink).Run()
	run("netns", "add", network.namespace)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", network.namespace).Run()
		_ = exec.Command("ip", "link", "del", network.hostLink).Run()
	})
	guestLink := network.hostLink[:len(network.hostLink)-1] + "g"
	run("link", "add", network.hostLink, "type", "veth", "peer", "name", guestLink)
	run("link", "set", guestLink, "netns", network.namespace)
	run("addr", "add", network.hostAddress+"/30", "dev", network.hostLink)
	run("link", "set", network.hostLink, "up")
	run("netns", "exec", network.namespace, "ip", "addr", "add", network.guestAddress+"/30", "dev", guestLink)
	run("netns", "exec", network.namespace, "ip", "link", "set", guestLink, "up")
	run("netns", "exec", network.namespace, "ip", "link", "set", "lo", "up")
	return network
}

// certManagerDir builds (once) and returns test/tools' cert-manager runner and its CRDs.
func certManagerDir(t *testing.T) string {
	t.Helper()
	command := exec.Command("bash", filepath.Join(cluster.RepoRoot(), "test", "tools", "ensure-certmanager.sh"))
	command.Stderr = os.Stderr
	out, err := command.Output()
	if err != nil {
		t.Fatalf("building the cert-manager runner: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// startCertManager runs the real cert-manager controllers and CA injector against the cluster.
func startCertManager(t *testing.T, dir string, c *cluster.Cluster) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(c.Dir, "cert-manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	command := exec.Command(filepath.Join(dir, "certmanager"), "--kubeconfig", c.Kubeconfig, "--certificate-request-minimum-backoff", "1s")
	command.Stderr = logFile
	stdout, err := command.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = command.Process.Signal(os.Interrupt)
		_ = command.Wait()
		logFile.Close()
	})
	ready := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if scanner.Text() == "cert-manager ready" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("cert-manager did not become ready; its log is %s", logFile.Name())
	}
}

// syncSecretToDir mirrors a Secret into a directory the way the kubelet mounts it: the files are
// reached through a ..data symlink that is swapped in one rename, so a reader never sees half a pair.
func syncSecretToDir(ctx context.Context, t *testing.T, kube client.Client, key client.ObjectKey, dir string) {
	write := func(secret *corev1.Secret) error {
		version := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
		if err := os.Mkdir(version, 0o700); err != nil {
			return err
		}
		for _, name := range []string{"tls.crt", "tls.key"} {
			if err := os.WriteFile(filepath.Join(version, name), secret.Data[name], 0o600); err != nil {
				return err
			}
		}
		link := filepath.Join(dir, "..data_tmp")
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Base(version), link); err != nil {
			return err
		}
		if err := os.Rename(link, filepath.Join(dir, "..data")); err != nil {
			return err
		}
		for _, name := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	go func() {
		var last string
		for ctx.Err() == nil {
			secret := &corev1.Secret{}
			if err := kube.Get(ctx, key, secret); err == nil && secret.ResourceVersion != last && len(secret.Data["tls.key"]) > 0 {
				if err := write(secret); err != nil {
					t.Errorf("mirroring the Secret: %v", err)
					return
				}
				last = secret.ResourceVersion
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func certificateCondition(object *unstructured.Unstructured, conditionType string) string {
	conditions, _, _ := unstructured.NestedSlice(object.Object, "status", "conditions")
	for _, condition := range conditions {
		fields, _ := condition.(map[string]any)
		if fields["type"] == conditionType {
			status, _ := fields["status"].(string)
			return status
		}
	}
	return ""
}

// servedSerial is the serial number of the certificate serve presents now.
func servedSerial(address string) (string, error) {
	connection, err := tls.Dial("tcp", address, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer connection.Close()
	return connection.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func secretSerial(kube client.Client, key client.ObjectKey) (string, error) {
	secret := &corev1.Secret{}
	if err := kube.Get(context.Background(), key, secret); err != nil {
		return "", err
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		return "", fmt.Errorf("no certificate in the Secret yet")
	}
	certificate, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	return certificate.SerialNumber.String(), nil
}

// serveBehindWebhookService starts serve inside the test network (c.ServeNetNS and c.ServeHost set),
// writes what the endpoints controller would for the Service backupguard-webhook (loopback is not
// allowed as an endpoint), and waits until the API server reaches serve through the webhook
// configuration and trusts its certificate: timeZoneDenial's RecurringJob is denied, word for word.
func serveBehindWebhookService(ctx context.Context, t *testing.T, c *cluster.Cluster, admin client.Client, network *testNetwork, configPath string) *cluster.Backupguard {
	t.Helper()
	guard, err := c.StartBackupguard(ctx, binary, configPath)
	if err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "backupguard-webhook-e2e", Namespace: "backupguard-system", Labels: map[string]string{discoveryv1.LabelServiceName: "backupguard-webhook"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](9443), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{network.guestAddress}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if err := admin.Create(ctx, slice); err != nil {
		guard.Stop()
		t.Fatal(err)
	}
	denied, want := timeZoneDenial()
	eventually(t, "the API server to reach backupguard through the Service", func() (bool, string) {
		result := c.RunKubectl(denied, "apply", "--dry-run=server", "-f", "-")
		return cmp.Equal(want, result), cmp.Diff(want, result)
	})
	return guard
}

// timeZoneDenial is a RecurringJob that the webhook denies, and what `kubectl apply` prints for it on a
// cluster without Longhorn Settings: the proof that the API server reached backupguard.
func timeZoneDenial() (string, cluster.KubectlResult) {
	return recurringJobYAML("longhorn-system", "local-time", "  task: backup\n  cron: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n  retain: 7\n"),
		cluster.KubectlResult{ExitCode: 1, Stderr: detachedWarning + `The RecurringJob "local-time" is invalid: spec.cron: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": ` +
			`time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: ` +
			`"0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)` + "\n"}
}

var certificateResource = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

// TestInstallWithCertManager installs the shipped manifests with real cert-manager on a control plane
// of its own: the rendered install passes a server-side dry run, the Certificate becomes Ready, the CA
// is injected, the API server reaches serve through the Service and verifies the issued certificate,
// and a forced renewal under a steady stream of admission requests fails none of them.
func TestInstallWithCertManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tools := certManagerDir(t)
	network := newTestNetwork(t)
	c, err := cluster.StartWith(cluster.Options{
		APIServerAddress: network.hostAddress, ExtraCRDDirs: []string{filepath.Join(tools, "crds")},
		NoWebhooks: true, AggregatorRouting: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	admin, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	startCertManager(t, tools, c)

	// The rendered install passes a server-side dry run (its namespaces must exist for that).
	rendered := c.RunKubectl("", "kustomize", filepath.Join(cluster.RepoRoot(), "manifests", "install"))
	if rendered.ExitCode != 0 {
		t.Fatalf("kubectl kustomize: %s", rendered.Stderr)
	}
	for _, namespace := range []string{"backupguard-system", "longhorn-system"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			t.Fatal(err)
		}
	}
	if result := c.RunKubectl(rendered.Stdout, "apply", "--dry-run=server", "-f", "-"); result.ExitCode != 0 {
		t.Fatalf("server-side dry run of the install: %s", result.Stderr)
	}
	if result := c.RunKubectl(rendered.Stdout, "apply", "--server-side", "-f", "-"); result.ExitCode != 0 {
		t.Fatalf("applying the install: %s", result.Stderr)
	}

	dynamicClient, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	certificates := dynamicClient.Resource(certificateResource).Namespace("backupguard-system")
	eventually(t, "the serving Certificate to be Ready", func() (bool, string) {
		certificate, err := certificates.Get(ctx, "backupguard-webhook", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return certificateCondition(certificate, "Ready") == "True", fmt.Sprint(certificate.Object["status"])
	})
	eventually(t, "the CA to be injected into both webhook configurations", func() (bool, string) {
		for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration"} {
			result := c.RunKubectl("", "get", kind, "backupguard", "-o", "jsonpath={range .webhooks[*]}{.clientConfig.caBundle}{\"\\n\"}{end}")
			for _, bundle := range strings.Split(strings.TrimSpace(result.Stdout), "\n") {
				if bundle == "" {
					return false, kind + " has a webhook without caBundle"
				}
			}
		}
		return true, ""
	})

	// serve inside the network namespace, as the Deployment would run it, with the Secret mounted.
	certDir := t.TempDir()
	secretKey := client.ObjectKey{Namespace: "backupguard-system", Name: "backupguard-webhook-tls"}
	syncSecretToDir(ctx, t, admin, secretKey, certDir)
	c.ServeNetNS, c.ServeHost, c.CertDir = network.namespace, network.guestAddress, certDir
	configPath := filepath.Join(c.Dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(baseConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// Admission through the Service, over the issued certificate.
	guard := serveBehindWebhookService(ctx, t, c, admin, network, configPath)
	defer guard.Stop()

	// A steady stream of admission requests while cert-manager renews the certificate.
	jobs := dynamicClient.Resource(recurringJobResource).Namespace("longhorn-system")
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	streamCtx, stopStream := context.WithCancel(ctx)
	var stream sync.WaitGroup
	for worker := range 2 {
		stream.Add(1)
		go func() {
			defer stream.Done()
			for i := 0; streamCtx.Err() == nil; i++ {
				job := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
					"metadata": map[string]any{"name": fmt.Sprintf("rotation-%d-%d", worker, i), "namespace": "longhorn-system"},
					"spec":     map[string]any{"task": "snapshot", "cron": "0 * * * *", "retain": int64(3)},
				}}
				_, err := jobs.Create(streamCtx, job, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if streamCtx.Err() != nil {
					return
				}
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	before, err := servedSerial(network.guestAddress + ":9443")
	if err != nil {
		t.Fatal(err)
	}
	// The controllers keep writing status right after Ready: retry on a conflict.
	var revision int64
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		certificate, err := certificates.Get(ctx, "backupguard-webhook", metav1.GetOptions{})
		if err != nil {
			return err
		}
		revision, _, _ = unstructured.NestedInt64(certificate.Object, "status", "revision")
		conditions, _, _ := unstructured.NestedSlice(certificate.Object, "status", "conditions")
		conditions = append(conditions, map[string]any{"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
			"message": "renewal forced by the e2e suite", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)})
		if err := unstructured.SetNestedSlice(certificate.Object, conditions, "status", "conditions"); err != nil {
			return err
		}
		_, err = certificates.UpdateStatus(ctx, certificate, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "cert-manager to issue the next revision", func() (bool, string) {
		renewed, err := certificates.Get(ctx, "backupguard-webhook", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		current, _, _ := unstructured.NestedInt64(renewed.Object, "status", "revision")
		return current == revision+1 && certificateCondition(renewed, "Ready") == "True" && certificateCondition(renewed, "Issuing") != "True",
			fmt.Sprintf("revision %d", current)
	})
	eventually(t, "serve to present the renewed certificate", func() (bool, string) {
		want, err := secretSerial(admin, secretKey)
		if err != nil {
			return false, err.Error()
		}
		got, err := servedSerial(network.guestAddress + ":9443")
		if err != nil {
			return false, err.Error()
		}
		return got == want && got != before, "serving serial " + got + ", Secret's " + want
	})
	// Keep the stream going a little past the switch, then count.
	afterSwitch := sent.Load()
	eventually(t, "more requests after the switch", func() (bool, string) { return sent.Load() > afterSwitch+20, fmt.Sprint(sent.Load()) })
	stopStream()
	stream.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d admission requests failed during the rotation; the first: %v", failed.Load(), sent.Load(), firstFailure.Load())
	}
	t.Logf("%d admission requests through the Service during the rotation, none failed", sent.Load())
}
