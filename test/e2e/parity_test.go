package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/backupguard/backupguard/offline"
)

// parityCase is one RecurringJob manifest, decided by the cluster and by `backupguard validate`.
type parityCase struct {
	name     string
	manifest string
	allowed  bool
	// fields are the violations' fields, in order, as backupguard reports them.
	fields []string
	// schemaFields, when set, are the fields the API server's own schema or strict decoding names: it
	// answers before any webhook is called, so only the verdict is compared with validate's.
	schemaFields []string
}

func rj(name, spec string) string { return recurringJobYAML(longhornNamespace, name, spec) }

const backupDefaults = "  task: backup\n  cron: \"0 2 * * *\"\n  concurrency: 2\n"

func parityCases() []parityCase {
	long41 := strings.Repeat("a", 41)
	return []parityCase{
		{name: "daily backup at 02:00 UTC", manifest: rj("p-daily", backupDefaults+"  retain: 7\n"), allowed: true},
		{name: "hourly snapshot", manifest: rj("p-hourly", "  task: snapshot\n  cron: \"0 * * * *\"\n  retain: 24\n"), allowed: true},
		{name: "descriptor @daily", manifest: rj("p-descriptor", "  task: snapshot\n  cron: \"@daily\"\n  retain: 3\n"), allowed: true},
		{name: "descriptor @every 6h", manifest: rj("p-every", "  task: snapshot\n  cron: \"@every 6h\"\n  retain: 3\n"), allowed: true},
		{name: "snapshot-cleanup keeps 0", manifest: rj("p-cleanup", "  task: snapshot-cleanup\n  cron: \"0 5 * * *\"\n  retain: 0\n"), allowed: true},
		{name: "filesystem-trim keeps 0", manifest: rj("p-trim", "  task: filesystem-trim\n  cron: \"0 6 * * 0\"\n"), allowed: true},
		{name: "snapshot-delete may keep 0", manifest: rj("p-delete", "  task: snapshot-delete\n  cron: \"0 6 * * 1\"\n  retain: 0\n"), allowed: true},
		{name: "system-backup with a volume backup policy", manifest: rj("p-system", "  task: system-backup\n  cron: \"0 3 * * 0\"\n  retain: 4\n  parameters:\n    volume-backup-policy: if-not-present\n"), allowed: true},
		{name: "full-backup interval 0 puts no bound on retain", manifest: rj("p-incr", backupDefaults+"  retain: 1\n  parameters:\n    full-backup-interval: \"0\"\n"), allowed: true},
		{name: "retain above the full-backup interval", manifest: rj("p-full", backupDefaults+"  retain: 6\n  parameters:\n    full-backup-interval: \"5\"\n"), allowed: true},
		{name: "spec.name equal to metadata.name", manifest: rj("p-named", backupDefaults+"  name: p-named\n  retain: 7\n"), allowed: true},
		{name: "spec.name different from metadata.name: the identity is metadata.name", manifest: rj("p-specname", backupDefaults+"  name: nightly\n  retain: 7\n"), allowed: true},
		{name: "backup that keeps nothing: Longhorn stores 1", manifest: rj("p-retain0", backupDefaults+"  retain: 0\n"), allowed: true},
		{name: "snapshot-cleanup that keeps 3: Longhorn stores 0", manifest: rj("p-cleanup3", "  task: snapshot-cleanup\n  cron: \"0 5 * * *\"\n  retain: 3\n"), allowed: true},
		{name: "filesystem-trim that keeps 2: Longhorn stores 0", manifest: rj("p-trim2", "  task: filesystem-trim\n  cron: \"0 6 * * 0\"\n  retain: 2\n"), allowed: true},
		{name: "snapshot-delete with negative retain: Longhorn stores 0", manifest: rj("p-delete-neg", "  task: snapshot-delete\n  cron: \"0 6 * * 1\"\n  retain: -1\n"), allowed: true},
		{name: "parameter on a snapshot job is ignored by Longhorn", manifest: rj("p-param-snap", "  task: snapshot\n  cron: \"0 * * * *\"\n  retain: 3\n  parameters:\n    full-backup-interval: \"5\"\n"), allowed: true},
		{name: "any parameter on a trim job is ignored", manifest: rj("p-param-trim", "  task: filesystem-trim\n  cron: \"0 6 * * 0\"\n  parameters:\n    anything: goes\n"), allowed: true},
		{name: "full-backup interval on a system backup is ignored", manifest: rj("p-param-sys", "  task: system-backup\n  cron: \"0 3 * * 0\"\n  retain: 2\n  parameters:\n    full-backup-interval: \"3\"\n"), allowed: true},
		{name: "volume-backup-policy on a backup job has no effect", manifest: rj("p-vbp-backup", backupDefaults+"  retain: 7\n  parameters:\n    volume-backup-policy: always\n"), allowed: true},
		{name: "full-backup interval with a plus sign, as strconv.Atoi takes it", manifest: rj("p-fbi-plus", backupDefaults+"  retain: 6\n  parameters:\n    full-backup-interval: \"+5\"\n"), allowed: true},
		{name: "spaces around five fields", manifest: rj("p-cron-spaces", "  task: snapshot\n  cron: \" 0 2 * * * \"\n  retain: 3\n"), allowed: true},
		{name: "groups and labels", manifest: rj("p-groups", backupDefaults+"  retain: 7\n  groups: [default, critical]\n  labels:\n    app.kubernetes.io/name: db\n"), allowed: true},
		{name: "backup-force-create with both parameters", manifest: rj("p-force", "  task: backup-force-create\n  cron: \"0 4 * * *\"\n  retain: 8\n  parameters:\n    full-backup-interval: \"7\"\n    volume-backup-policy: always\n"), allowed: true},

		{name: "CRON_TZ prefix", manifest: rj("p-crontz", "  task: backup\n  cron: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "TZ prefix", manifest: rj("p-tz", "  task: backup\n  cron: \"TZ=America/New_York 0 22 * * *\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "TZ prefix with an unknown zone", manifest: rj("p-tz-unknown", "  task: backup\n  cron: \"TZ=Nowhere/City 0 3 * * *\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "a seconds field", manifest: rj("p-seconds", "  task: backup\n  cron: \"0 0 2 * * *\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "day-of-week 7", manifest: rj("p-dow7", "  task: backup\n  cron: \"0 2 * * 7\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "minute out of range", manifest: rj("p-minute", "  task: backup\n  cron: \"61 2 * * *\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "missing cron", manifest: rj("p-nocron", "  task: backup\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "cron in words", manifest: rj("p-words", "  task: backup\n  cron: \"every day at two\"\n  retain: 7\n"), fields: []string{"spec.cron"}},
		{name: "missing task", manifest: rj("p-notask", "  cron: \"0 2 * * *\"\n  retain: 7\n"), fields: []string{"spec.task"}},
		{name: "unknown task: the CRD's enum answers first", manifest: rj("p-badtask", "  task: bakup\n  cron: \"0 2 * * *\"\n  retain: 7\n"),
			fields: []string{"spec.task"}, schemaFields: []string{"spec.task"}},
		{name: "retain above the maximum retention", manifest: rj("p-retain-max", backupDefaults+"  retain: 101\n"), fields: []string{"spec.retain"}},
		{name: "retain equal to the full-backup interval", manifest: rj("p-retain-eq", backupDefaults+"  retain: 7\n  parameters:\n    full-backup-interval: \"7\"\n"), fields: []string{"spec.retain"}},
		{name: "retain below the full-backup interval", manifest: rj("p-retain-lt", backupDefaults+"  retain: 3\n  parameters:\n    full-backup-interval: \"7\"\n"), fields: []string{"spec.retain"}},
		{name: "retain 0 with a full-backup interval: stored as 1, below the interval", manifest: rj("p-retain0-fbi", backupDefaults+"  retain: 0\n  parameters:\n    full-backup-interval: \"3\"\n"), fields: []string{"spec.retain"}},
		{name: "spec.name longer than 40 characters", manifest: rj("p-long-specname", backupDefaults+"  name: "+long41+"\n  retain: 7\n"), fields: []string{"spec.name"}},
		{name: "a leading space before a descriptor, which Longhorn's parser refuses", manifest: rj("p-cron-lead", "  task: snapshot\n  cron: \" @daily\"\n  retain: 3\n"), fields: []string{"spec.cron"}},
		{name: "an unknown descriptor", manifest: rj("p-cron-desc", "  task: snapshot\n  cron: \"@fortnightly\"\n  retain: 3\n"), fields: []string{"spec.cron"}},
		{name: "group ending in a dash, never a valid label key", manifest: rj("p-group-dash", backupDefaults+"  retain: 7\n  groups: [nightly-]\n"), fields: []string{"spec.groups[0]"}},
		{name: "group ending in an underscore", manifest: rj("p-group-underscore", backupDefaults+"  retain: 7\n  groups: [a_]\n"), fields: []string{"spec.groups[0]"}},
		{name: "unknown volume backup policy on a backup job", manifest: rj("p-vbp-bad", backupDefaults+"  retain: 7\n  parameters:\n    volume-backup-policy: sometimes\n"), fields: []string{"spec.parameters[volume-backup-policy]"}},
		{name: "negative full-backup interval", manifest: rj("p-fbi-neg", backupDefaults+"  retain: 7\n  parameters:\n    full-backup-interval: \"-1\"\n"), fields: []string{"spec.parameters[full-backup-interval]"}},
		{name: "full-backup interval in words", manifest: rj("p-fbi-word", backupDefaults+"  retain: 7\n  parameters:\n    full-backup-interval: weekly\n"), fields: []string{"spec.parameters[full-backup-interval]"}},
		{name: "misspelt parameter", manifest: rj("p-param-typo", backupDefaults+"  retain: 7\n  parameters:\n    full-backup-intervall: \"5\"\n"), fields: []string{"spec.parameters[full-backup-intervall]"}},
		{name: "unknown volume backup policy", manifest: rj("p-vbp", "  task: system-backup\n  cron: \"0 3 * * 0\"\n  retain: 4\n  parameters:\n    volume-backup-policy: sometimes\n"), fields: []string{"spec.parameters[volume-backup-policy]"}},
		{name: "negative concurrency", manifest: rj("p-conc", "  task: backup\n  cron: \"0 2 * * *\"\n  retain: 7\n  concurrency: -1\n"), fields: []string{"spec.concurrency"}},
		{name: "group with a bad first character", manifest: rj("p-group-bad", backupDefaults+"  retain: 7\n  groups: [\"-nightly\"]\n"), fields: []string{"spec.groups[0]"}},
		{name: "group longer than 63 characters", manifest: rj("p-group-long", backupDefaults+"  retain: 7\n  groups: [\""+strings.Repeat("g", 64)+"\"]\n"), fields: []string{"spec.groups[0]"}},
		{name: "repeated group", manifest: rj("p-group-dup", backupDefaults+"  retain: 7\n  groups: [default, default]\n"), fields: []string{"spec.groups[1]"}},
		{name: "reserved label RecurringJob", manifest: rj("p-label-rj", backupDefaults+"  retain: 7\n  labels:\n    RecurringJob: mine\n"), fields: []string{"spec.labels[RecurringJob]"}},
		{name: "reserved label KubernetesStatus", manifest: rj("p-label-ks", backupDefaults+"  retain: 7\n  labels:\n    KubernetesStatus: x\n"), fields: []string{"spec.labels[KubernetesStatus]"}},
		{name: "label key that is not a qualified name", manifest: rj("p-label-key", backupDefaults+"  retain: 7\n  labels:\n    \"bad key\": x\n"), fields: []string{"spec.labels[bad key]"}},
		{name: "empty label value", manifest: rj("p-label-empty", backupDefaults+"  retain: 7\n  labels:\n    app: \"\"\n"), fields: []string{"spec.labels[app]"}},
		{name: "name longer than 40 characters", manifest: rj(long41, backupDefaults+"  retain: 7\n"), fields: []string{"metadata.name"}},
		{name: "one-character name", manifest: rj("a", backupDefaults+"  retain: 7\n"), fields: []string{"metadata.name"}},
		{name: "outside the Longhorn namespace", manifest: recurringJobYAML("default", "p-elsewhere", backupDefaults+"  retain: 7\n"), fields: []string{"metadata.namespace"}},
		{name: "several mistakes at once", manifest: rj("p-several", "  task: backup\n  cron: \"TZ=UTC 0 2 * * *\"\n  retain: 101\n  concurrency: -3\n  groups: [x]\n"),
			fields: []string{"spec.cron", "spec.groups[0]", "spec.concurrency", "spec.retain"}},

		{name: "misspelt spec field", manifest: rj("p-typo", backupDefaults+"  retian: 7\n"),
			fields: []string{"spec.retian"}, schemaFields: []string{}},
		{name: "full-backup interval as a number", manifest: rj("p-fbi-number", backupDefaults+"  retain: 7\n  parameters:\n    full-backup-interval: 5\n"),
			fields: []string{"spec.parameters[full-backup-interval]"}, schemaFields: []string{"spec.parameters.full-backup-interval"}},
		{name: "retain as a string", manifest: rj("p-retain-string", backupDefaults+"  retain: \"7\"\n"),
			fields: []string{"spec.retain"}, schemaFields: []string{"spec.retain"}},
	}
}

// TestParityBetweenClusterAndValidate runs one table through the cluster (a server-side dry run with
// strict field validation, as kubectl does) and through `backupguard validate`, and requires the same
// verdict, the same violations and the same warnings.
func TestParityBetweenClusterAndValidate(t *testing.T) {
	cases := parityCases()
	if len(cases) < 40 {
		t.Fatalf("the parity table must cover at least 40 cases, has %d", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			offlineResult := validateOffline(t, tc.manifest)
			clusterErr, clusterWarnings := createInCluster(t, tc.manifest)

			if offlineResult.Allowed != tc.allowed {
				t.Errorf("validate: allowed = %v, want %v; violations: %v", offlineResult.Allowed, tc.allowed, offlineResult.Violations)
			}
			if got := (clusterErr == nil); got != tc.allowed {
				t.Errorf("cluster: allowed = %v, want %v; error: %v", got, tc.allowed, clusterErr)
			}
			if diff := cmp.Diff(tc.fields, violationFields(offlineResult.Violations)); tc.fields != nil && diff != "" {
				t.Errorf("validate's violation fields (-want +got):\n%s", diff)
			}
			if tc.schemaFields != nil {
				// The API server answered before the webhook: compare its fields only.
				if diff := cmp.Diff(tc.schemaFields, causeFields(clusterErr)); diff != "" {
					t.Errorf("API server's fields (-want +got):\n%s\nerror: %v", diff, clusterErr)
				}
				return
			}
			if clusterErr != nil {
				if !apierrors.IsInvalid(clusterErr) {
					t.Fatalf("cluster: want an Invalid (422) denial, got %v", clusterErr)
				}
				if diff := cmp.Diff(offlineResult.Violations, causesAsViolations(clusterErr)); diff != "" {
					t.Errorf("violations (-validate +cluster):\n%s", diff)
				}
			}
			if diff := cmp.Diff(offlineResult.Warnings, clusterWarnings); diff != "" {
				t.Errorf("warnings (-validate +cluster):\n%s", diff)
			}
		})
	}
}

// validateOffline runs the real binary on the manifest and returns its one result.
func validateOffline(t *testing.T, manifest string) offline.Result {
	t.Helper()
	report := validateOfflineAll(t, manifest)
	if len(report.Results) != 1 {
		t.Fatalf("validate: want 1 result, got %d", len(report.Results))
	}
	return report.Results[0]
}

// validateOfflineAll runs the real binary on the input and returns its report, checking the exit
// status against the verdicts.
func validateOfflineAll(t *testing.T, manifest string, flags ...string) offline.Report {
	t.Helper()
	command := exec.Command(binary, append(append([]string{"validate", "-o", "json"}, flags...), "-")...)
	command.Stdin = strings.NewReader(manifest)
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		t.Fatalf("backupguard validate: %v\n%s", err, stderr.String())
	}
	var report offline.Report
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("validate -o json printed %q: %v", stdout.String(), err)
	}
	wantExit := 0
	if report.Summary.Denied > 0 {
		wantExit = 1
	}
	if command.ProcessState.ExitCode() != wantExit {
		t.Errorf("validate exit status = %d, want %d", command.ProcessState.ExitCode(), wantExit)
	}
	return report
}

var recurringJobResource = schema.GroupVersionResource{Group: "longhorn.io", Version: "v1beta2", Resource: "recurringjobs"}

// createInCluster asks the API server to create the manifest in a server-side dry run, returning the
// error (nil when admitted) and the warnings it sent back.
func createInCluster(t *testing.T, manifest string) (error, []string) {
	t.Helper()
	jsonData, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(jsonData); err != nil {
		t.Fatal(err)
	}
	warnings := &warningCollector{}
	config := rest.CopyConfig(testCluster.Config)
	config.WarningHandler = warnings
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Resource(recurringJobResource).Namespace(object.GetNamespace()).Create(context.Background(), object,
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return err, warnings.list()
}

type warningCollector struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningCollector) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.warnings == nil {
		return []string{}
	}
	return append([]string{}, w.warnings...)
}

func causesAsViolations(err error) []offline.Violation {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	violations := []offline.Violation{}
	for _, cause := range status.Status().Details.Causes {
		violations = append(violations, offline.Violation{Field: cause.Field, Type: string(cause.Type), Message: cause.Message})
	}
	return violations
}

func causeFields(err error) []string {
	fields := []string{}
	for _, violation := range causesAsViolations(err) {
		fields = append(fields, violation.Field)
	}
	return fields
}

func violationFields(violations []offline.Violation) []string {
	fields := []string{}
	for _, violation := range violations {
		fields = append(fields, violation.Field)
	}
	return fields
}
