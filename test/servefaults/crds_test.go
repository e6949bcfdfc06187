package servefaults

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/test/cluster"
)

// watchedCRDs are the CRDs of every Longhorn kind serve watches, as its readiness names them.
const watchedCRDs = "backupbackingimages.longhorn.io, backups.longhorn.io, backuptargets.longhorn.io, backupvolumes.longhorn.io, " +
	"recurringjobs.longhorn.io, settings.longhorn.io, systembackups.longhorn.io, volumes.longhorn.io"

// TestServeWaitsForLonghornsCRDs starts serve in a cluster without Longhorn's CRDs, as when
// backupguard is installed before Longhorn: serve stays up, alive but not ready, saying which CRDs are
// missing; once they are installed it becomes ready without a restart and decides RecurringJobs
// through the API server.
func TestServeWaitsForLonghornsCRDs(t *testing.T) {
	c, _ := startCluster(t, cluster.Options{NoLonghornCRDs: true})
	serve := launchServe(t, c)
	base := "http://" + serve.ProbeAddress

	eventually(t, "serve to be alive and to have checked for the CRDs", 30*time.Second, func() (bool, string) {
		live, _ := probe(base + "/healthz")
		_, body := probe(base + "/readyz/longhorn-crds")
		return live == http.StatusOK && body != "internal server error: not checked yet\n", body
	})
	wantReason := "Longhorn's CRDs are not installed: " + watchedCRDs + "; serve waits for them and starts without a restart"
	code, body := probe(base + "/readyz/longhorn-crds")
	if diff := cmp.Diff("500 internal server error: "+wantReason+"\n", itoa(code)+" "+body); diff != "" {
		t.Errorf("/readyz/longhorn-crds (-want +got):\n%s", diff)
	}
	code, body = probe(base + "/readyz?verbose")
	// The webhook server and the caches start once the CRDs are there.
	wantVerbose := "[-]caches failed: reason withheld\n[+]certificate ok\n[-]longhorn-crds failed: reason withheld\n[+]shutting-down ok\n[-]webhook failed: reason withheld\nhealthz check failed\n"
	if diff := cmp.Diff(itoa(http.StatusInternalServerError)+" "+wantVerbose, itoa(code)+" "+body); diff != "" {
		t.Errorf("/readyz?verbose (-want +got):\n%s", diff)
	}
	waiting := logLines(serve, "waiting for Longhorn's CRDs; not ready until they are installed")
	if len(waiting) == 0 || waiting[0]["error"] != wantReason {
		t.Errorf("log lines saying what is missing: %v", waiting)
	}

	installed := time.Now()
	if err := c.InstallLonghornCRDs(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "serve to become ready once the CRDs are installed", 30*time.Second, func() (bool, string) {
		code, body := probe(base + "/readyz?verbose")
		return code == http.StatusOK, body
	})
	t.Logf("ready %s after the CRDs were installed", time.Since(installed).Round(time.Millisecond))
	if serve.Exited() {
		t.Fatal("serve exited")
	}
	// Said at once, then at most once a minute while nothing changes.
	if lines := logLines(serve, "waiting for Longhorn's CRDs; not ready until they are installed"); len(lines) > 1+int(time.Since(installed)/time.Minute)+1 {
		t.Errorf("%d log lines about the missing CRDs, more than once a minute", len(lines))
	}
	if lines := logLines(serve, "Longhorn's CRDs are installed; starting"); len(lines) != 1 {
		t.Errorf("log lines saying the CRDs are there: %v", lines)
	}

	assertKubectl(t, c.RunKubectl(recurringJob("berlin-night", "CRON_TZ=Europe/Berlin 0 3 * * *"), "apply", "-f", "-"), cluster.KubectlResult{
		Stderr: detachedWarning + `The RecurringJob "berlin-night" is invalid: spec.cron: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": ` +
			`time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: ` +
			`"0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)` + "\n",
		ExitCode: 1,
	})
	assertKubectl(t, c.RunKubectl(recurringJob("hourly", "0 * * * *"), "apply", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/hourly created\n",
		Stderr: detachedWarning,
	})
}

func itoa(n int) string { return fmt.Sprint(n) }

func assertKubectl(t *testing.T, got, want cluster.KubectlResult) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kubectl (-want +got):\n%s", diff)
	}
}
