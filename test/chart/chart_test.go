// Package chart tests charts/backupguard with the real Helm CLI (built by test/tools/ensure-helm.sh):
// helm lint, helm template compared object by object with `kubectl kustomize manifests/install`, the
// alert rules with promtool, and helm install, upgrade and uninstall against the real kube-apiserver.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/backupguard/backupguard/test/cluster"
)

var (
	root      = cluster.RepoRoot()
	chartDir  = filepath.Join(root, "charts", "backupguard")
	toolsMu   sync.Mutex
	toolPaths = map[string]string{}
)

// tool returns the path of a binary that test/tools/ensure-<script>.sh builds (once; later calls find it
// cached), or $BACKUPGUARD_<SCRIPT>_DIR's when set.
func tool(t *testing.T, script, binary string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	key := script + "/" + binary
	if path, ok := toolPaths[key]; ok {
		return path
	}
	dir := os.Getenv("BACKUPGUARD_" + strings.ToUpper(script) + "_DIR")
	if dir == "" {
		command := exec.Command("bash", filepath.Join(root, "test", "tools", "ensure-"+script+".sh"))
		command.Stderr = os.Stderr
		out, err := command.Output()
		if err != nil {
			t.Fatalf("building %s with test/tools/ensure-%s.sh: %v", binary, script, err)
		}
		dir = strings.TrimSpace(string(out))
	}
	toolPaths[key] = filepath.Join(dir, binary)
	return toolPaths[key]
}

func helm(t *testing.T) string { return tool(t, "helm", "helm") }

func kubectl(t *testing.T) string {
	t.Helper()
	dir, err := cluster.ToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl")
}

// run runs a command from the repository's top folder and returns its stdout; a failure fails the test
// with stderr.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	command := exec.Command(name, args...)
	command.Dir = root
	command.Stdout, command.Stderr = &stdout, &stderr
	// Helm keeps its caches and registry logins under these; none of the user's are read.
	home, _ := os.MkdirTemp("", "helm-home-")
	defer os.RemoveAll(home)
	command.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := command.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.String(), nil
}

// objects decodes a multi-document YAML stream, keyed by "kind namespace/name" (namespace empty for
// cluster-scoped objects).
func objects(t *testing.T, stream string) map[string]*unstructured.Unstructured {
	t.Helper()
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	found := map[string]*unstructured.Unstructured{}
	for {
		object := map[string]any{}
		if err := decoder.Decode(&object); err != nil {
			if errors.Is(err, io.EOF) {
				return found
			}
			t.Fatal(err)
		}
		if len(object) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: object}
		key := objectKey(u)
		if _, twice := found[key]; twice {
			t.Fatalf("%s rendered twice", key)
		}
		found[key] = u
	}
}

func objectKey(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
}

func keys(m map[string]*unstructured.Unstructured) []string {
	list := make([]string, 0, len(m))
	for key := range m {
		list = append(list, key)
	}
	sort.Strings(list)
	return list
}

// helmLabels are the labels the chart adds to every object and manifests/ does not: Helm's and the
// recommended instance/version/managed-by labels. Selectors use app.kubernetes.io/name alone in both.
var helmLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}

func withoutHelmLabels(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	labels := u.GetLabels()
	for _, label := range helmLabels {
		delete(labels, label)
	}
	u.SetLabels(labels)
	return u
}

func TestLint(t *testing.T) {
	for name, args := range map[string][]string{
		"the defaults (cert-manager)":         nil,
		"a chart-managed certificate":         {"--set", "certificate.provider=helm"},
		"every optional object":               {"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true"},
		"a window and an image by its digest": {"--set-json", `config={"window":{"opens":"55 0 * * *","duration":"3h5m"}}`, "--set", "image.digest=sha256:" + strings.Repeat("0", 64)},
	} {
		t.Run(name, func(t *testing.T) {
			run(t, helm(t), append([]string{"lint", "--strict", chartDir}, args...)...)
		})
	}
}

func TestSchemaRefusesMistakes(t *testing.T) {
	for name, args := range map[string][]string{
		"an unknown top-level value":               {"--set", "replica=3"},
		"an unknown config section":                {"--set", "config.windows.opens=x"},
		"a certificate provider we lack":           {"--set", "certificate.provider=vault"},
		"a log level serve lacks":                  {"--set", "logLevel=warn"},
		"a webhook timeout that is not a duration": {"--set", "webhookServer.readTimeout=soon"},
		"a coverage interval that is no duration":  {"--set", "coverage.interval=hourly"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := runErr(helm(t), append([]string{"template", "backupguard", chartDir}, args...)...); err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Errorf("helm template %v: want a schema error, got %v", args, err)
			}
		})
	}
}

// TestTemplateMatchesKustomize renders the chart with its defaults and manifests/install, and compares
// every object whole, after removing Helm's labels. The only objects allowed on one side alone:
//   - Namespace backupguard-system: Helm installs into the release namespace and does not own it
//     (`helm install --create-namespace`, or the namespace made beforehand with the Pod Security label);
//   - Job backupguard-release-window: the chart's pre-delete hook (manifests/ documents the same step).
func TestTemplateMatchesKustomize(t *testing.T) {
	chart := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system"))
	kustomize := objects(t, run(t, kubectl(t), "kustomize", filepath.Join(root, "manifests", "install")))
	onlyInKustomize := map[string]bool{"Namespace /backupguard-system": true}
	onlyInChart := map[string]bool{"Job backupguard-system/backupguard-release-window": true}

	for _, key := range keys(kustomize) {
		if onlyInKustomize[key] {
			if _, ok := chart[key]; ok {
				t.Errorf("%s: the chart renders it, but it is listed as kustomize's alone", key)
			}
			continue
		}
		rendered, ok := chart[key]
		if !ok {
			t.Errorf("%s: in manifests/install, not rendered by the chart", key)
			continue
		}
		for _, label := range helmLabels {
			if _, ok := rendered.GetLabels()[label]; !ok {
				t.Errorf("%s: the chart does not set the label %s", key, label)
			}
		}
		if diff := cmp.Diff(kustomize[key].Object, withoutHelmLabels(rendered).Object); diff != "" {
			t.Errorf("%s differs (-kustomize +chart):\n%s", key, diff)
		}
	}
	for _, key := range keys(chart) {
		if _, ok := kustomize[key]; !ok && !onlyInChart[key] {
			t.Errorf("%s: rendered by the chart, not in manifests/install", key)
		}
	}
	for key := range onlyInChart {
		if _, ok := chart[key]; !ok {
			t.Errorf("%s: listed as the chart's alone, but not rendered", key)
		}
	}
}

// TestAlertsComponentMatchesChart: manifests/components/alerts ships the chart's rule file, and so does
// the chart's PrometheusRule.
func TestAlertsComponentMatchesChart(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	component := objects(t, readFile(t, filepath.Join(root, "manifests", "components", "alerts", "prometheusrule.yaml")))
	rendered := objects(t, run(t, helm(t), "template", "backupguard", chartDir, "--namespace", "backupguard-system", "--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"))
	for source, rules := range map[string]map[string]*unstructured.Unstructured{"manifests/components/alerts": component, "the chart": rendered} {
		rule, ok := rules["PrometheusRule backupguard-system/backupguard"]
		if !ok {
			t.Errorf("%s: no PrometheusRule backupguard-system/backupguard in %v", source, keys(rules))
			continue
		}
		if diff := cmp.Diff(want, rule.Object["spec"]); diff != "" {
			t.Errorf("%s: spec differs from charts/backupguard/files/alerts.yaml (-file +%s):\n%s", source, source, diff)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestAlertRules runs Prometheus' own checks and unit tests of the rules (test/alerts/alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "promtool")
	run(t, promtool, "check", "rules", filepath.Join(chartDir, "files", "alerts.yaml"))
	run(t, promtool, "test", "rules", filepath.Join(root, "test", "alerts", "alerts_test.yaml"))
}
