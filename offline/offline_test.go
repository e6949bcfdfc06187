package offline_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"

	"github.com/backupguard/backupguard/offline"
	"github.com/backupguard/backupguard/policies"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// dailyRuns are the next runs of "0 2 * * *" after testNow (a Saturday).
var dailyRuns = []time.Time{
	time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC),
}

const detachedWarning = "detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"

// recurringJob is a RecurringJob manifest in the Longhorn namespace with the given name and spec (flow style).
func recurringJob(name, spec string) string {
	return fmt.Sprintf("apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata:\n  name: %s\n  namespace: longhorn-system\nspec: %s\n", name, spec)
}

const dailySpec = `{task: backup, cron: "0 2 * * *", retain: 7, concurrency: 2}`

// dailyObject is recurringJob(name, dailySpec) as ParseDocuments returns it.
func dailyObject(name string) map[string]any {
	return map[string]any{
		"apiVersion": "longhorn.io/v1beta2",
		"kind":       "RecurringJob",
		"metadata":   map[string]any{"name": name, "namespace": "longhorn-system"},
		"spec":       map[string]any{"task": "backup", "cron": "0 2 * * *", "retain": json.Number("7"), "concurrency": json.Number("2")},
	}
}

const configMap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n"

var configMapObject = map[string]any{
	"apiVersion": "v1",
	"kind":       "ConfigMap",
	"metadata":   map[string]any{"name": "settings"},
	"data":       map[string]any{"a": "b"},
}

func TestParseDocuments(t *testing.T) {
	cases := map[string]struct {
		data      string
		want      []offline.Document
		wantErr   string
		errSource string
	}{
		"document numbers count empty and comment-only documents": {
			data: configMap + "---\n---\n# only a comment\n---\n" + recurringJob("daily", dailySpec),
			want: []offline.Document{
				{Source: "f.yaml#1", Object: configMapObject},
				{Source: "f.yaml#4", Object: dailyObject("daily")},
			},
		},
		"several empty documents in a row are all counted": {
			data: configMap + "---\n---\n---\n" + recurringJob("daily", dailySpec),
			want: []offline.Document{
				{Source: "f.yaml#1", Object: configMapObject},
				{Source: "f.yaml#4", Object: dailyObject("daily")},
			},
		},
		"a leading separator starts the first document": {
			data: "---\n" + recurringJob("daily", dailySpec) + "--- # the next one\n" + configMap,
			want: []offline.Document{
				{Source: "f.yaml#1", Object: dailyObject("daily")},
				{Source: "f.yaml#2", Object: configMapObject},
			},
		},
		"a file of comments and separators holds nothing": {
			data: "# nothing here\n---\n---\n",
		},
		"a document of null holds nothing": {
			data: "null\n---\n~\n---\n" + configMap,
			want: []offline.Document{{Source: "f.yaml#3", Object: configMapObject}},
		},
		"JSON is a single document": {
			data: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}}`,
			want: []offline.Document{{Source: "f.yaml#1", Object: configMapObject}},
		},
		"a v1 List is unwrapped into its items": {
			data: configMap + "---\napiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(recurringJob("daily", dailySpec), "\n", "\n  ") + "\n- " + strings.ReplaceAll(configMap, "\n", "\n  "),
			want: []offline.Document{
				{Source: "f.yaml#1", Object: configMapObject},
				{Source: "f.yaml#2 items[0]", Object: dailyObject("daily")},
				{Source: "f.yaml#2 items[1]", Object: configMapObject},
			},
		},
		"a RecurringJobList is unwrapped into its items": {
			data: `{"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJobList", "items": [` +
				`{"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob", "metadata": {"name": "a", "namespace": "longhorn-system"}, "spec": {"task": "backup", "cron": "0 2 * * *", "retain": 7, "concurrency": 2}},` +
				`{"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob", "metadata": {"name": "b", "namespace": "longhorn-system"}, "spec": {"task": "backup", "cron": "0 2 * * *", "retain": 7, "concurrency": 2}}]}`,
			want: []offline.Document{
				{Source: "f.yaml#1 items[0]", Object: dailyObject("a")},
				{Source: "f.yaml#1 items[1]", Object: dailyObject("b")},
			},
		},
		"a List inside a List is unwrapped too": {
			data: `{"kind": "List", "items": [{"kind": "List", "items": [` + mustJSON(t, configMapObject) + `]}]}`,
			want: []offline.Document{{Source: "f.yaml#1 items[0] items[0]", Object: configMapObject}},
		},
		"a List with no items holds nothing": {
			data: "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: List\nitems: null\n",
		},
		"a kind ending in List without items is an ordinary object": {
			data: "apiVersion: example.com/v1\nkind: AllowList\nspec: {}\n",
			want: []offline.Document{{Source: "f.yaml#1", Object: map[string]any{"apiVersion": "example.com/v1", "kind": "AllowList", "spec": map[string]any{}}}},
		},
		"broken YAML names the file and the document": {
			data: configMap + "---\n---\nkind: RecurringJob\nspec: [\n",
			// The line is counted within the document, from the separator that opens it.
			wantErr:   "f.yaml#3: not valid YAML: yaml: line 3: did not find expected node content",
			errSource: "f.yaml#3",
		},
		"a scalar document is not an object": {
			data:      configMap + "---\njust a string\n",
			wantErr:   "f.yaml#2: expected a Kubernetes object (a mapping): json: cannot unmarshal string into Go value of type map[string]interface {}",
			errSource: "f.yaml#2",
		},
		"a sequence document is not an object": {
			data:      "- a\n- b\n",
			wantErr:   "f.yaml#1: expected a Kubernetes object (a mapping): json: cannot unmarshal array into Go value of type map[string]interface {}",
			errSource: "f.yaml#1",
		},
		"text after a separator is an error in the document it ends": {
			data:      configMap + "--- kind: ConfigMap\n",
			wantErr:   "f.yaml#1: invalid Yaml document separator: kind: ConfigMap",
			errSource: "f.yaml#1",
		},
		"List items that are not a list are an error": {
			data:      "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			wantErr:   "f.yaml#1: items of List must be a list",
			errSource: "f.yaml#1",
		},
		"a List item that is not an object is an error naming the item": {
			data:      "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(configMap, "\n", "\n  ") + "\n- 42\n",
			wantErr:   "f.yaml#1 items[1]: expected a Kubernetes object (a mapping)",
			errSource: "f.yaml#1 items[1]",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := offline.ParseDocuments([]byte(tc.data), "f.yaml")
			checkInputError(t, err, tc.wantErr, tc.errSource)
			if diff := cmp.Diff(tc.want, got, ignoreLocation); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), recurringJob("a", dailySpec)+"---\n"+recurringJob("b", dailySpec))
	writeFile(t, filepath.Join(dir, "b", "c.yml"), recurringJob("c", dailySpec))
	writeFile(t, filepath.Join(dir, "b", "notes.txt"), "not: [a manifest\n")
	writeFile(t, filepath.Join(dir, "b", "deeper", "d.json"), mustJSON(t, dailyObject("d")))
	writeFile(t, filepath.Join(dir, "b.json"), mustJSON(t, configMapObject))
	writeFile(t, filepath.Join(dir, "E.YAML"), recurringJob("e", dailySpec))
	single := filepath.Join(t.TempDir(), "single.yaml")
	writeFile(t, single, recurringJob("single", dailySpec))

	cases := map[string]struct {
		paths           []string
		stdin           string
		options         offline.ReadOptions
		want            []offline.Document
		wantUnparseable []string
		wantErr         string
		errSource       string
	}{
		"a directory is read recursively in lexical order, manifest files only": {
			paths: []string{dir},
			want: []offline.Document{
				{Source: filepath.Join(dir, "E.YAML") + "#1", Object: dailyObject("e")},
				{Source: filepath.Join(dir, "a.yaml") + "#1", Object: dailyObject("a")},
				{Source: filepath.Join(dir, "a.yaml") + "#2", Object: dailyObject("b")},
				{Source: filepath.Join(dir, "b", "c.yml") + "#1", Object: dailyObject("c")},
				{Source: filepath.Join(dir, "b", "deeper", "d.json") + "#1", Object: dailyObject("d")},
				{Source: filepath.Join(dir, "b.json") + "#1", Object: configMapObject},
			},
		},
		"a file named on its own is read whatever its extension, and its error stops the run": {
			paths: []string{filepath.Join(dir, "b", "notes.txt"), "-"},
			wantErr: filepath.Join(dir, "b", "notes.txt") + "#1: not valid YAML: yaml: line 1: did not find expected ',' or ']'" +
				" (a template? leave it out with --exclude, or skip such files with --skip-unparseable)",
			errSource: filepath.Join(dir, "b", "notes.txt") + "#1",
		},
		"--skip-unparseable leaves out a file that is not YAML and says so": {
			paths:           []string{filepath.Join(dir, "b", "notes.txt"), single},
			options:         offline.ReadOptions{SkipUnparseable: true},
			want:            []offline.Document{{Source: single + "#1", Object: dailyObject("single")}},
			wantUnparseable: []string{filepath.Join(dir, "b", "notes.txt") + "#1: not valid YAML: yaml: line 1: did not find expected ',' or ']'"},
		},
		"--exclude leaves out directories and files by name, and paths by their leading part": {
			paths:   []string{dir, filepath.Join(dir, "b", "notes.txt")},
			options: offline.ReadOptions{Exclude: []string{"deeper", "*.json", filepath.Join(dir, "b", "*.txt"), filepath.Join(dir, "a.yaml")}},
			want: []offline.Document{
				{Source: filepath.Join(dir, "E.YAML") + "#1", Object: dailyObject("e")},
				{Source: filepath.Join(dir, "b", "c.yml") + "#1", Object: dailyObject("c")},
			},
		},
		"files and stdin are read in the order given": {
			paths: []string{"-", single},
			stdin: configMap + "---\n" + recurringJob("from-stdin", dailySpec),
			want: []offline.Document{
				{Source: "stdin#1", Object: configMapObject},
				{Source: "stdin#2", Object: dailyObject("from-stdin")},
				{Source: single + "#1", Object: dailyObject("single")},
			},
		},
		"a missing path is an input error naming it": {
			paths:     []string{single, filepath.Join(dir, "missing.yaml")},
			wantErr:   filepath.Join(dir, "missing.yaml") + ": no such file or directory",
			errSource: filepath.Join(dir, "missing.yaml"),
		},
		"broken stdin names stdin and the document": {
			paths:     []string{"-"},
			stdin:     configMap + "---\nkind: [\n",
			wantErr:   "stdin#2: not valid YAML: yaml: line 1: did not find expected node content",
			errSource: "stdin#2",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, unparseable, err := offline.ReadPathsWith(tc.paths, strings.NewReader(tc.stdin), tc.options)
			checkInputError(t, err, tc.wantErr, tc.errSource)
			if diff := cmp.Diff(tc.want, got, ignoreLocation); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
			var unparseableText []string
			for _, err := range unparseable {
				unparseableText = append(unparseableText, err.Error())
			}
			if diff := cmp.Diff(tc.wantUnparseable, unparseableText); diff != "" {
				t.Errorf("unparseable (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadPathsStdinFailure(t *testing.T) {
	got, err := offline.ReadPaths([]string{"-"}, iotest.ErrReader(errors.New("connection reset")))
	checkInputError(t, err, "stdin: connection reset", "stdin")
	if got != nil {
		t.Errorf("documents: got %v, want none", got)
	}
}

func TestCheck(t *testing.T) {
	cases := map[string]struct {
		data   string
		config func(*policies.Config)
		want   offline.Report
	}{
		"no documents give an empty report": {
			want: offline.Report{Results: []offline.Result{}},
		},
		"an allowed job gets its warnings and next runs": {
			data: recurringJob("daily", dailySpec),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
					Allowed: true, Violations: []offline.Violation{}, Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
					NextRuns: dailyRuns,
				}},
				Summary: offline.Summary{Checked: 1},
			},
		},
		"a denied job lists every violation and still gets next runs": {
			data: recurringJob("weekly", `{task: backup, cron: "30 4 * * 0", retain: 101, concurrency: -1}`),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "weekly",
					Violations: []offline.Violation{
						{Field: "spec.concurrency", Type: "FieldValueInvalid", Message: "Invalid value: -1: must not be negative; 0 means Longhorn's default of 10"},
						{Field: "spec.retain", Type: "FieldValueInvalid", Message: "Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)"},
					},
					Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
					NextRuns: []time.Time{
						time.Date(2026, 11, 22, 4, 30, 0, 0, time.UTC),
						time.Date(2026, 11, 29, 4, 30, 0, 0, time.UTC),
						time.Date(2026, 12, 6, 4, 30, 0, 0, time.UTC),
					},
				}},
				Summary: offline.Summary{Checked: 1, Denied: 1},
			},
		},
		"a job with a zone prefix is denied and has no next runs": {
			data: recurringJob("berlin", `{task: snapshot, cron: "CRON_TZ=Europe/Berlin 0 3 * * *", retain: 3}`),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "berlin",
					Violations: []offline.Violation{{Field: "spec.cron", Type: "FieldValueInvalid", Message: `Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": ` +
						`time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: ` +
						`"0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)`}},
					Warnings: []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"},
					Patch:    []jsonpatch.Operation{},
				}},
				Summary: offline.Summary{Checked: 1, Denied: 1},
			},
		},
		"a ConfigMap is skipped and counted": {
			data: configMap + "---\n" + recurringJob("daily", dailySpec),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#2", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
					Allowed: true, Violations: []offline.Violation{}, Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
					NextRuns: dailyRuns,
				}},
				Summary: offline.Summary{Checked: 1, Skipped: 1},
			},
		},
		"a v1beta1 RecurringJob is denied: Longhorn no longer serves that version": {
			data: strings.Replace(recurringJob("daily", dailySpec), "v1beta2", "v1beta1", 1),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta1", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
					Violations: []offline.Violation{{Field: "apiVersion", Type: "FieldValueNotSupported", Message: `Unsupported value: "longhorn.io/v1beta1": supported values: "longhorn.io/v1beta2"`}},
					Warnings:   []string{}, Patch: []jsonpatch.Operation{},
					NextRuns: dailyRuns,
				}},
				Summary: offline.Summary{Checked: 1, Denied: 1},
			},
		},
		"decoding errors deny the job without the policy checks": {
			data: recurringJob("daily", `{task: backup, cron: "0 2 * * *", retain: "7", retention: 7}`),
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
					Violations: []offline.Violation{
						{Field: "spec.retain", Type: "FieldValueTypeInvalid", Message: `Invalid value: "7": must be a whole number, not a string: remove the quotes`},
						{Field: "spec.retention", Type: "FieldValueForbidden", Message: "Forbidden: unknown field; known fields here: concurrency, cron, groups, labels, name, parameters, retain, retainAge, retentionPolicy, task"},
					},
					Warnings: []string{}, Patch: []jsonpatch.Operation{},
					NextRuns: dailyRuns,
				}},
				Summary: offline.Summary{Checked: 1, Denied: 1},
			},
		},
		"names that differ only in case: the second is denied as a duplicate": {
			data: recurringJob("daily", dailySpec) + "---\n" + recurringJob("weekly", dailySpec) + "---\n" + recurringJob("Daily", dailySpec),
			want: offline.Report{
				Results: []offline.Result{
					{
						Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
						Allowed: true, Violations: []offline.Violation{}, Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
						NextRuns: dailyRuns,
					},
					{
						Source: "f.yaml#2", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "weekly",
						Allowed: true, Violations: []offline.Violation{}, Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
						NextRuns: dailyRuns,
					},
					{
						Source: "f.yaml#3", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "Daily",
						Violations: []offline.Violation{
							{Field: "metadata.name", Type: "FieldValueInvalid", Message: `Invalid value: "Daily": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', ` +
								`and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
							{Field: "metadata.name", Type: "FieldValueDuplicate", Message: `Duplicate value: "Daily": f.yaml#1 already defines RecurringJob "daily"; ` +
								`names are compared in lower case because Longhorn lower-cases them, so only one would exist`},
						},
						Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
						NextRuns: dailyRuns,
					},
				},
				Summary: offline.Summary{Checked: 3, Denied: 1},
			},
		},
		"the config's namespace and settings stand in for the cluster's": {
			data: strings.Replace(recurringJob("daily", `{task: backup, cron: "0 2 * * *", retain: 30}`), "longhorn-system", "storage", 1) +
				"---\n" + recurringJob("elsewhere", dailySpec),
			config: func(c *policies.Config) {
				c.Longhorn.Namespace = "storage"
				c.Longhorn.Settings.RecurringJobMaxRetention = new(20)
				c.Longhorn.Settings.AllowRecurringJobWhileVolumeDetached = new(true)
			},
			want: offline.Report{
				Results: []offline.Result{
					{
						Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "storage", Name: "daily",
						Violations: []offline.Violation{{Field: "spec.retain", Type: "FieldValueInvalid", Message: "Invalid value: 30: must be at most 20 (the Longhorn setting recurring-job-max-retention)"}},
						Warnings:   []string{}, Patch: []jsonpatch.Operation{},
						NextRuns: dailyRuns,
					},
					{
						Source: "f.yaml#2", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "elsewhere",
						Violations: []offline.Violation{{Field: "metadata.namespace", Type: "FieldValueInvalid",
							Message: `Invalid value: "longhorn-system": RecurringJobs must be in the Longhorn namespace "storage": Longhorn ignores them anywhere else`}},
						Warnings: []string{}, Patch: []jsonpatch.Operation{},
						NextRuns: dailyRuns,
					},
				},
				Summary: offline.Summary{Checked: 2, Denied: 2},
			},
		},
		"a job without a namespace is allowed with a warning": {
			data: "apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata: {name: trim}\nspec: {task: filesystem-trim, cron: \"@weekly\"}\n",
			want: offline.Report{
				Results: []offline.Result{{
					Source: "f.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Name: "trim",
					Allowed: true, Violations: []offline.Violation{},
					Warnings: []string{`metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads`,
						"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"},
					Patch: []jsonpatch.Operation{},
					NextRuns: []time.Time{
						time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
						time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC),
						time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
					},
				}},
				Summary: offline.Summary{Checked: 1},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			documents, err := offline.ParseDocuments([]byte(tc.data), "f.yaml")
			if err != nil {
				t.Fatalf("ParseDocuments: %v", err)
			}
			config := policies.DefaultConfig()
			if tc.config != nil {
				tc.config(config)
			}
			got := offline.Check(documents, config, testNow)
			if diff := cmp.Diff(tc.want, got, ignoreLocation); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// reportFixture has one result of each verdict, skipped objects, and a result without a name.
func reportFixture() offline.Report {
	return offline.Report{
		Results: []offline.Result{
			{
				Source: "jobs.yaml#1", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "daily",
				Allowed: true, Violations: []offline.Violation{}, Warnings: []string{detachedWarning}, Patch: []jsonpatch.Operation{},
				NextRuns: dailyRuns,
			},
			{
				Source: "jobs.yaml#2", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob", Namespace: "longhorn-system", Name: "labelled",
				Allowed: true, Violations: []offline.Violation{}, Warnings: []string{},
				Patch: []jsonpatch.Operation{{Operation: "add", Path: "/metadata/labels/backupguard.io~1checked", Value: "true"}},
			},
			{
				Source: "jobs.yaml#4 items[0]", APIVersion: "longhorn.io/v1beta2", Kind: "RecurringJob",
				Violations: []offline.Violation{
					{Field: "metadata.name", Type: "FieldValueRequired", Message: `Required value: a lower-case name such as "daily-backup"`},
					{Field: "spec.retain", Type: "FieldValueInvalid", Message: "Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)"},
				},
				Warnings: []string{`metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads`},
				Patch:    []jsonpatch.Operation{},
				NextRuns: []time.Time{time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
			},
		},
		Summary: offline.Summary{Checked: 3, Denied: 1, Mutated: 1, Skipped: 2},
	}
}

func TestWriteJSON(t *testing.T) {
	cases := map[string]struct {
		report offline.Report
		want   string
	}{
		"every result is written in the documented shape, empty lists as []": {
			report: reportFixture(),
			want: `{
  "results": [
    {
      "source": "jobs.yaml#1",
      "apiVersion": "longhorn.io/v1beta2",
      "kind": "RecurringJob",
      "namespace": "longhorn-system",
      "name": "daily",
      "allowed": true,
      "violations": [],
      "warnings": [
        "detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"
      ],
      "patch": []
    },
    {
      "source": "jobs.yaml#2",
      "apiVersion": "longhorn.io/v1beta2",
      "kind": "RecurringJob",
      "namespace": "longhorn-system",
      "name": "labelled",
      "allowed": true,
      "violations": [],
      "warnings": [],
      "patch": [
        {
          "op": "add",
          "path": "/metadata/labels/backupguard.io~1checked",
          "value": "true"
        }
      ]
    },
    {
      "source": "jobs.yaml#4 items[0]",
      "apiVersion": "longhorn.io/v1beta2",
      "kind": "RecurringJob",
      "namespace": "",
      "name": "",
      "allowed": false,
      "violations": [
        {
          "field": "metadata.name",
          "type": "FieldValueRequired",
          "message": "Required value: a lower-case name such as \"daily-backup\""
        },
        {
          "field": "spec.retain",
          "type": "FieldValueInvalid",
          "message": "Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)"
        }
      ],
      "warnings": [
        "metadata.namespace is not set: apply this RecurringJob to namespace \"longhorn-system\", the only one Longhorn reads"
      ],
      "patch": []
    }
  ],
  "summary": {
    "checked": 3,
    "denied": 1,
    "mutated": 1,
    "skipped": 2
  }
}
`,
		},
		"a report of Check with nothing checked has an empty results list": {
			report: offline.Check(nil, policies.DefaultConfig(), testNow),
			want: `{
  "results": [],
  "summary": {
    "checked": 0,
    "denied": 0,
    "mutated": 0,
    "skipped": 0
  }
}
`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.report.WriteJSON(&out); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const common = `RecurringJob longhorn-system/daily (jobs.yaml#1): allowed
  warning: detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false
  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC
`
	cases := map[string]struct {
		zone *time.Location
		want string
	}{
		"without a zone, run times are in UTC only": {
			want: common + `RecurringJob longhorn-system/labelled (jobs.yaml#2): allowed, with changes
  labels:
    + backupguard.io/checked=true
RecurringJob (no name) (jobs.yaml#4 items[0]): denied
  metadata.name: Required value: a lower-case name such as "daily-backup"
  spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)
  warning: metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads
  next runs: Sun 2026-03-29 00:30 UTC, Sun 2026-03-29 01:30 UTC
3 checked, 1 denied, 1 mutated, 2 skipped
`,
		},
		"UTC as the zone adds nothing": {
			zone: time.UTC,
			want: common + `RecurringJob longhorn-system/labelled (jobs.yaml#2): allowed, with changes
  labels:
    + backupguard.io/checked=true
RecurringJob (no name) (jobs.yaml#4 items[0]): denied
  metadata.name: Required value: a lower-case name such as "daily-backup"
  spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)
  warning: metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads
  next runs: Sun 2026-03-29 00:30 UTC, Sun 2026-03-29 01:30 UTC
3 checked, 1 denied, 1 mutated, 2 skipped
`,
		},
		"with a zone, run times are also shown in that zone, across a DST change": {
			zone: berlin,
			want: common + `  next runs in Europe/Berlin: Sun 2026-11-22 03:00 CET, Mon 2026-11-23 03:00 CET, Tue 2026-11-24 03:00 CET
RecurringJob longhorn-system/labelled (jobs.yaml#2): allowed, with changes
  labels:
    + backupguard.io/checked=true
RecurringJob (no name) (jobs.yaml#4 items[0]): denied
  metadata.name: Required value: a lower-case name such as "daily-backup"
  spec.retain: Invalid value: 101: must be at most 100 (the Longhorn setting recurring-job-max-retention)
  warning: metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads
  next runs: Sun 2026-03-29 00:30 UTC, Sun 2026-03-29 01:30 UTC
  next runs in Europe/Berlin: Sun 2026-03-29 01:30 CET, Sun 2026-03-29 03:30 CEST
3 checked, 1 denied, 1 mutated, 2 skipped
`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := reportFixture().WriteText(&out, tc.zone); err != nil {
				t.Fatalf("WriteText: %v", err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteTextFailingWriter(t *testing.T) {
	err := reportFixture().WriteText(failingWriter{}, nil)
	if diff := cmp.Diff("disk full", errorString(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func BenchmarkCheck10000(b *testing.B) {
	var data bytes.Buffer
	for i := range 10000 {
		if i > 0 {
			data.WriteString("---\n")
		}
		data.WriteString(recurringJob(fmt.Sprintf("job-%05d", i), `{task: backup, cron: "0 2 * * *", retain: 7, concurrency: 2, groups: [default], parameters: {full-backup-interval: "5"}}`))
	}
	config := policies.DefaultConfig()
	b.ReportAllocs()
	b.SetBytes(int64(data.Len()))
	for b.Loop() {
		documents, err := offline.ParseDocuments(data.Bytes(), "jobs.yaml")
		if err != nil {
			b.Fatal(err)
		}
		report := offline.Check(documents, config, testNow)
		if report.Summary.Checked != 10000 || report.Summary.Denied != 0 {
			b.Fatalf("summary: %v", report.Summary)
		}
	}
}

func checkInputError(t *testing.T, err error, wantErr, wantSource string) {
	t.Helper()
	if diff := cmp.Diff(wantErr, errorString(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if err == nil {
		return
	}
	var inputErr *offline.InputError
	if !errors.As(err, &inputErr) {
		t.Fatalf("error %v is a %T, want *offline.InputError", err, err)
	}
	if diff := cmp.Diff(wantSource, inputErr.Source); diff != "" {
		t.Errorf("error source (-want +got):\n%s", diff)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, value any) string {
	t.Helper()
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestParseDocumentsRefusesAKeyGivenTwice(t *testing.T) {
	_, err := offline.ParseDocuments([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"), "twice.yaml")
	want := "twice.yaml#1: not valid YAML: yaml: unmarshal errors:\n  line 5: key \"name\" already set in map"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestWriteTextShowsLabelChangesAsKeys(t *testing.T) {
	report := offline.Report{
		Results: []offline.Result{
			{
				Source: "pvcs.yaml#1", Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "new", Allowed: true,
				Patch: []jsonpatch.Operation{
					{Operation: "add", Path: "/metadata/labels", Value: map[string]any{"recurring-job.longhorn.io/source": "enabled", "recurring-job.longhorn.io/daily": "enabled"}},
					{Operation: "add", Path: "/metadata/annotations", Value: map[string]any{"backupguard.io/managed-labels": "recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source"}},
				},
			},
			{
				Source: "pvcs.yaml#2", Kind: "PersistentVolumeClaim", Namespace: "shop", Name: "old", Allowed: true,
				Patch: []jsonpatch.Operation{
					{Operation: "add", Path: "/metadata/labels/recurring-job.longhorn.io~1daily", Value: "enabled"},
					{Operation: "remove", Path: "/metadata/labels/recurring-job.longhorn.io~1weekly"},
					{Operation: "replace", Path: "/metadata/labels/recurring-job-group.longhorn.io~1gold", Value: "enabled"},
					{Operation: "replace", Path: "/metadata/annotations/backupguard.io~1managed-labels", Value: "recurring-job.longhorn.io/daily"},
				},
			},
			{
				Source: "jobs.yaml#1", Kind: "Job", Namespace: "shop", Name: "backup", Allowed: true,
				Patch: []jsonpatch.Operation{{Operation: "add", Path: "/spec/template/spec/nodeSelector", Value: map[string]any{"kubernetes.io/hostname": "n1"}}},
			},
		},
		Summary: offline.Summary{Checked: 3, Mutated: 3},
	}
	want := `PersistentVolumeClaim shop/new (pvcs.yaml#1): allowed, with changes
  labels:
    + recurring-job.longhorn.io/daily=enabled
    + recurring-job.longhorn.io/source=enabled
  annotations:
    + backupguard.io/managed-labels=recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source
PersistentVolumeClaim shop/old (pvcs.yaml#2): allowed, with changes
  labels:
    + recurring-job.longhorn.io/daily=enabled
    - recurring-job.longhorn.io/weekly
    + recurring-job-group.longhorn.io/gold=enabled
  annotations:
    + backupguard.io/managed-labels=recurring-job.longhorn.io/daily
Job shop/backup (jobs.yaml#1): allowed, with changes
  patch: add /spec/template/spec/nodeSelector {"kubernetes.io/hostname":"n1"}
3 checked, 0 denied, 3 mutated, 0 skipped
`
	var out bytes.Buffer
	if err := report.WriteText(&out, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}
