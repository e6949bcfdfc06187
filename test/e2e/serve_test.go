package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/test/cluster"
)

// reloadCount reads backupguard_config_reloads_total{result=...} from the metrics endpoint.
func reloadCount(t *testing.T, result string) string {
	t.Helper()
	return metricValue(t, fmt.Sprintf(`backupguard_config_reloads_total{result=%q}`, result))
}

// logLines returns backupguard's JSON log lines whose message is msg.
func logLines(msg string) []map[string]any { return parseLogLines(guard.Log(), msg) }

// readLogLines returns the JSON log lines of a log file whose message is msg.
func readLogLines(path, msg string) []map[string]any { return parseLogLines(readFile(path), msg) }

func parseLogLines(log, msg string) []map[string]any {
	var lines []map[string]any
	for line := range strings.SplitSeq(log, "\n") {
		entry := map[string]any{}
		if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == msg {
			lines = append(lines, entry)
		}
	}
	return lines
}

// writeConfig replaces the config file atomically, as the kubelet does for a mounted ConfigMap, so the
// server never reads half a file.
func writeConfig(t *testing.T, content string) {
	t.Helper()
	next := configPath + ".next"
	if err := os.WriteFile(next, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, configPath); err != nil {
		t.Fatal(err)
	}
}

// TestConfigIsReloadedAndABadFileIsRefused changes the config file under the running server: a good
// file is applied, a broken one is refused with a log line naming the field while admission goes on
// with the last good config.
func TestConfigIsReloadedAndABadFileIsRefused(t *testing.T) {
	t.Cleanup(func() { writeConfig(t, baseConfig) })
	applied, refused := reloadCount(t, "applied"), reloadCount(t, "refused")

	writeConfig(t, baseConfig+"  settings:\n    recurringJobMaxRetention: 50\n")
	eventually(t, "the new config to be applied", func() (bool, string) {
		got := reloadCount(t, "applied")
		return got != applied, "applied=" + got
	})

	writeConfig(t, baseConfig+"  setings:\n    recurringJobMaxRetention: 50\n")
	eventually(t, "the broken config to be refused", func() (bool, string) {
		got := reloadCount(t, "refused")
		return got != refused, "refused=" + got
	})
	lines := logLines("config file refused; the last good config stays in force")
	if len(lines) == 0 {
		t.Fatalf("no refusal in the log:\n%s", lastLines(guard.Log(), 10))
	}
	wantError := fmt.Sprintf(`config %s: unknown field "longhorn.setings"`, configPath)
	if diff := cmp.Diff(wantError, lines[len(lines)-1]["error"]); diff != "" {
		t.Errorf("logged error (-want +got):\n%s", diff)
	}

	// Admission still works with the last good config.
	err, _ := createInCluster(t, rj("after-refusal", backupDefaults+"  retain: 7\n"))
	if err != nil {
		t.Errorf("a valid RecurringJob was denied after a refused config: %v", err)
	}
}

// TestFailsClosedWhileTheWebhookIsDown stops serve: with failurePolicy Fail the API server refuses
// RecurringJobs rather than let an unchecked one in, and accepts them again once serve is back.
func TestFailsClosedWhileTheWebhookIsDown(t *testing.T) {
	manifest := rj("while-down", backupDefaults+"  retain: 7\n")
	guard.Stop()
	options := testCluster.Env.WebhookInstallOptions
	address := fmt.Sprintf("%s:%d", options.LocalServingHost, options.LocalServingPort)
	got := testCluster.RunKubectl(manifest, "apply", "-f", "-")
	restartBackupguard(t)
	assertKubectl(t, got, cluster.KubectlResult{
		Stderr: fmt.Sprintf(`Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling webhook "recurringjobs.backupguard.io": `+
			`failed to call webhook: Post "https://%s/validate-longhorn-io-v1beta2-recurringjob?timeout=5s": dial tcp %s: connect: connection refused`+"\n", address, address),
		ExitCode: 1,
	})
	assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/while-down created\n",
		Stderr: detachedWarning,
	})
}
