package chart

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// webhookCABundles lists every webhook's clientConfig.caBundle, by webhook name.
func webhookCABundles(t *testing.T, rendered map[string]*unstructured.Unstructured) map[string]string {
	t.Helper()
	bundles := map[string]string{}
	for _, key := range []string{"ValidatingWebhookConfiguration /backupguard", "MutatingWebhookConfiguration /backupguard"} {
		configuration, ok := rendered[key]
		if !ok {
			t.Fatalf("%s not rendered", key)
		}
		webhooks, _, _ := unstructured.NestedSlice(configuration.Object, "webhooks")
		for _, webhook := range webhooks {
			name, _, _ := unstructured.NestedString(webhook.(map[string]any), "name")
			bundle, _, _ := unstructured.NestedString(webhook.(map[string]any), "clientConfig", "caBundle")
			bundles[name] = bundle
		}
		if _, injected := configuration.GetAnnotations()["cert-manager.io/inject-ca-from"]; injected {
			t.Errorf("%s: asks cert-manager to inject a CA, but the chart manages the certificate", key)
		}
	}
	return bundles
}

// verifyServingCertificate checks that the Secret's certificate is signed by its ca.crt for the
// webhook Service's names, and returns the CA (base64, as the Secret holds it).
func verifyServingCertificate(t *testing.T, data map[string]any, namespace string) string {
	t.Helper()
	decode := func(key string) []byte {
		encoded, _ := data[key].(string)
		raw, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(raw) == 0 {
			t.Fatalf("the Secret's %s: %q (%v)", key, encoded, err)
		}
		return raw
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(decode("ca.crt")) {
		t.Fatal("ca.crt holds no certificate")
	}
	block, _ := pem.Decode(decode("tls.crt"))
	if block == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	certificate, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"backupguard-webhook." + namespace + ".svc", "backupguard-webhook." + namespace + ".svc.cluster.local"} {
		if _, err := certificate.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the serving certificate for %s: %v", name, err)
		}
	}
	decode("tls.key")
	return data["ca.crt"].(string)
}

func TestChartManagedCertificate(t *testing.T) {
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "guard", "--set", "certificate.provider=helm"))
	secret, ok := rendered["Secret guard/backupguard-webhook-tls"]
	if !ok {
		t.Fatalf("no Secret guard/backupguard-webhook-tls in %v", keys(rendered))
	}
	ca := verifyServingCertificate(t, secret.Object["data"].(map[string]any), "guard")
	want := map[string]string{"recurringjobs.backupguard.io": ca, "pvcs.backupguard.io": ca, "volumes.backupguard.io": ca, "jobs.backupguard.io": ca}
	if diff := cmp.Diff(want, webhookCABundles(t, rendered)); diff != "" {
		t.Errorf("caBundle by webhook (-the Secret's ca.crt +rendered):\n%s", diff)
	}
	for _, key := range keys(rendered) {
		if rendered[key].GetAPIVersion() == "cert-manager.io/v1" {
			t.Errorf("%s rendered with the chart-managed certificate", key)
		}
	}
}

func TestOptionalObjects(t *testing.T) {
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system",
		"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true"))
	for _, key := range []string{"ServiceMonitor backupguard-system/backupguard", "PrometheusRule backupguard-system/backupguard", "ConfigMap backupguard-system/backupguard-dashboard"} {
		if _, ok := rendered[key]; !ok {
			t.Errorf("%s not rendered; rendered: %v", key, keys(rendered))
		}
	}
	dashboard, _, _ := unstructured.NestedString(rendered["ConfigMap backupguard-system/backupguard-dashboard"].Object, "data", "backupguard.json")
	var parsed struct {
		Title  string `json:"title"`
		Panels []struct {
			Title string `json:"title"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(dashboard), &parsed); err != nil || parsed.Title != "backupguard" || len(parsed.Panels) == 0 {
		t.Errorf("the dashboard: title %q, %d panels, %v", parsed.Title, len(parsed.Panels), err)
	}
	if got := readFile(t, filepath.Join(chartDir, "files", "dashboard.json")); got != dashboard+"\n" && got != dashboard {
		t.Error("the dashboard ConfigMap does not hold files/dashboard.json as it is")
	}
	// Off by default: each needs a CRD the cluster may not have.
	defaults := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system"))
	for _, key := range []string{"ServiceMonitor backupguard-system/backupguard", "PrometheusRule backupguard-system/backupguard", "ConfigMap backupguard-system/backupguard-dashboard"} {
		if _, ok := defaults[key]; ok {
			t.Errorf("%s rendered by default", key)
		}
	}
}

// TestConfigValues: the whole config is values, rendered into config.yaml with apiVersion and kind, and
// longhorn.namespace also moves the Role that grants access to Longhorn's objects.
func TestConfigValues(t *testing.T) {
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system",
		"--set-json", `config={"longhorn":{"namespace":"storage"},"window":{"opens":"55 0 * * *","duration":"3h5m"},"recurringJobs":{"enforcement":"Warn"}}`))
	config, _, _ := unstructured.NestedString(rendered["ConfigMap backupguard-system/backupguard-config"].Object, "data", "config.yaml")
	want := `apiVersion: backupguard.io/v1alpha1
kind: Config
longhorn:
  namespace: storage
recurringJobs:
  enforcement: Warn
window:
  duration: 3h5m
  opens: 55 0 * * *
`
	if diff := cmp.Diff(want, config); diff != "" {
		t.Errorf("config.yaml (-want +got):\n%s", diff)
	}
	for _, key := range []string{"Role storage/backupguard", "RoleBinding storage/backupguard"} {
		if _, ok := rendered[key]; !ok {
			t.Errorf("%s not rendered; rendered: %v", key, keys(rendered))
		}
	}
	job := rendered["Job backupguard-system/backupguard-release-window"]
	containers, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	wantArgs := []string{"window", "release", "--reason=helm uninstall backupguard", "--namespace=backupguard-system", "--longhorn-namespace=storage"}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("the uninstall Job's args (-want +got):\n%s", diff)
	}
}

// TestWebhookServerValues: the webhook server's limits become serve flags, only where they differ from
// serve's defaults (so the defaults render as manifests/ has them).
func TestWebhookServerValues(t *testing.T) {
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system",
		"--set", "webhookServer.readTimeout=20s,webhookServer.maxHeaderBytes=32768"))
	containers, _, _ := unstructured.NestedSlice(rendered["Deployment backupguard-system/backupguard"].Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	want := []string{"serve", "--config=/etc/backupguard/config.yaml", "--cert-dir=/var/run/backupguard/tls", "--leader-elect",
		"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--webhook-read-timeout=20s", "--webhook-max-header-bytes=32768"}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("serve's args (-want +got):\n%s", diff)
	}
}

// TestCoverageValues: the coverage values become serve's flags; the defaults add none (so the chart
// renders what manifests/install holds).
func TestCoverageValues(t *testing.T) {
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system",
		"--set", "coverage.interval=15m,coverage.perVolumeMetrics=true"))
	containers, _, _ := unstructured.NestedSlice(rendered["Deployment backupguard-system/backupguard"].Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(containers))
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	want := []string{"serve", "--config=/etc/backupguard/config.yaml", "--cert-dir=/var/run/backupguard/tls", "--leader-elect",
		"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--coverage-interval=15m", "--coverage-per-volume-metrics"}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("serve's args (-want +got):\n%s", diff)
	}
}
