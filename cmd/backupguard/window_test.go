package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const windowConfig = `apiVersion: backupguard.io/v1alpha1
kind: Config
window:
  opens: "55 0 * * *"
  duration: 3h5m
`

func TestRunWindow(t *testing.T) {
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(windowConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	noWindow := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(noWindow, []byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"status offline outside the window": {
			args:     []string{"window", "status", "--config", configPath, "--at", "2026-11-21T12:00:00Z"},
			wantCode: 0,
			wantStdout: "at:              2026-11-21 12:00 UTC\n" +
				"state:           closed\n" +
				"reason:          outside the window; it next opens at 2026-11-22 00:55 UTC\n" +
				"next transition: 2026-11-22 00:55 UTC\n" +
				"next windows:    2026-11-22 00:55 to 04:00 UTC, 2026-11-23 00:55 to 04:00 UTC, 2026-11-24 00:55 to 04:00 UTC\n",
		},
		"status offline inside the window": {
			args:     []string{"window", "status", "--config", configPath, "--at", "2026-11-22T02:30:00Z"},
			wantCode: 0,
			wantStdout: "at:              2026-11-22 02:30 UTC\n" +
				"state:           open\n" +
				"reason:          inside the window that opened at 2026-11-22 00:55 UTC\n" +
				"next transition: 2026-11-22 04:00 UTC\n" +
				"next windows:    2026-11-23 00:55 to 04:00 UTC, 2026-11-24 00:55 to 04:00 UTC, 2026-11-25 00:55 to 04:00 UTC\n",
		},
		"status offline -o json": {
			args:     []string{"window", "status", "--config", configPath, "--at", "2026-11-21T12:00:00Z", "-o", "json"},
			wantCode: 0,
			wantStdout: `{
  "at": "2026-11-21T12:00:00Z",
  "state": "closed",
  "reason": "outside the window; it next opens at 2026-11-22 00:55 UTC",
  "nextTransition": "2026-11-22T00:55:00Z",
  "nextWindows": [
    {
      "opens": "2026-11-22T00:55:00Z",
      "closes": "2026-11-22T04:00:00Z"
    },
    {
      "opens": "2026-11-23T00:55:00Z",
      "closes": "2026-11-23T04:00:00Z"
    },
    {
      "opens": "2026-11-24T00:55:00Z",
      "closes": "2026-11-24T04:00:00Z"
    }
  ]
}
`,
		},
		"status offline -o yaml": {
			args:     []string{"window", "status", "--config", configPath, "--at", "2026-11-22T02:30:00Z", "-o", "yaml"},
			wantCode: 0,
			wantStdout: `at: "2026-11-22T02:30:00Z"
nextTransition: "2026-11-22T04:00:00Z"
nextWindows:
- closes: "2026-11-23T04:00:00Z"
  opens: "2026-11-23T00:55:00Z"
- closes: "2026-11-24T04:00:00Z"
  opens: "2026-11-24T00:55:00Z"
- closes: "2026-11-25T04:00:00Z"
  opens: "2026-11-25T00:55:00Z"
reason: inside the window that opened at 2026-11-22 00:55 UTC
state: open
`,
		},
		"status of a config without a window": {
			args:       []string{"window", "status", "--config", noWindow},
			wantCode:   2,
			wantStderr: "backupguard window status: " + noWindow + " configures no window\n",
		},
		"a bad --at": {
			args:       []string{"window", "status", "--config", configPath, "--at", "tomorrow"},
			wantCode:   2,
			wantStderr: "backupguard window status: --at \"tomorrow\": not an RFC 3339 time such as 2026-11-21T12:00:00Z\n\n" + usageOf(t, "window-status"),
		},
		"--at without --config": {
			args:       []string{"window", "status", "--at", "2026-11-21T12:00:00Z"},
			wantCode:   2,
			wantStderr: "backupguard window status: --at needs --config: the cluster only knows the window now\n\n" + usageOf(t, "window-status"),
		},
		"open without --for": {
			args:       []string{"window", "open"},
			wantCode:   2,
			wantStderr: "backupguard window open: open needs --for, e.g. --for 2h\n\n" + usageOf(t, "window-open"),
		},
		"release with --for: a release lasts until resume": {
			args:       []string{"window", "release", "--for", "1h"},
			wantCode:   2,
			wantStderr: "backupguard window release: unknown flag: --for\n\n" + usageOf(t, "window-release"),
		},
		"no action": {
			args:       []string{"window"},
			wantCode:   2,
			wantStderr: "backupguard window: name one action: open, close, release, resume, status or verify\n\n" + usageOf(t, "window"),
		},
		"an unknown action": {
			args:       []string{"window", "toggle"},
			wantCode:   2,
			wantStderr: "backupguard window: unknown action \"toggle\": use open, close, release, resume, status or verify\n\n" + usageOf(t, "window"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, "", tc.args, "")
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			if diff := cmp.Diff(tc.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateAppliesTheWindow(t *testing.T) {
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(windowConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := `apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata: {name: noon, namespace: longhorn-system}
spec: {task: backup, cron: "0 12 * * *", retain: 7}
---
apiVersion: longhorn.io/v1beta2
kind: BackupTarget
metadata: {name: default, namespace: longhorn-system}
spec: {backupTargetURL: "s3://bucket@us-east-1/", pollInterval: 5m0s}
`
	stdout, stderr, code := runBinary(t, "", []string{"validate", "--config", configPath, "--now", now, "-"}, jobs)
	want := "RecurringJob longhorn-system/noon (stdin#1): denied\n" +
		`  spec.cron: Invalid value: "0 12 * * *": runs at 2026-11-22 12:00 UTC, outside the backup window (opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening): the backup target is unreachable then, so the backup would fail` + "\n" +
		"  warning: BackupTarget default polls every 5m0s: periodic polling still lists the bucket; backupguard syncs it at every opening, so set spec.pollInterval: 0s\n" +
		"  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false\n" +
		"  next runs: Sun 2026-11-22 12:00 UTC, Mon 2026-11-23 12:00 UTC, Tue 2026-11-24 12:00 UTC\n" +
		"1 checked, 1 denied, 0 mutated, 1 skipped\n"
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr: %s", code, stderr)
	}
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}
