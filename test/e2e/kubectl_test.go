package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/test/cluster"
)

const detachedWarning = "Warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false\n"

func example(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "manifests", "examples", "recurringjobs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func assertKubectl(t *testing.T, got, want cluster.KubectlResult) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kubectl (-want +got):\n%s", diff)
	}
}

func TestKubectlApplyAcceptsAValidRecurringJob(t *testing.T) {
	manifest := example(t, "01-daily-backup.yaml")
	assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/daily-backup created\n",
		Stderr: detachedWarning,
	})
	assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/daily-backup unchanged\n",
	})
	assertKubectl(t, testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "daily-backup", "-o", "jsonpath={.spec.cron} {.spec.retain}"),
		cluster.KubectlResult{Stdout: "0 2 * * * 14"})
}

func TestKubectlApplyDeniesEachTypicalMistake(t *testing.T) {
	cases := map[string]struct {
		file   string
		stderr string
	}{
		"a schedule in local time names the UTC forms": {
			file: "03-local-time.yaml",
			stderr: detachedWarning + `The RecurringJob "nightly-local-time" is invalid: spec.cron: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": ` +
				`time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: ` +
				`"0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)` + "\n",
		},
		"retain equal to the full-backup interval says why": {
			file: "04-retain-equals-full-interval.yaml",
			stderr: detachedWarning + `The RecurringJob "weekly-full" is invalid: spec.retain: Invalid value: 7: must be greater than parameters[full-backup-interval] (7), ` +
				`so that the 7 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8` + "\n",
		},
		"a RecurringJob outside the Longhorn namespace": {
			file: "05-wrong-namespace.yaml",
			stderr: detachedWarning + `The RecurringJob "app-backup" is invalid: metadata.namespace: Invalid value: "default": ` +
				`RecurringJobs must be in the Longhorn namespace "longhorn-system": Longhorn ignores them anywhere else` + "\n",
		},
		"several mistakes are listed one per line": {
			file: "06-several-mistakes.yaml",
			stderr: detachedWarning + `The RecurringJob "sunday-cleanup" is invalid: ` + "\n" +
				`* spec.cron: Invalid value: "0 4 * * 7": day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)` + "\n" +
				`* spec.groups[0]: Invalid value: "weekly-": must be usable in the label key recurring-job-group.longhorn.io/<group>, or the job can never select a volume: ` +
				`name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')` + "\n" +
				`* spec.concurrency: Invalid value: -1: must not be negative; 0 means Longhorn's default of 10` + "\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			manifest := example(t, tc.file)
			want := cluster.KubectlResult{Stderr: tc.stderr, ExitCode: 1}
			assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "-f", "-"), want)
			// A server-side dry run gets the very same answer.
			assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "--dry-run=server", "-f", "-"), want)
		})
	}
}

func TestKubectlServerDryRunCreatesNothing(t *testing.T) {
	manifest := recurringJobYAML(longhornNamespace, "dry-run-only", "  task: snapshot\n  cron: \"15 * * * *\"\n  retain: 3\n")
	assertKubectl(t, testCluster.RunKubectl(manifest, "apply", "--dry-run=server", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/dry-run-only created (server dry run)\n",
		Stderr: detachedWarning,
	})
	assertKubectl(t, testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "dry-run-only"), cluster.KubectlResult{
		Stderr:   "Error from server (NotFound): recurringjobs.longhorn.io \"dry-run-only\" not found\n",
		ExitCode: 1,
	})
}

func TestKubectlApplyDeniesABadUpdateAndKeepsTheObject(t *testing.T) {
	good := recurringJobYAML(longhornNamespace, "nightly-update", "  task: backup\n  cron: \"0 1 * * *\"\n  retain: 10\n  parameters:\n    full-backup-interval: \"5\"\n")
	assertKubectl(t, testCluster.RunKubectl(good, "apply", "-f", "-"), cluster.KubectlResult{
		Stdout: "recurringjob.longhorn.io/nightly-update created\n",
		Stderr: detachedWarning,
	})
	bad := recurringJobYAML(longhornNamespace, "nightly-update", "  task: backup\n  cron: \"0 1 * * *\"\n  retain: 5\n  parameters:\n    full-backup-interval: \"5\"\n")
	assertKubectl(t, testCluster.RunKubectl(bad, "apply", "-f", "-"), cluster.KubectlResult{
		Stderr: detachedWarning + `The RecurringJob "nightly-update" is invalid: spec.retain: Invalid value: 5: must be greater than parameters[full-backup-interval] (5), ` +
			`so that the 5 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 6` + "\n",
		ExitCode: 1,
	})
	assertKubectl(t, testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "nightly-update", "-o", "jsonpath={.spec.retain}"),
		cluster.KubectlResult{Stdout: "10"})
}
