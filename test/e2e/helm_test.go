package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/test/cluster"
)

// TestHelmInstallServes installs the chart with the real helm (its own certificate, no cert-manager) on a
// control plane of its own, runs serve as the chart's ServiceAccount with the chart's config and Secret,
// as the Deployment would, and checks that the API server reaches it through the chart's webhook
// configuration and Service and trusts the chart's CA. (test/chart covers lint, the objects, upgrade
// and uninstall.)
func TestHelmInstallServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ensure := exec.Command("bash", filepath.Join(cluster.RepoRoot(), "test", "tools", "ensure-helm.sh"))
	ensure.Stderr = os.Stderr
	helmDir, err := ensure.Output()
	if err != nil {
		t.Fatalf("test/tools/ensure-helm.sh: %v", err)
	}
	network := newTestNetwork(t)
	c, err := cluster.StartWith(cluster.Options{APIServerAddress: network.hostAddress, NoWebhooks: true, AggregatorRouting: true, NoAudit: true})
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
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "longhorn-system"}}); err != nil {
		t.Fatal(err)
	}
	install := exec.Command(filepath.Join(strings.TrimSpace(string(helmDir)), "helm"), "install", "backupguard", filepath.Join(cluster.RepoRoot(), "charts", "backupguard"),
		"--kubeconfig", c.Kubeconfig, "--namespace", "backupguard-system", "--create-namespace", "--set", "certificate.provider=helm")
	install.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}

	// What the kubelet would give the pod: the chart's config and Secret as files, its ServiceAccount.
	config := &corev1.ConfigMap{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "backupguard-system", Name: "backupguard-config"}, config); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(c.Dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(config.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	syncSecretToDir(ctx, t, admin, client.ObjectKey{Namespace: "backupguard-system", Name: "backupguard-webhook-tls"}, certDir)
	if c.ServeKubeconfig, err = c.ImpersonatingKubeconfig(cluster.ServiceAccountUser, cluster.ServiceAccountGroups); err != nil {
		t.Fatal(err)
	}
	c.ServeArgs = []string{"--leader-elect", "--leader-election-namespace", "backupguard-system"}
	c.ServeNetNS, c.ServeHost, c.CertDir = network.namespace, network.guestAddress, certDir
	eventually(t, "the chart's Secret in the cert dir", func() (bool, string) {
		_, err := os.Stat(filepath.Join(certDir, "tls.key"))
		return err == nil, certDir
	})
	guard := serveBehindWebhookService(ctx, t, c, admin, network, configPath)
	guard.Stop()
}
