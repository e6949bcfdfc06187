package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const now = "2026-11-21T12:00:00Z"

const goodJob = `apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata:
  name: daily
  namespace: longhorn-system
spec:
  task: backup
  cron: "0 2 * * *"
  retain: 7
  concurrency: 2
`

const deniedJob = `apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata:
  name: weekly
  namespace: longhorn-system
spec:
  task: backup
  cron: "0 3 * * 7"
  retain: 7
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
`

const undecodableJob = `apiVersion: batch/v1
kind: Job
metadata: {name: backup, namespace: shop, labels: {backupguard.io/backup-job: "true"}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: restic, image: restic}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: 5}}]
`

const podLabelledCronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {backupguard.io/backup-job: "true"}}
        spec:
          restartPolicy: OnFailure
          containers: [{name: restic, image: restic}]
`

const pinnedCronJob = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop, annotations: {backupguard.io/node: storage-1}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    metadata: {labels: {backupguard.io/backup-job: "true"}}
    spec:
      template:
        spec:
          nodeName: storage-2
          restartPolicy: OnFailure
          containers: [{name: restic, image: restic}]
          volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`

const helmTemplate = `{{- if .Values.backup.enabled }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-backup
{{- end }}
`

const helmTemplateError = "yaml: did not find expected node content"

const nothingChecked = "backupguard validate: nothing checked: the input holds no RecurringJob, PersistentVolumeClaim or backup Job (a wrong path?); --allow-empty accepts that\n"

const goodJobText = `RecurringJob longhorn-system/daily (DIR/good.yaml#1): allowed
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
1 checked, 0 denied, 0 mutated, 0 skipped
`

func TestRunValidate(t *testing.T) {
	cases := map[string]struct {
		// files are written to a fresh directory; DIR in args and outputs stands for it.
		files      map[string]string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"an allowed job exits 0 with the text report": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "--now", now, "DIR/good.yaml"},
			wantCode:   0,
			wantStdout: goodJobText,
		},
		"a denied job exits 1": {
			files:    map[string]string{"jobs.yaml": goodJob + "---\n" + configMap + "---\n" + deniedJob},
			args:     []string{"validate", "--now", now, "DIR/jobs.yaml"},
			wantCode: 1,
			wantStdout: `RecurringJob longhorn-system/daily (DIR/jobs.yaml#1): allowed
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
RecurringJob longhorn-system/weekly (DIR/jobs.yaml#3): denied
  spec.cron: Invalid value: "0 3 * * 7": day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
2 checked, 1 denied, 0 mutated, 1 skipped
`,
		},
		"--tz adds the run times in that zone": {
			files:    map[string]string{"good.yaml": goodJob},
			args:     []string{"validate", "--now", now, "--tz", "Europe/Berlin", "DIR/good.yaml"},
			wantCode: 0,
			wantStdout: `RecurringJob longhorn-system/daily (DIR/good.yaml#1): allowed
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
  next runs in Europe/Berlin: Sun 2026-11-22 03:00 CET, Mon 2026-11-23 03:00 CET, Tue 2026-11-24 03:00 CET
1 checked, 0 denied, 0 mutated, 0 skipped
`,
		},
		"-o json writes the machine-readable report": {
			files:    map[string]string{"jobs.yaml": configMap + "---\n" + deniedJob},
			args:     []string{"validate", "-o", "json", "--now", now, "DIR/jobs.yaml"},
			wantCode: 1,
			wantStdout: `{
  "results": [
    {
      "source": "DIR/jobs.yaml#2",
      "apiVersion": "longhorn.io/v1beta2",
      "kind": "RecurringJob",
      "namespace": "longhorn-system",
      "name": "weekly",
      "allowed": false,
      "violations": [
        {
          "field": "spec.cron",
          "type": "FieldValueInvalid",
          "message": "Invalid value: \"0 3 * * 7\": day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)"
        }
      ],
      "warnings": [
        "detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"
      ],
      "patch": []
    }
  ],
  "summary": {
    "checked": 1,
    "denied": 1,
    "mutated": 0,
    "skipped": 1
  }
}
`,
		},
		"-o github annotates the line of the field and a warning shared by a file once": {
			files:    map[string]string{"jobs.yaml": goodJob + "---\n" + deniedJob},
			args:     []string{"validate", "-o", "github", "--now", now, "DIR/jobs.yaml"},
			wantCode: 1,
			wantStdout: "::warning file=DIR/jobs.yaml,line=1,title=backupguard%3A 2 objects::detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false" +
				" (2 objects in this file: RecurringJob longhorn-system/daily at line 1, RecurringJob longhorn-system/weekly at line 12)\n" +
				"::error file=DIR/jobs.yaml,line=19,title=backupguard%3A RecurringJob longhorn-system/weekly::spec.cron: Invalid value: \"0 3 * * 7\": day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)\n" +
				"2 checked, 1 denied, 0 mutated, 0 skipped\n",
		},
		"-o junit gives a denied object the line of its first violation": {
			files:    map[string]string{"jobs.yaml": goodJob + "---\n" + deniedJob},
			args:     []string{"validate", "-o", "junit", "--now", now, "DIR/jobs.yaml"},
			wantCode: 1,
			wantStdout: `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="2" failures="1">
  <testsuite name="backupguard validate" tests="2" failures="1">
    <testcase name="RecurringJob longhorn-system/daily" classname="DIR/jobs.yaml#1" file="DIR/jobs.yaml" line="1">
      <system-out>warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false</system-out>
    </testcase>
    <testcase name="RecurringJob longhorn-system/weekly" classname="DIR/jobs.yaml#2" file="DIR/jobs.yaml" line="19">
      <failure message="1 violation(s)" type="denied">spec.cron: Invalid value: &#34;0 3 * * 7&#34;: day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)</failure>
      <system-out>warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false</system-out>
    </testcase>
  </testsuite>
</testsuites>
`,
		},
		"- reads stdin": {
			args:     []string{"validate", "--now", now, "-"},
			stdin:    goodJob,
			wantCode: 0,
			wantStdout: `RecurringJob longhorn-system/daily (stdin#1): allowed
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
1 checked, 0 denied, 0 mutated, 0 skipped
`,
		},
		"a directory with nothing to check exits 2, so a wrong path fails CI": {
			files:      map[string]string{"cm.yaml": configMap, "README.md": "# not read\n"},
			args:       []string{"validate", "--now", now, "DIR"},
			wantCode:   2,
			wantStdout: "0 checked, 0 denied, 0 mutated, 1 skipped\n",
			wantStderr: nothingChecked,
		},
		"an empty directory exits 2": {
			args:       []string{"validate", "--now", now, "DIR"},
			wantCode:   2,
			wantStdout: "0 checked, 0 denied, 0 mutated, 0 skipped\n",
			wantStderr: nothingChecked,
		},
		"--allow-empty accepts a run that checked nothing": {
			files:      map[string]string{"cm.yaml": configMap},
			args:       []string{"validate", "--allow-empty", "--now", now, "DIR"},
			wantCode:   0,
			wantStdout: "0 checked, 0 denied, 0 mutated, 1 skipped\n",
		},
		"a Job it cannot decode is denied at the field, with its file and document": {
			files:    map[string]string{"job.yaml": configMap + "---\n" + undecodableJob},
			args:     []string{"validate", "--now", now, "DIR/job.yaml"},
			wantCode: 1,
			wantStdout: `Job shop/backup (DIR/job.yaml#2): denied
  spec.template.spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: 5: must be a string
1 checked, 1 denied, 0 mutated, 1 skipped
`,
		},
		"a typo in a Longhorn kind is denied": {
			files:    map[string]string{"jobs.yaml": strings.Replace(goodJob, "kind: RecurringJob", "kind: RecuringJob", 1)},
			args:     []string{"validate", "--now", now, "DIR/jobs.yaml"},
			wantCode: 1,
			wantStdout: `RecuringJob longhorn-system/daily (DIR/jobs.yaml#1): denied
  kind: Invalid value: "RecuringJob": longhorn.io has no such kind: did you mean "RecurringJob"?
1 checked, 1 denied, 0 mutated, 0 skipped
`,
		},
		"a backup CronJob labelled on its pod template gets a warning naming the fix": {
			files:    map[string]string{"cronjob.yaml": podLabelledCronJob},
			args:     []string{"validate", "--now", now, "DIR/cronjob.yaml"},
			wantCode: 0,
			wantStdout: `CronJob shop/nightly (DIR/cronjob.yaml#1): allowed
  warning: the backup Job selector matches the pod template's labels (spec.jobTemplate.spec.template.metadata.labels), but backupguard selects the Jobs by theirs: move the label to spec.jobTemplate.metadata.labels, or its Jobs are not placed next to their volumes
1 checked, 0 denied, 0 mutated, 0 skipped
`,
		},
		"a CronJob's violations carry the CronJob's own paths": {
			files:    map[string]string{"cronjob.yaml": pinnedCronJob},
			args:     []string{"validate", "--now", now, "DIR/cronjob.yaml"},
			wantCode: 1,
			wantStdout: `PersistentVolumeClaim shop/data (DIR/cronjob.yaml#1): allowed
  warning: no storageClassName and no default StorageClass in the input; assuming the cluster's default has one of the provisioners driver.longhorn.io
CronJob shop/nightly (DIR/cronjob.yaml#2): denied
  spec.jobTemplate.spec.template.spec.nodeName: Invalid value: "storage-2": pins the Job to another node, but PVC "data" is on node "storage-1" (its backupguard.io/node annotation says so)
  warning: node "storage-1" is not known, so its taints could not be tolerated
2 checked, 1 denied, 0 mutated, 0 skipped
`,
		},
		"a Helm template stops the run naming the file": {
			files:      map[string]string{"good.yaml": goodJob, "templates/job.yaml": helmTemplate},
			args:       []string{"validate", "--now", now, "DIR"},
			wantCode:   2,
			wantStderr: "backupguard validate: DIR/templates/job.yaml#1: not valid YAML: " + helmTemplateError + " (a template? leave it out with --exclude, or skip such files with --skip-unparseable)\n",
		},
		"--skip-unparseable skips a Helm template with a warning": {
			files:      map[string]string{"good.yaml": goodJob, "templates/job.yaml": helmTemplate},
			args:       []string{"validate", "--skip-unparseable", "--now", now, "DIR"},
			wantCode:   0,
			wantStdout: goodJobText,
			wantStderr: "backupguard validate: warning: skipped DIR/templates/job.yaml#1: not valid YAML: " + helmTemplateError + " (--skip-unparseable)\n",
		},
		"--exclude leaves out paths, and is repeatable": {
			files:      map[string]string{"good.yaml": goodJob, "templates/job.yaml": helmTemplate, "other/bad.yaml": deniedJob},
			args:       []string{"validate", "--exclude", "templates", "--exclude", "DIR/other/*.yaml", "--now", now, "DIR"},
			wantCode:   0,
			wantStdout: goodJobText,
		},
		"a bad --exclude pattern exits 2": {
			args:       []string{"validate", "--exclude", "[", "--now", now, "DIR"},
			wantCode:   2,
			wantStderr: "backupguard validate: --exclude \"[\": syntax error in pattern\n\n" + usageOf(t, "validate"),
		},
		"--config replaces the defaults": {
			files: map[string]string{
				"config.yaml": "apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  settings:\n    recurringJobMaxRetention: 5\n    allowRecurringJobWhileVolumeDetached: true\n",
				"good.yaml":   goodJob,
			},
			args:     []string{"validate", "--config", "DIR/config.yaml", "--now", now, "DIR/good.yaml"},
			wantCode: 1,
			wantStdout: `RecurringJob longhorn-system/daily (DIR/good.yaml#1): denied
  spec.retain: Invalid value: 7: must be at most 5 (the Longhorn setting recurring-job-max-retention)
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
1 checked, 1 denied, 0 mutated, 0 skipped
`,
		},
		"--config with an unknown field exits 2 naming the field": {
			files: map[string]string{
				"config.yaml": "apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespce: storage\n",
				"good.yaml":   goodJob,
			},
			args:       []string{"validate", "--config", "DIR/config.yaml", "--now", now, "DIR/good.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: config DIR/config.yaml: unknown field \"longhorn.namespce\"\n",
		},
		"a missing --config file exits 2 naming it": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "--config", "DIR/config.yaml", "--now", now, "DIR/good.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: config: open DIR/config.yaml: no such file or directory\n",
		},
		"no PATH exits 2": {
			args:       []string{"validate", "--now", now},
			wantCode:   2,
			wantStderr: "backupguard validate: no PATH given: name files, directories, or - for stdin\n\n" + usageOf(t, "validate"),
		},
		"-o yaml exits 2": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "-o", "yaml", "--now", now, "DIR/good.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: -o \"yaml\": must be text, json, github or junit\n\n" + usageOf(t, "validate"),
		},
		"an unknown --tz exits 2": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "--tz", "Mars/Olympus", "--now", now, "DIR/good.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: --tz \"Mars/Olympus\": unknown time zone\n\n" + usageOf(t, "validate"),
		},
		"a bad --now exits 2": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "--now", "2026-11-21 12:00", "DIR/good.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: --now \"2026-11-21 12:00\": not an RFC 3339 time such as 2026-11-21T12:00:00Z\n\n" + usageOf(t, "validate"),
		},
		"a missing file exits 2 naming it": {
			files:      map[string]string{"good.yaml": goodJob},
			args:       []string{"validate", "--now", now, "DIR/good.yaml", "DIR/missing.yaml"},
			wantCode:   2,
			wantStderr: "backupguard validate: DIR/missing.yaml: no such file or directory\n",
		},
		"broken YAML exits 2 naming the file and the document": {
			files:    map[string]string{"broken.yaml": goodJob + "---\n# a comment\n---\nkind: RecurringJob\nspec: {cron: \"0 2 * * *\"\n"},
			args:     []string{"validate", "--now", now, "DIR/broken.yaml"},
			wantCode: 2,
			wantStderr: "backupguard validate: DIR/broken.yaml#3: not valid YAML: yaml: line 2: did not find expected ',' or '}'" +
				" (a template? leave it out with --exclude, or skip such files with --skip-unparseable)\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for file, content := range tc.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tc.args))
			for i, arg := range tc.args {
				args[i] = strings.ReplaceAll(arg, "DIR", dir)
			}
			stdout, stderr, code := runBinary(t, "", args, tc.stdin)
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d", code, tc.wantCode)
			}
			if diff := cmp.Diff(strings.ReplaceAll(tc.wantStdout, "DIR", dir), stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(strings.ReplaceAll(tc.wantStderr, "DIR", dir), stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// help is the golden --help output of a command ("validate", "window-status"; "root" for backupguard),
// in testdata: review a change of it as a change of the command line.
func help(t *testing.T, command string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "help-"+command+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// usageOf is the usage a command prints after a mistake: its help without the description.
func usageOf(t *testing.T, command string) string {
	t.Helper()
	text := help(t, command)
	return text[strings.Index(text, "Usage:\n"):]
}

func TestHelpGoesToStdout(t *testing.T) {
	for _, command := range []string{"", "validate", "serve", "window", "window status", "window open", "window close", "window release", "window resume", "window verify", "coverage", "version"} {
		golden := "root"
		if command != "" {
			golden = strings.ReplaceAll(command, " ", "-")
		}
		args := strings.Fields(command)
		for _, form := range [][]string{append(slices.Clone(args), "--help"), append(slices.Clone(args), "-h"), append([]string{"help"}, args...)} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				stdout, stderr, code := runBinary(t, "", form, "")
				if code != 0 {
					t.Errorf("exit code: got %d, want 0", code)
				}
				if diff := cmp.Diff(help(t, golden), stdout); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
				if stderr != "" {
					t.Errorf("stderr: got %q, want nothing", stderr)
				}
			})
		}
	}
}

func TestRunCommands(t *testing.T) {
	cases := map[string]struct {
		args       []string
		env        []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"no command prints the help on stderr and exits 2": {
			wantCode:   2,
			wantStderr: help(t, "root"),
		},
		"an unknown command exits 2 with the usage": {
			args:       []string{"frobnicate"},
			wantCode:   2,
			wantStderr: "backupguard: unknown command \"frobnicate\" for \"backupguard\"\n\n" + usageOf(t, "root"),
		},
		"a mistyped flag of validate exits 2 with the usage": {
			args:       []string{"validate", "--confg", "x.yaml", "manifests"},
			wantCode:   2,
			wantStderr: "backupguard validate: unknown flag: --confg\n\n" + usageOf(t, "validate"),
		},
		"an unknown shorthand exits 2 with the usage": {
			args:       []string{"validate", "-x"},
			wantCode:   2,
			wantStderr: "backupguard validate: unknown shorthand flag: 'x' in -x\n\n" + usageOf(t, "validate"),
		},
		"a duration without a unit exits 2 with the usage": {
			args:       []string{"window", "open", "--for", "2"},
			wantCode:   2,
			wantStderr: "backupguard window open: invalid argument \"2\" for \"--for\" flag: time: missing unit in duration \"2\"\n\n" + usageOf(t, "window-open"),
		},
		"an unknown -o of window status exits 2 with the usage": {
			args:       []string{"window", "status", "-o", "xml"},
			wantCode:   2,
			wantStderr: "backupguard window status: -o \"xml\": must be text, json or yaml\n\n" + usageOf(t, "window-status"),
		},
		"version prints the version": {
			args:       []string{"version"},
			wantStdout: "dev\n",
		},
		"--version prints the version": {
			args:       []string{"--version"},
			wantStdout: "dev\n",
		},
		"-v prints the version": {
			args:       []string{"-v"},
			wantStdout: "dev\n",
		},
		"completion writes a shell's script": {
			args:       []string{"completion", "fish", "--no-descriptions"},
			wantStdout: fishCompletionHead,
		},
		"serve without --config exits 2": {
			args:       []string{"serve", "--cert-dir", "/nonexistent"},
			wantCode:   2,
			wantStderr: "backupguard serve: --config is required\n\n" + usageOf(t, "serve"),
		},
		"serve with a lease no longer than its renew deadline exits 2": {
			args:       []string{"serve", "--config", "/nonexistent/config.yaml", "--cert-dir", "/nonexistent", "--leader-elect-lease-duration", "10s"},
			wantCode:   2,
			wantStderr: "backupguard serve: --leader-elect-lease-duration (10s) must be longer than --leader-elect-renew-deadline (10s)\n\n" + usageOf(t, "serve"),
		},
		"serve with a renew deadline within 1.2 retry periods exits 2": {
			args:       []string{"serve", "--config", "/nonexistent/config.yaml", "--cert-dir", "/nonexistent", "--leader-elect-renew-deadline", "2s"},
			wantCode:   2,
			wantStderr: "backupguard serve: --leader-elect-renew-deadline (2s) must be longer than 1.2 times --leader-elect-retry-period (2s)\n\n" + usageOf(t, "serve"),
		},
		"serve without --cert-dir exits 2": {
			args:       []string{"serve", "--config", "/nonexistent/config.yaml"},
			wantCode:   2,
			wantStderr: "backupguard serve: --cert-dir is required\n\n" + usageOf(t, "serve"),
		},
		"serve with arguments exits 2": {
			args:       []string{"serve", "--config", "c.yaml", "--cert-dir", "certs", "extra"},
			wantCode:   2,
			wantStderr: "backupguard serve: unexpected arguments [\"extra\"]\n\n" + usageOf(t, "serve"),
		},
		"serve with an unknown log level exits 2": {
			args:       []string{"serve", "--config", "c.yaml", "--cert-dir", "certs", "--log-level", "chatty"},
			wantCode:   2,
			wantStderr: "backupguard serve: --log-level \"chatty\": use debug, info or error\n\n" + usageOf(t, "serve"),
		},
		"a webhook read timeout of 0 (no timeout to Go's server) exits 2": {
			args:       []string{"serve", "--config", "c.yaml", "--cert-dir", "certs", "--webhook-read-timeout", "0s"},
			wantCode:   2,
			wantStderr: "backupguard serve: --webhook-read-timeout must be above 0\n\n" + usageOf(t, "serve"),
		},
		"a header timeout longer than the read timeout exits 2": {
			args:       []string{"serve", "--config", "c.yaml", "--cert-dir", "certs", "--webhook-read-header-timeout", "40s"},
			wantCode:   2,
			wantStderr: "backupguard serve: --webhook-read-header-timeout (40s) must not be longer than --webhook-read-timeout (30s)\n\n" + usageOf(t, "serve"),
		},
		"a header limit too small for any request exits 2": {
			args:       []string{"serve", "--config", "c.yaml", "--cert-dir", "certs", "--webhook-max-header-bytes", "100"},
			wantCode:   2,
			wantStderr: "backupguard serve: --webhook-max-header-bytes must be at least 4096\n\n" + usageOf(t, "serve"),
		},
		"window status without a cluster names the kubeconfig it looked for": {
			args:       []string{"window", "status"},
			env:        []string{"HOME=/nonexistent", "KUBECONFIG=", "KUBERNETES_SERVICE_HOST="},
			wantCode:   1,
			wantStderr: "backupguard window status: no cluster to talk to: no kubeconfig in /nonexistent/.kube/config and not in a pod; set --kubeconfig or $KUBECONFIG\n",
		},
		"coverage without a cluster or PATH names the kubeconfig it looked for": {
			args:       []string{"coverage"},
			env:        []string{"HOME=/nonexistent", "KUBECONFIG=", "KUBERNETES_SERVICE_HOST="},
			wantCode:   1,
			wantStderr: "backupguard coverage: no cluster to talk to: no kubeconfig in /nonexistent/.kube/config and not in a pod; set --kubeconfig or $KUBECONFIG\n",
		},
		"coverage names an unknown --context": {
			args:       []string{"coverage", "--kubeconfig", "testdata/kubeconfig.yaml", "--context", "prod"},
			wantCode:   1,
			wantStderr: "backupguard coverage: --kubeconfig testdata/kubeconfig.yaml: context \"prod\" does not exist\n",
		},
		"an unknown --context is named": {
			args:       []string{"window", "status", "--kubeconfig", "testdata/kubeconfig.yaml", "--context", "prod"},
			wantCode:   1,
			wantStderr: "backupguard window status: --kubeconfig testdata/kubeconfig.yaml: context \"prod\" does not exist\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, "", tc.args, "", tc.env...)
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d", code, tc.wantCode)
			}
			if name == "completion writes a shell's script" {
				stdout = stdout[:min(len(stdout), len(fishCompletionHead))]
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

// fishCompletionHead is how cobra's fish completion script starts; the rest is cobra's.
const fishCompletionHead = "# fish completion for backupguard"

func TestVersionFromBuildInfo(t *testing.T) {
	cases := map[string]struct {
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		"go install ...@v0.2.0 records the module version": {info: &debug.BuildInfo{Main: debug.Module{Path: "github.com/backupguard/backupguard", Version: "v0.2.0"}}, want: "v0.2.0"},
		"a build in a checkout is a devel build":           {info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, want: "dev"},
		"no build info":                                    {want: "dev"},
		"the Makefile's stamp wins":                        {stamped: "v0.2.0-3-gabcdef", info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, want: "v0.2.0-3-gabcdef"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := versionFrom(tc.stamped, tc.info); got != tc.want {
				t.Errorf("versionFrom = %q, want %q", got, tc.want)
			}
		})
	}
}

// serveChildArgs, when set, makes the test binary a child that runs one command and exits with its code.
const serveChildArgs = "BACKUPGUARD_TEST_RUN_ARGS"

// TestRunServeRefusesABadConfig runs serve in a child process of the test binary: runServe installs
// controller-runtime's signal handler, which panics when installed twice in one process, so an
// in-process run would break "go test -count=2".
func TestRunServeRefusesABadConfig(t *testing.T) {
	if encoded := os.Getenv(serveChildArgs); encoded != "" {
		var args []string
		if err := json.Unmarshal([]byte(encoded), &args); err != nil {
			t.Fatal(err)
		}
		os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
	}

	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespce: storage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args, err := json.Marshal([]string{"serve", "--config", configPath, "--cert-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestRunServeRefusesABadConfig$")
	child.Env = append(os.Environ(), serveChildArgs+"="+string(args))
	var stdout, stderr bytes.Buffer
	child.Stdout, child.Stderr = &stdout, &stderr
	err = child.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("exit: got %v, want exit status 1\nstderr:\n%s", err, stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout: got %q, want nothing", stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr: got %d lines, want one JSON log line:\n%s", len(lines), stderr.String())
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatalf("stderr line %q is not JSON: %v", lines[0], err)
	}
	if _, ok := entry["ts"].(string); !ok {
		t.Errorf("log line %q has no timestamp", lines[0])
	}
	delete(entry, "ts")
	want := map[string]any{
		"level": "error",
		"msg":   "backupguard stopped",
		"error": "config " + configPath + `: unknown field "longhorn.namespce"`,
	}
	if diff := cmp.Diff(want, entry); diff != "" {
		t.Errorf("log line (-want +got):\n%s", diff)
	}
}
