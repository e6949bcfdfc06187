// Package e2e runs backupguard against a real kube-apiserver and etcd, through the webhook
// configurations that ship in manifests/, with `backupguard serve` as its own process over real TLS.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

const longhornNamespace = "longhorn-system"

var (
	testCluster *cluster.Cluster
	guard       *cluster.Backupguard
	binary      string
	configPath  string
	kube        client.Client
)

const baseConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: daily-for-labelled-namespaces
      match:
        namespaceSelector:
          matchLabels: {backup: daily}
      jobs: [e2e-daily]
      groups: [e2e-critical]
    - name: databases
      match:
        selector:
          matchLabels: {app: postgres}
      groups: [databases]
    - name: weekly-for-hourly-snapshots
      match:
        storageClassNames: [e2e-snap-hourly]
      jobs: [weekly]
longhorn:
  namespace: longhorn-system
`

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	var err error
	testCluster, err = cluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the control plane:", err)
		return 1
	}
	defer testCluster.Stop()
	if binary, err = cluster.BuildBackupguard(testCluster.Dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	if kube, err = client.New(testCluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	for _, namespace := range []string{longhornNamespace, "backupguard-system"} {
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	// serve runs as the shipped ServiceAccount, with the shipped RBAC, so a missing verb fails here.
	if result := testCluster.RunKubectl("", "apply", "-f", filepath.Join(cluster.RepoRoot(), "manifests", "base", "rbac.yaml")); result.ExitCode != 0 {
		fmt.Fprintln(os.Stderr, "e2e: applying the shipped RBAC:", result.Stderr)
		return 1
	}
	if testCluster.ServeKubeconfig, err = testCluster.ImpersonatingKubeconfig(cluster.ServiceAccountUser, cluster.ServiceAccountGroups); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	testCluster.ServeArgs = []string{"--leader-elect", "--leader-election-namespace", "backupguard-system", "--coverage-interval", "1s"}
	configPath = filepath.Join(testCluster.Dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(baseConfig), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if guard, err = testCluster.StartBackupguard(ctx, binary, configPath); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := createFixtures(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	// Only a run of the whole suite exercises every verb.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		if err := checkServiceAccountVerbs(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- backupguard log (%s) ---\n%s\n", guard.LogPath, cluster.LastLines(guard.Log(), 60))
	}
	guard.Stop()
	return code
}

// createFixtures makes what every label test relies on: a Longhorn and a non-Longhorn StorageClass, and
// the RecurringJob the config's first rule names (its group too); group "databases" stays unprovided.
func createFixtures(ctx context.Context) error {
	for _, object := range []client.Object{
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: "driver.longhorn.io"},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path"}, Provisioner: "rancher.io/local-path"},
		&longhorn.RecurringJob{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-daily", Namespace: longhornNamespace},
			Spec:       longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7, Groups: []string{"e2e-critical"}},
		},
	} {
		if err := kube.Create(ctx, object); err != nil {
			return err
		}
	}
	return nil
}

// restartBackupguard replaces the running serve process, for tests that stop it.
func restartBackupguard(t *testing.T) {
	t.Helper()
	var err error
	if guard, err = testCluster.StartBackupguard(context.Background(), binary, configPath); err != nil {
		t.Fatalf("restarting backupguard: %v", err)
	}
}

// eventually polls condition until it holds or the deadline passes; it waits for the system, it does
// not time it.
func eventually(t testing.TB, what string, condition func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := condition()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 30s; last state: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recurringJobYAML renders a RecurringJob manifest; spec is YAML indented by two spaces.
func recurringJobYAML(namespace, name, spec string) string {
	return fmt.Sprintf("apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, namespace, spec)
}

func mustQuantity(text string) resource.Quantity { return resource.MustParse(text) }
