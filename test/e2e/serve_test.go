package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
// server never reads half a file; empty content removes the file.
func writeConfig(t *testing.T, content string) {
	t.Helper()
	if content == "" {
		if err := os.Remove(configPath); err != nil {
			t.Fatal(err)
		}
		return
	}
	next := configPath + ".next"
	if err := os.WriteFile(next, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, configPath); err != nil {
		t.Fatal(err)
	}
}

// TestConfigIsReloadedAndABadFileIsRefused changes the config file under the running server: a good
// file is applied; garbage, broken YAML, an unknown field and a bad value are each refused, counted and
// logged with the reason while the RecurringJob decisions through the API server keep following the
// last good config; a fixed file is applied again.
func TestConfigIsReloadedAndABadFileIsRefused(t *testing.T) {
	t.Cleanup(func() { writeConfig(t, baseConfig) })
	warnOnly := baseConfig + "recurringJobs:\n  enforcement: Warn\n"
	localTime := rj("config-local-time", "  task: backup\n  cron: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n  retain: 7\n")
	const violation = `spec.cron: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": time zones are not supported: Longhorn runs every schedule in UTC; ` +
		`drop the prefix and write the time in UTC: "0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)`
	underWarnOnly := cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/config-local-time created (server dry run)\n",
		Stderr: detachedWarning + "Warning: " + violation + " (not refused: recurringJobs.enforcement is Warn)\n",
	}
	underDeny := cluster.KubectlResult{Stderr: detachedWarning + `The RecurringJob "config-local-time" is invalid: ` + violation + "\n", ExitCode: 1}
	decide := func() cluster.KubectlResult {
		return testCluster.RunKubectl(localTime, "apply", "--dry-run=server", "-f", "-")
	}
	reload := func(content, result string) {
		t.Helper()
		before := reloadCount(t, result)
		writeConfig(t, content)
		eventually(t, "the config to be "+result, func() (bool, string) {
			got := reloadCount(t, result)
			return got != before, result + "=" + got
		})
		if got, want := reloadCount(t, result), increment(t, before); got != want {
			t.Errorf("backupguard_config_reloads_total{result=%q} = %s, want %s", result, got, want)
		}
	}

	reload(warnOnly, "applied")
	assertKubectl(t, decide(), underWarnOnly)

	refusalsBefore := len(logLines("config file refused; the last good config stays in force"))
	bad := []struct {
		name, content, wantError string
	}{
		{"the file removed", "", fmt.Sprintf("config %s: open %s: no such file or directory", configPath, configPath)},
		{"garbage", "\x00\x01\xfe garbage", fmt.Sprintf("config %s: not valid YAML: yaml: control characters are not allowed", configPath)},
		{"YAML that does not parse", "apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn: [namespace\n",
			fmt.Sprintf("config %s: not valid YAML: yaml: line 3: did not find expected ',' or ']'", configPath)},
		{"an unknown field", baseConfig + "  setings:\n    recurringJobMaxRetention: 50\n", fmt.Sprintf(`config %s: unknown field "longhorn.setings"`, configPath)},
		{"a value that is not supported", warnOnly + "  retainAboveFullBackupInterval: Sometimes\n",
			fmt.Sprintf(`config %s: recurringJobs.retainAboveFullBackupInterval: Unsupported value: "Sometimes": supported values: "Deny", "Warn"`, configPath)},
	}
	for _, bad := range bad {
		t.Run(bad.name, func(t *testing.T) {
			before := len(logLines("config file refused; the last good config stays in force"))
			reload(bad.content, "refused")
			lines := logLines("config file refused; the last good config stays in force")
			if len(lines) != before+1 {
				t.Fatalf("%d refusals in the log, want %d:\n%s", len(lines), before+1, cluster.LastLines(guard.Log(), 10))
			}
			if diff := cmp.Diff(bad.wantError, lines[before]["error"]); diff != "" {
				t.Errorf("logged error (-want +got):\n%s", diff)
			}
			assertKubectl(t, decide(), underWarnOnly)
		})
	}

	reload(baseConfig, "applied")
	assertKubectl(t, decide(), underDeny)
	// Each bad file was reported once, not again at every poll while it stayed.
	if refusals := len(logLines("config file refused; the last good config stays in force")) - refusalsBefore; refusals != len(bad) {
		t.Errorf("%d refusals logged for %d bad files", refusals, len(bad))
	}
}

// TestARefusedConfigIsAnEventOnServesPod runs serve with POD_NAME and POD_NAMESPACE set, as the
// Deployment sets them from the downward API: a refused config file is also a Warning Event on its Pod.
func TestARefusedConfigIsAnEventOnServesPod(t *testing.T) {
	ownConfig := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(ownConfig, []byte(baseConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := fmt.Sprintf("backupguard-events-%d", time.Now().UnixNano())
	startOwnServeWith(t, ownServeOptions{certDir: testCluster.Env.WebhookInstallOptions.LocalServingCertDir, config: ownConfig,
		env: []string{"POD_NAME=" + pod, "POD_NAMESPACE=backupguard-system"}})
	if err := os.WriteFile(ownConfig+".next", []byte(baseConfig+"  setings: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ownConfig+".next", ownConfig); err != nil {
		t.Fatal(err)
	}
	type event struct{ Type, Reason, Action, Note, Regarding string }
	want := []event{{Type: "Warning", Reason: "ConfigRefused", Action: "ReloadConfig", Regarding: "Pod backupguard-system/" + pod,
		Note: fmt.Sprintf(`config %s: unknown field "longhorn.setings"; the last good config stays in force`, ownConfig)}}
	var got []event
	eventually(t, "the Event on serve's Pod", func() (bool, string) {
		events := &eventsv1.EventList{}
		if err := kube.List(context.Background(), events, client.InNamespace("backupguard-system")); err != nil {
			return false, err.Error()
		}
		got = nil
		for _, e := range events.Items {
			if e.Regarding.Name == pod {
				got = append(got, event{Type: e.Type, Reason: e.Reason, Action: e.Action, Note: e.Note, Regarding: e.Regarding.Kind + " " + e.Regarding.Namespace + "/" + e.Regarding.Name})
			}
		}
		return len(got) > 0, fmt.Sprint(got)
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Events on serve's Pod (-want +got):\n%s", diff)
	}
}

// increment adds one to a counter's value as /metrics prints it.
func increment(t *testing.T, value string) string {
	t.Helper()
	n, err := strconv.ParseFloat(value, 64)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatFloat(n+1, 'g', -1, 64)
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
