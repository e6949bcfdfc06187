// Package servefaults puts `backupguard serve` through faults of the cluster around it that need a
// control plane of their own: Longhorn's CRDs missing, then installed, and the kube-apiserver
// restarted while serve serves. Each test starts its own kube-apiserver and etcd (test/cluster) and
// serve as a separate process over real TLS, with the shipped webhook configurations.
package servefaults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

const longhornNamespace = "longhorn-system"

const config = `apiVersion: backupguard.io/v1alpha1
kind: Config
longhorn:
  namespace: longhorn-system
`

var binary string

// detachedWarning is the warning every RecurringJob gets in a cluster without Longhorn's Settings.
const detachedWarning = "Warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false\n"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "backupguard-servefaults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if binary, err = cluster.BuildBackupguard(dir); err != nil {
			fmt.Fprintln(os.Stderr, "servefaults:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// startCluster starts a control plane of the test's own, with the namespaces serve works in and an
// admin client; the test's end stops it.
func startCluster(t *testing.T, options cluster.Options) (*cluster.Cluster, client.Client) {
	t.Helper()
	c, err := cluster.StartWith(options)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	kube, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, namespace := range []string{longhornNamespace, "backupguard-system"} {
		if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			t.Fatal(err)
		}
	}
	return c, kube
}

// launchServe runs serve against c with the test config and extra flags, without waiting for it to be
// ready; the test's end stops it (before the cluster) and shows its log when the test failed.
func launchServe(t *testing.T, c *cluster.Cluster, args ...string) *cluster.Backupguard {
	t.Helper()
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	serve, err := c.LaunchBackupguard(binary, configPath, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Stop()
		if t.Failed() {
			t.Logf("--- serve's log ---\n%s", cluster.LastLines(serve.Log(), 40))
		}
	})
	return serve
}

// probe answers GET url with its status code and body.
var probe = cluster.Probe

// eventually polls condition until it holds or the deadline passes; it waits for the system, it does
// not time it.
func eventually(t *testing.T, what string, within time.Duration, condition func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := condition()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s; last state: %s", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLines returns serve's JSON log lines whose message is msg.
func logLines(serve *cluster.Backupguard, msg string) []map[string]any {
	var lines []map[string]any
	for line := range strings.SplitSeq(serve.Log(), "\n") {
		entry := map[string]any{}
		if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == msg {
			lines = append(lines, entry)
		}
	}
	return lines
}

// recurringJob renders a RecurringJob manifest in the Longhorn namespace.
func recurringJob(name, cron string) string {
	return fmt.Sprintf("apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  task: snapshot\n  cron: %q\n  retain: 3\n", name, longhornNamespace, cron)
}
