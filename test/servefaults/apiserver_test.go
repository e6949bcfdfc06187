package servefaults

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

// renewDeadline is controller-runtime's default leader-election renew deadline (manager.Options
// RenewDeadline, 10 s): a leader that cannot renew its Lease for that long gives up leadership, and
// the manager exits.
const renewDeadline = 10 * time.Second

// TestServeRecoversFromAnAPIServerRestart restarts the kube-apiserver (same etcd, address and
// certificates) while serve serves with leader election on, for less than the renew deadline: serve
// stays up and the leader, its watches resume, and a Setting written after the restart decides the
// next RecurringJob through the API server.
func TestServeRecoversFromAnAPIServerRestart(t *testing.T) {
	c, kube := startCluster(t, cluster.Options{})
	serve := launchServe(t, c, "--leader-elect", "--leader-election-namespace", "backupguard-system")
	eventually(t, "serve to be ready and the leader", time.Minute, func() (bool, string) {
		code, body := probe("http://" + serve.ProbeAddress + "/readyz")
		return code == http.StatusOK && len(logLines(serve, "Successfully acquired lease")) == 1, body
	})
	retain7 := recurringJobWithRetain("retain-seven", 7)
	assertKubectl(t, c.RunKubectl(retain7, "apply", "--dry-run=server", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/retain-seven created (server dry run)\n",
		Stderr: detachedWarning,
	})

	outage, err := c.RestartAPIServer(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("the API server was down for %s", outage.Round(time.Millisecond))
	if outage >= renewDeadline {
		t.Fatalf("the restart took %s, not shorter than the %s renew deadline this test is about", outage.Round(time.Millisecond), renewDeadline)
	}

	// A fact that exists only after the restart: serve must have resumed watching to decide on it.
	maxRetention := &longhorn.Setting{ObjectMeta: metav1.ObjectMeta{Name: longhorn.SettingRecurringJobMaxRetention, Namespace: longhornNamespace}, Value: "5"}
	eventually(t, "the API server to take the Setting", 30*time.Second, func() (bool, string) {
		err := kube.Create(context.Background(), maxRetention)
		return err == nil, errString(err)
	})
	written := time.Now()
	want := cluster.KubectlResult{
		Stderr:   detachedWarning + `The RecurringJob "retain-seven" is invalid: spec.retain: Invalid value: 7: must be at most 5 (the Longhorn setting recurring-job-max-retention)` + "\n",
		ExitCode: 1,
	}
	// The informers' watches come back on client-go's reflector backoff (tools/cache/reflector.go: from
	// 0.8 s, doubling, with jitter), so after a few seconds' outage within about 15 s.
	var last cluster.KubectlResult
	eventually(t, "a RecurringJob to be decided with the Setting written after the restart", 30*time.Second, func() (bool, string) {
		last = c.RunKubectl(retain7, "apply", "--dry-run=server", "-f", "-")
		return last == want, last.Stderr
	})
	t.Logf("the Setting was taken %s after the API server was back, and decided on %s after that",
		written.Sub(back).Round(time.Millisecond), time.Since(written).Round(time.Millisecond))

	code, body := probe("http://" + serve.ProbeAddress + "/readyz")
	if code != http.StatusOK {
		t.Errorf("serve is not ready after the restart: %s", body)
	}
	if serve.Exited() {
		t.Fatal("serve exited")
	}
	// Had it lost the Lease, controller-runtime's manager would have stopped with "leader election lost"
	// (manager/internal.go) and serve logged "backupguard stopped" and exited.
	if stopped := logLines(serve, "backupguard stopped"); len(stopped) > 0 {
		t.Errorf("serve stopped over a %s outage: %v", outage.Round(time.Millisecond), stopped)
	}
	if acquired := logLines(serve, "Successfully acquired lease"); len(acquired) != 1 {
		t.Errorf("serve acquired the Lease %d times, want once: it should have kept it", len(acquired))
	}
}

func recurringJobWithRetain(name string, retain int) string {
	return "apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata:\n  name: " + name + "\n  namespace: " + longhornNamespace +
		"\nspec:\n  task: backup\n  cron: \"0 3 * * *\"\n  retain: " + itoa(retain) + "\n"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
