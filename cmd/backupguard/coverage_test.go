package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The coverage tree (testdata/coverage/manifests) holds a case of every verdict, the default group, a
// group-selected volume, a detached volume, a Released volume beside the new PVC of the same name, and
// jobs inside and outside the S3 window (chart/ holds a Helm template for --exclude). The e2e suite loads the same tree into a real API server and
// requires want.txt from the cluster too.
func TestCoverageOffline(t *testing.T) {
	dir := filepath.Join("testdata", "coverage")
	golden := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	base := []string{"coverage", "--config", "config.yaml", "--now", "2026-11-21T12:00:00Z"}
	for _, tc := range []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{name: "a table a person scans, with the next run in a second zone", args: append(base, "--tz", "Europe/Berlin", "manifests"), wantStdout: golden("want.txt")},
		{name: "markdown for a pull request comment", args: append(base, "-o", "markdown", "manifests"), wantStdout: golden("want.md")},
		{name: "json", args: append(base, "-o", "json", "manifests"), wantStdout: golden("want.json")},
		{name: "fail-on a verdict some row has exits 1 after the report",
			args: append(base, "--tz", "Europe/Berlin", "--fail-on", "unprotected,stale", "manifests"), wantStdout: golden("want.txt"), wantCode: 1},
		{name: "fail-on verdicts no row has exits 0",
			args: append(base, "--tz", "Europe/Berlin", "--fail-on", "failing", "--max-age", "1000h", "manifests/jobs.yaml"), wantStdout: golden("want-jobs-only.txt")},
		{name: "a PVC gets the labels of backupguard's rules, and its missing Volume mirrors them",
			args: []string{"coverage", "--config", "config-rules.yaml", "--now", "2026-11-21T12:00:00Z", "manifests", "new-db.yaml"}, wantStdout: golden("want-rules.txt")},
		{name: "--exclude leaves out a chart's templates, as validate's does",
			args: append(base, "--tz", "Europe/Berlin", "--exclude", "templates", "manifests", "chart"), wantStdout: golden("want.txt")},
		{name: "without --exclude a template stops the run, naming the file",
			args: append(base, "manifests", "chart"), wantCode: 2,
			wantStderr: "backupguard coverage: chart/templates/job.yaml#1: not valid YAML: yaml: did not find expected node content" +
				" (a template? leave it out with --exclude, or skip such files with --skip-unparseable)\n"},
		{name: "--skip-unparseable skips it with a warning",
			args: append(base, "--tz", "Europe/Berlin", "--skip-unparseable", "manifests", "chart"), wantStdout: golden("want.txt"),
			wantStderr: "backupguard coverage: warning: skipped chart/templates/job.yaml#1: not valid YAML: yaml: did not find expected node content (--skip-unparseable)\n"},
		{name: "a bad --exclude pattern is a usage error", args: append(base, "--exclude", "[", "manifests"),
			wantStderr: "backupguard coverage: --exclude \"[\": syntax error in pattern\n\n" + usageOf(t, "coverage"), wantCode: 2},
		{name: "--exclude without PATH is a usage error", args: append(base, "--exclude", "templates"),
			wantStderr: "backupguard coverage: --exclude and --skip-unparseable read files; without PATH the report reads the cluster\n\n" + usageOf(t, "coverage"), wantCode: 2},
		{name: "an unknown verdict is a usage error", args: append(base, "--fail-on", "unsafe", "manifests"),
			wantStderr: "backupguard coverage: --fail-on \"unsafe\": not a verdict; use failing, stale, skipped, dangling, unprotected, protected\n\n" + usageOf(t, "coverage"), wantCode: 2},
		{name: "cluster flags with files are a usage error", args: append(base, "--context", "prod", "manifests"),
			wantStderr: "backupguard coverage: --kubeconfig and --context read a cluster; with PATH the report reads files\n\n" + usageOf(t, "coverage"), wantCode: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, dir, tc.args, "")
			if diff := cmp.Diff(tc.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d", code, tc.wantCode)
			}
		})
	}
}
