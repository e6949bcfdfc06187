// Package faults kills, restarts and rotates the parts of a running backupguard while it works: two
// `backupguard serve` replicas on one Lease, against a real kube-apiserver and etcd, over real TLS, with
// the webhook configurations that ship. Each test states the bound it holds the system to; the figures
// it measures are logged (go test -v), never asserted beyond those bounds.
package faults

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

var (
	testCluster *cluster.Cluster
	binary      string
	kube        client.Client
)

// Short Lease timings, so that a takeover after SIGKILL takes seconds, not the default 15s; the
// bounds below are stated in these.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	leaseName     = "backupguard.io"
)

// leaderArgs are the flags every replica of these tests runs with.
func leaderArgs(own string) []string {
	return []string{"--leader-elect", "--leader-election-namespace", own, "--namespace", own,
		"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(), "--coverage-interval", "0"}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The API server's warnings (e.g. for a rule whose job does not exist) are not what is tested.
	ctrl.SetLogger(logr.Discard())
	var err error
	if testCluster, err = cluster.StartWith(cluster.Options{NoAudit: true}); err != nil {
		fmt.Fprintln(os.Stderr, "faults: starting the control plane:", err)
		return 1
	}
	defer testCluster.Stop()
	if binary, err = cluster.BuildBackupguard(testCluster.Dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	if kube, err = client.New(testCluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver}
	if err := kube.Create(context.Background(), class); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	return m.Run()
}

var notInDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

// newNamespace makes a namespace of the test's own, so that no test meets another's objects or Lease.
func newNamespace(t *testing.T, suffix string, labels map[string]string) string {
	t.Helper()
	name := notInDNSLabel.ReplaceAllString(strings.ToLower(t.Name()), "-") + "-" + suffix
	if len(name) > 63 {
		name = strings.TrimLeft(name[len(name)-63:], "-")
	}
	if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// writeConfig writes a config file of the test's own.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// within polls condition until it holds, or fails the test once bound has passed: bound is the stated
// limit, not a measurement. It returns how long it took.
func within(t testing.TB, bound time.Duration, what string, condition func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, last := condition()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("%s did not happen within %s; last state: %s", what, bound, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaseHolder reads who holds the Lease of namespace; empty when nobody does.
func leaseHolder(namespace string) string {
	lease := &coordinationv1.Lease{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: leaseName}, lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// startReplica runs one serve replica for the test and stops it when the test ends.
func startReplica(t *testing.T, configPath string, replica cluster.Replica, args ...string) *cluster.Backupguard {
	t.Helper()
	guard, err := testCluster.StartReplica(context.Background(), binary, configPath, replica, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		guard.Stop()
		if t.Failed() {
			t.Logf("--- log of the replica (%s) ---\n%s", guard.LogPath, cluster.LastLines(guard.Log(), 40))
		}
	})
	return guard
}
