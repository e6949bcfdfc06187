package policies

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gomodules.xyz/jsonpatch/v2"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/backupguard/backupguard/longhorn"
)

// Messages from apimachinery's validation, spelled out so that a change in what users read shows here.
const (
	jobNameMsg        = "must be a RecurringJob name: at most 40 characters matching ^[a-z0-9][a-z0-9_.-]+$"
	groupNameMsg      = "must be a RecurringJob group: must be at least 2 characters and match ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
	dns1123LabelMsg   = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
	labelValueMsg     = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
	configLabelHeader = "apiVersion: backupguard.io/v1alpha1\nkind: Config\nlabels:\n  rules:\n"
)

// compiledRulesComparer compares compiled label rules, selectors by what they select.
var compiledRulesComparer = cmp.Options{
	cmp.AllowUnexported(LabelRules{}, compiledRule{}),
	// Derived from the rules; TestNamedJobsAndGroups checks them.
	cmpopts.IgnoreFields(LabelRules{}, "namedJobs", "namedGroups"),
	cmp.Comparer(func(a, b labels.Selector) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.String() == b.String()
	}),
}

func mustParseSelector(t *testing.T, selector string) labels.Selector {
	t.Helper()
	parsed, err := labels.Parse(selector)
	if err != nil {
		t.Fatalf("parsing selector %q: %v", selector, err)
	}
	return parsed
}

func TestParseConfigLabels(t *testing.T) {
	cases := map[string]struct {
		rules     string
		want      LabelsConfig
		wantRules func(t *testing.T) *LabelRules
		wantErr   string
	}{
		"two rules using every match criterion compile": {
			rules: `
  - name: databases
    match:
      namespaces: [db, db-staging]
      namespaceSelector:
        matchLabels: {backup: "yes"}
      selector:
        matchExpressions:
        - {key: app, operator: In, values: [postgres, mysql]}
      storageClassNames: [longhorn, longhorn-fast]
      pvcs: [db/data-postgres-0, db-staging/data-postgres-0]
    jobs: [daily]
    groups: [critical]
  - name: caches
    match:
      namespaceSelector:
        matchExpressions:
        - {key: team, operator: Exists}
      selector:
        matchLabels: {tier: cache}
      storageClassNames: [longhorn]
      pvcs: [web/redis]
      namespaces: [web]
    jobs: [hourly-snapshot, weekly]
`,
			want: LabelsConfig{Rules: []LabelRule{
				{
					Name: "databases",
					Match: LabelMatch{
						Namespaces:        []string{"db", "db-staging"},
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}},
						Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"postgres", "mysql"}},
						}},
						StorageClassNames: []string{"longhorn", "longhorn-fast"},
						PVCs:              []string{"db/data-postgres-0", "db-staging/data-postgres-0"},
					},
					Jobs:   []string{"daily"},
					Groups: []string{"critical"},
				},
				{
					Name: "caches",
					Match: LabelMatch{
						Namespaces: []string{"web"},
						NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "team", Operator: metav1.LabelSelectorOpExists},
						}},
						Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "cache"}},
						StorageClassNames: []string{"longhorn"},
						PVCs:              []string{"web/redis"},
					},
					Jobs: []string{"hourly-snapshot", "weekly"},
				},
			}},
			wantRules: func(t *testing.T) *LabelRules {
				return &LabelRules{keepDefaultGroup: true,
					provisioners:        sets.New(longhorn.CSIDriver),
					usesNamespaceLabels: true,
					rules: []compiledRule{
						{
							name:              "databases",
							namespaces:        sets.New("db", "db-staging"),
							namespaceSelector: mustParseSelector(t, "backup=yes"),
							selector:          mustParseSelector(t, "app in (mysql,postgres)"),
							storageClassNames: sets.New("longhorn", "longhorn-fast"),
							pvcs:              sets.New("db/data-postgres-0", "db-staging/data-postgres-0"),
							jobs:              []string{"daily"},
							groups:            []string{"critical"},
						},
						{
							name:              "caches",
							namespaces:        sets.New("web"),
							namespaceSelector: mustParseSelector(t, "team"),
							selector:          mustParseSelector(t, "tier=cache"),
							storageClassNames: sets.New("longhorn"),
							pvcs:              sets.New("web/redis"),
							jobs:              []string{"hourly-snapshot", "weekly"},
						},
					},
				}
			},
		},
		"a rule without a match selects everything and leaves every criterion unset": {
			rules: "  - {name: all, groups: [default]}\n",
			want:  LabelsConfig{Rules: []LabelRule{{Name: "all", Groups: []string{"default"}}}},
			wantRules: func(*testing.T) *LabelRules {
				return &LabelRules{keepDefaultGroup: true,
					provisioners: sets.New(longhorn.CSIDriver),
					rules:        []compiledRule{{name: "all", groups: []string{"default"}}},
				}
			},
		},
		"a rule without a name is refused": {
			rules:   "  - {jobs: [daily]}\n",
			wantErr: `config c.yaml: labels.rules[0].name: Required value: a name to identify the rule in messages`,
		},
		"a duplicated rule name is refused on the second rule": {
			rules:   "  - {name: db, jobs: [daily]}\n  - {name: db, jobs: [weekly]}\n",
			wantErr: `config c.yaml: labels.rules[1].name: Duplicate value: "db"`,
		},
		"a rule with neither jobs nor groups is refused": {
			rules:   "  - {name: db, match: {namespaces: [db]}}\n",
			wantErr: `config c.yaml: labels.rules[0]: Required value: at least one of jobs or groups (rule "db")`,
		},
		"empty lists of jobs and groups count as none": {
			rules:   "  - {name: db, jobs: [], groups: []}\n",
			wantErr: `config c.yaml: labels.rules[0]: Required value: at least one of jobs or groups (rule "db")`,
		},
		"a job name of 41 characters is longer than a RecurringJob name can be": {
			rules:   "  - {name: db, jobs: [" + strings.Repeat("a", 41) + "]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[0]: Invalid value: "` + strings.Repeat("a", 41) + `": ` + jobNameMsg + ` (rule "db")`,
		},
		"a job name of 40 characters fits": {
			rules: "  - {name: db, jobs: [" + strings.Repeat("a", 40) + "]}\n",
			want:  LabelsConfig{Rules: []LabelRule{{Name: "db", Jobs: []string{strings.Repeat("a", 40)}}}},
			wantRules: func(*testing.T) *LabelRules {
				return &LabelRules{keepDefaultGroup: true,
					provisioners: sets.New(longhorn.CSIDriver),
					rules:        []compiledRule{{name: "db", jobs: []string{strings.Repeat("a", 40)}}},
				}
			},
		},
		"a group of 64 characters is too long for a label key": {
			rules:   "  - {name: db, groups: [" + strings.Repeat("g", 64) + "]}\n",
			wantErr: `config c.yaml: labels.rules[0].groups[0]: Invalid value: "` + strings.Repeat("g", 64) + `": ` + "must be a RecurringJob group: must be usable in the label key recurring-job-group.longhorn.io/<group>, or the job can never select a volume: name part must be no more than 63 bytes" + ` (rule "db")`,
		},
		"a job named source is reserved": {
			rules:   "  - {name: db, jobs: [source]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[0]: Invalid value: "source": is reserved: recurring-job.longhorn.io/source marks a PVC as the source of its Volume's labels (rule "db")`,
		},
		"an upper-case job name cannot be a RecurringJob's": {
			rules:   "  - {name: db, jobs: [Daily]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[0]: Invalid value: "Daily": ` + jobNameMsg + ` (rule "db")`,
		},
		"a provisioner that is not a DNS name is refused": {
			rules:   "  - {name: db, jobs: [daily]}\n  provisioners: [\"not a driver\"]\n",
			wantErr: `config c.yaml: labels.provisioners[0]: Invalid value: "not a driver": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
		},
		"a job name with a slash is refused": {
			rules:   "  - {name: db, jobs: [daily, team/daily]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[1]: Invalid value: "team/daily": ` + jobNameMsg + ` (rule "db")`,
		},
		"a job name with a space is refused": {
			rules:   "  - {name: db, jobs: [daily backup]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[0]: Invalid value: "daily backup": ` + jobNameMsg + ` (rule "db")`,
		},
		"an empty job name is refused": {
			rules:   "  - {name: db, jobs: [\"\"]}\n",
			wantErr: `config c.yaml: labels.rules[0].jobs[0]: Invalid value: "": ` + jobNameMsg + ` (rule "db")`,
		},
		"a group name with a slash is refused": {
			rules:   "  - {name: db, groups: [a/b]}\n",
			wantErr: `config c.yaml: labels.rules[0].groups[0]: Invalid value: "a/b": ` + groupNameMsg + ` (rule "db")`,
		},
		"an invalid namespace is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {namespaces: [db, Bad_NS]}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.namespaces[1]: Invalid value: "Bad_NS": ` + dns1123LabelMsg + ` (rule "db")`,
		},
		"a pvcs entry without a slash is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {pvcs: [data-postgres-0]}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.pvcs[0]: Invalid value: "data-postgres-0": must be namespace/name of a PVC (rule "db")`,
		},
		"a pvcs entry without a name is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {pvcs: [db/]}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.pvcs[0]: Invalid value: "db/": must be namespace/name of a PVC (rule "db")`,
		},
		"a pvcs entry with two slashes is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {pvcs: [db/data/0]}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.pvcs[0]: Invalid value: "db/data/0": must be namespace/name of a PVC (rule "db")`,
		},
		"a selector operator that does not exist is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {selector: {matchExpressions: [{key: app, operator: Inn, values: [postgres]}]}}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.selector.matchExpressions[0].operator: Invalid value: "Inn": not a valid selector operator (rule "db")`,
		},
		"a selector with an invalid label value is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {selector: {matchLabels: {app: \"post gres\"}}}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.selector.matchLabels: Invalid value: "post gres": ` + labelValueMsg + ` (rule "db")`,
		},
		"a selector expression with an invalid value is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {selector: {matchExpressions: [{key: app, operator: In, values: [ok, \"not ok\"]}]}}}\n",
			wantErr: `config c.yaml: labels.rules[0].match.selector.matchExpressions[0].values[1]: Invalid value: "not ok": ` + labelValueMsg + ` (rule "db")`,
		},
		"a namespaceSelector In without values is refused": {
			rules:   "  - {name: db, jobs: [daily], match: {namespaceSelector: {matchExpressions: [{key: team, operator: In}]}}}\n",
			wantErr: "config c.yaml: labels.rules[0].match.namespaceSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn' (rule \"db\")",
		},
		"every mistake of every rule is reported, each naming its rule": {
			rules: "  - {name: db, jobs: [a/b], match: {namespaces: [DB], pvcs: [x]}}\n" +
				"  - {name: web, match: {selector: {matchExpressions: [{key: app, operator: Inn, values: [x]}]}}}\n",
			wantErr: `config c.yaml: [` +
				`labels.rules[0].jobs[0]: Invalid value: "a/b": ` + jobNameMsg + ` (rule "db"), ` +
				`labels.rules[0].match.namespaces[0]: Invalid value: "DB": ` + dns1123LabelMsg + ` (rule "db"), ` +
				`labels.rules[0].match.pvcs[0]: Invalid value: "x": must be namespace/name of a PVC (rule "db"), ` +
				`labels.rules[1]: Required value: at least one of jobs or groups (rule "web"), ` +
				`labels.rules[1].match.selector.matchExpressions[0].operator: Invalid value: "Inn": not a valid selector operator (rule "web")]`,
		},
		"a misspelt match field is named by its full path": {
			rules:   "  - {name: db, jobs: [daily], match: {namespace: [db]}}\n",
			wantErr: `config c.yaml: unknown field "labels.rules[0].match.namespace"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseConfig([]byte(configLabelHeader+tc.rules), "c.yaml")
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				if got != nil {
					t.Errorf("ParseConfig returned a config with its error: %+v", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got.Labels); diff != "" {
				t.Errorf("labels config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRules(t), got.LabelRules(), compiledRulesComparer); diff != "" {
				t.Errorf("compiled rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileLabelRules(t *testing.T) {
	rules := field.NewPath("labels", "rules")
	cases := map[string]struct {
		config   LabelsConfig
		want     *LabelRules
		wantErrs field.ErrorList
	}{
		"no configuration gives no rules and Longhorn's provisioner": {
			want: &LabelRules{keepDefaultGroup: true, provisioners: sets.New(longhorn.CSIDriver)},
		},
		"configured provisioners replace the default": {
			config: LabelsConfig{Provisioners: []string{"rancher.io/local-path", "example.com/csi"}},
			want:   &LabelRules{keepDefaultGroup: true, provisioners: sets.New("rancher.io/local-path", "example.com/csi")},
		},
		"keepDefaultGroup false is kept": {
			config: LabelsConfig{KeepDefaultGroup: ptr.To(false)},
			want:   &LabelRules{keepDefaultGroup: false, provisioners: sets.New(longhorn.CSIDriver)},
		},
		"the rule's lists are copied, not shared with the config": {
			config: LabelsConfig{Rules: []LabelRule{{Name: "db", Jobs: []string{"daily"}, Groups: []string{"gold"}}}},
			want: &LabelRules{keepDefaultGroup: true, provisioners: sets.New(longhorn.CSIDriver), rules: []compiledRule{
				{name: "db", jobs: []string{"daily"}, groups: []string{"gold"}},
			}},
		},
		"errors are field errors whose detail ends with the rule's name": {
			config: LabelsConfig{Rules: []LabelRule{
				{Name: "db", Jobs: []string{"daily"}},
				{Name: "db", Match: LabelMatch{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a b"}},
				}},
				{Groups: []string{"x y"}},
			}},
			wantErrs: field.ErrorList{
				field.Duplicate(rules.Index(1).Child("name"), "db"),
				field.Required(rules.Index(1), `at least one of jobs or groups (rule "db")`),
				field.Invalid(rules.Index(1).Child("match", "selector", "matchLabels"), "a b", labelValueMsg+` (rule "db")`).WithOrigin("format=k8s-label-value"),
				field.Required(rules.Index(2).Child("name"), "a name to identify the rule in messages"),
				field.Invalid(rules.Index(2).Child("groups").Index(0), "x y", groupNameMsg),
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, errs := CompileLabelRules(tc.config, field.NewPath("labels"))
			if diff := cmp.Diff(tc.wantErrs, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if len(tc.wantErrs) > 0 {
				return // callers drop the rules when there are errors
			}
			if diff := cmp.Diff(tc.want, got, compiledRulesComparer); diff != "" {
				t.Errorf("compiled rules (-want +got):\n%s", diff)
			}
			for i := range tc.config.Rules {
				tc.config.Rules[i].Jobs = append(tc.config.Rules[i].Jobs[:0], "changed-after-compiling")
			}
			if diff := cmp.Diff(tc.want, got, compiledRulesComparer); diff != "" {
				t.Errorf("compiled rules after changing the config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNamedJobsAndGroups(t *testing.T) {
	rules := []LabelRule{
		{Name: "db", Jobs: []string{"weekly", "daily"}, Groups: []string{"gold"}},
		{Name: "web", Jobs: []string{"daily"}, Groups: []string{"silver", "gold"}},
	}
	cases := map[string]struct {
		config LabelsConfig
		want   [][]string
	}{
		"the rules' jobs and groups, each once, sorted": {
			config: LabelsConfig{Rules: rules},
			want:   [][]string{{"daily", "weekly"}, {"gold", "silver"}},
		},
		"without keepDefaultGroup the default group too, for the warning about leaving it": {
			config: LabelsConfig{Rules: rules, KeepDefaultGroup: ptr.To(false)},
			want:   [][]string{{"daily", "weekly"}, {"default", "gold", "silver"}},
		},
		"without rules nothing, whatever keepDefaultGroup says": {
			config: LabelsConfig{KeepDefaultGroup: ptr.To(false)},
			want:   [][]string{{}, {}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			compiled := compileRules(t, tc.config)
			jobs, groups := compiled.NamedJobsAndGroups()
			if diff := cmp.Diff(tc.want, [][]string{jobs, groups}); diff != "" {
				t.Errorf("named jobs and groups (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProvisioners shows through DecidePVCLabels that only PVCs of the configured provisioners are
// labelled, Longhorn's by default.
func TestProvisioners(t *testing.T) {
	everyPVC := LabelRule{Name: "all", Jobs: []string{"daily"}}
	labelled := LabelDecision{
		Patch: []jsonpatch.Operation{
			{Operation: "add", Path: "/metadata/labels", Value: map[string]string{
				"recurring-job.longhorn.io/daily": "enabled", "recurring-job.longhorn.io/source": "enabled",
			}},
			{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{
				ManagedLabelsAnnotation: "recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source",
			}},
		},
		Labels: map[string]string{"recurring-job.longhorn.io/daily": "enabled", "recurring-job.longhorn.io/source": "enabled"},
	}
	cases := map[string]struct {
		provisioners []string
		class        *storagev1.StorageClass
		offline      bool
		want         LabelDecision
	}{
		"by default a Longhorn StorageClass is labelled": {
			class: makeStorageClass("longhorn", "driver.longhorn.io"),
			want:  labelled,
		},
		"by default another provisioner is not": {
			class: makeStorageClass("local", "rancher.io/local-path"),
		},
		"a configured list admits its provisioners": {
			provisioners: []string{"rancher.io/local-path"},
			class:        makeStorageClass("local", "rancher.io/local-path"),
			want:         labelled,
		},
		"a configured list replaces Longhorn's provisioner instead of adding to it": {
			provisioners: []string{"rancher.io/local-path"},
			class:        makeStorageClass("longhorn", "driver.longhorn.io"),
		},
		"offline, the assumption names the default provisioner": {
			offline: true,
			want: LabelDecision{
				Patch:    labelled.Patch,
				Labels:   labelled.Labels,
				Warnings: []string{`StorageClass "longhorn" is not in the input; assuming its provisioner is one of driver.longhorn.io`},
			},
		},
		"offline, the assumption names the configured provisioners, sorted": {
			provisioners: []string{"rancher.io/local-path", "driver.longhorn.io"},
			offline:      true,
			want: LabelDecision{
				Patch:    labelled.Patch,
				Labels:   labelled.Labels,
				Warnings: []string{`StorageClass "longhorn" is not in the input; assuming its provisioner is one of driver.longhorn.io, rancher.io/local-path`},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// The default group is TestDecidePVCLabelsKeepsTheDefaultGroup's subject.
			rules := compileRules(t, LabelsConfig{Provisioners: tc.provisioners, Rules: []LabelRule{everyPVC}, KeepDefaultGroup: ptr.To(false)})
			// Offline cases have no StorageClass: the PVC names "longhorn", which is not in the input.
			className := "longhorn"
			if tc.class != nil {
				className = tc.class.Name
			}
			env := PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: tc.class, Offline: tc.offline}
			got := DecidePVCLabels(makePVC("db", "data").StorageClass(className).Obj(), env, rules)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecidePVCLabels (-want +got):\n%s", diff)
			}
		})
	}
}
