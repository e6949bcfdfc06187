package policies

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/backupguard/backupguard/longhorn"
)

// pvcBuilder makes PVCs for tests, starting from a bare PVC with no labels, annotations or class.
type pvcBuilder struct{ pvc corev1.PersistentVolumeClaim }

func makePVC(namespace, name string) *pvcBuilder {
	return &pvcBuilder{pvc: corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}
}

func (b *pvcBuilder) StorageClass(name string) *pvcBuilder {
	b.pvc.Spec.StorageClassName = &name
	return b
}

func (b *pvcBuilder) Label(key, value string) *pvcBuilder {
	if b.pvc.Labels == nil {
		b.pvc.Labels = map[string]string{}
	}
	b.pvc.Labels[key] = value
	return b
}

func (b *pvcBuilder) Annotation(key, value string) *pvcBuilder {
	if b.pvc.Annotations == nil {
		b.pvc.Annotations = map[string]string{}
	}
	b.pvc.Annotations[key] = value
	return b
}

func (b *pvcBuilder) VolumeName(name string) *pvcBuilder {
	b.pvc.Spec.VolumeName = name
	return b
}

func (b *pvcBuilder) GenerateName(prefix string) *pvcBuilder {
	b.pvc.GenerateName = prefix
	return b
}

func (b *pvcBuilder) ResourceVersion(version string) *pvcBuilder {
	b.pvc.ResourceVersion = version
	return b
}

func (b *pvcBuilder) Obj() *corev1.PersistentVolumeClaim { return b.pvc.DeepCopy() }

func makeStorageClass(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
}

func longhornClass() *storagev1.StorageClass { return makeStorageClass("longhorn", longhorn.CSIDriver) }

// longhornEnv is the environment of a PVC in namespace with the StorageClass "longhorn" of Longhorn's
// provisioner, in a Namespace without labels.
func longhornEnv(namespace string) PVCEnvironment {
	return PVCEnvironment{Namespace: namespace, NamespaceFound: true, StorageClass: longhornClass()}
}

// compileRules compiles config, failing the test on any error.
func compileRules(tb testing.TB, config LabelsConfig) *LabelRules {
	tb.Helper()
	rules, errs := CompileLabelRules(config, field.NewPath("labels"))
	if len(errs) > 0 {
		tb.Fatalf("compiling label rules: %v", errs.ToAggregate())
	}
	return rules
}

// databasesRule gives every Longhorn PVC the job daily and the group critical.
func databasesRule() LabelRule {
	return LabelRule{Name: "databases", Jobs: []string{"daily"}, Groups: []string{"critical"}}
}

// rulesConfig is a config with rules and labels.keepDefaultGroup off: the tables that use it are about
// matching and managing labels; TestDecidePVCLabelsKeepsTheDefaultGroup covers the default group.
func rulesConfig(rules ...LabelRule) LabelsConfig {
	return LabelsConfig{Rules: rules, KeepDefaultGroup: ptr.To(false)}
}

func addOp(path string, value any) jsonpatch.Operation {
	return jsonpatch.Operation{Operation: "add", Path: path, Value: value}
}

func replaceOp(path string, value any) jsonpatch.Operation {
	return jsonpatch.Operation{Operation: "replace", Path: path, Value: value}
}

func removeOp(path string) jsonpatch.Operation {
	return jsonpatch.Operation{Operation: "remove", Path: path}
}

const (
	dailyLabel    = "recurring-job.longhorn.io/daily"
	weeklyLabel   = "recurring-job.longhorn.io/weekly"
	sourceLabel   = "recurring-job.longhorn.io/source"
	criticalLabel = "recurring-job-group.longhorn.io/critical"
	goldLabel     = "recurring-job-group.longhorn.io/gold"

	dailyPath        = "/metadata/labels/recurring-job.longhorn.io~1daily"
	weeklyPath       = "/metadata/labels/recurring-job.longhorn.io~1weekly"
	sourcePath       = "/metadata/labels/recurring-job.longhorn.io~1source"
	criticalPath     = "/metadata/labels/recurring-job-group.longhorn.io~1critical"
	defaultGroupPath = "/metadata/labels/recurring-job-group.longhorn.io~1default"
	managedPath      = "/metadata/annotations/backupguard.io~1managed-labels"

	// managedByDatabases is the managed-labels annotation databasesRule leads to.
	managedByDatabases = "recurring-job-group.longhorn.io/critical,recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source"

	storageClassGoneWarning = `StorageClass "longhorn" does not exist, so backupguard cannot tell whether this is a Longhorn volume: its recurring-job labels were left as they are`
	assumedLonghornWarning  = `StorageClass "longhorn" is not in the input; assuming its provisioner is one of driver.longhorn.io`
	assumedDefaultWarning   = `no storageClassName and no default StorageClass in the input; assuming the cluster's default has one of the provisioners driver.longhorn.io`
	namespaceUnknownWarning = `namespace "db" is not known, so rules with a namespaceSelector were not applied`
)

// databasesLabels are the labels databasesRule gives a PVC that had none.
func databasesLabels() map[string]string {
	return map[string]string{criticalLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled"}
}

// labelledWithDatabases is the decision for a PVC without labels or annotations that databasesRule
// matches.
func labelledWithDatabases() LabelDecision {
	return LabelDecision{
		Patch: []jsonpatch.Operation{
			addOp("/metadata/labels", databasesLabels()),
			addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: managedByDatabases}),
		},
		Labels: databasesLabels(),
	}
}

// labelledDaily is the decision for a PVC without labels or annotations that a rule with the single job
// daily matches.
func labelledDaily() LabelDecision {
	return LabelDecision{
		Patch: []jsonpatch.Operation{
			addOp("/metadata/labels", map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"}),
			addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: dailyLabel + "," + sourceLabel}),
		},
		Labels: map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
	}
}

func dailyRule(match LabelMatch) LabelRule {
	return LabelRule{Name: "daily", Match: match, Jobs: []string{"daily"}}
}

func TestDecidePVCLabels(t *testing.T) {
	cases := map[string]struct {
		config LabelsConfig
		pvc    *corev1.PersistentVolumeClaim
		env    PVCEnvironment
		want   LabelDecision
	}{
		// Fixes found in review.
		"with no rules at all, a PVC naming a StorageClass that does not exist keeps the labels backupguard added": {
			config: LabelsConfig{},
			pvc: makePVC("db", "data").StorageClass("gone").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, "recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source").Obj(),
			env:  PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want: LabelDecision{Labels: map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"}},
		},
		"offline, an empty legacy storage-class annotation means no class, not the default one": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").Annotation("volume.beta.kubernetes.io/storage-class", "").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			want:   LabelDecision{},
		},
		"a source label that says off is left with a warning about copying, not about jobs": {
			config: LabelsConfig{},
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(sourceLabel, "false").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Labels:   map[string]string{sourceLabel: "false"},
				Warnings: []string{`label recurring-job.longhorn.io/source="false" has no effect: Longhorn copies a PVC's recurring labels to its Volume only with "enabled"`},
			},
		},

		// What a matched PVC gets.
		"a matched PVC without labels gets the whole label map and the managed-labels annotation": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledWithDatabases(),
		},
		"a matched PVC with labels gets one add per key, in key order, with / escaped as ~1": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Annotation("owner", "team-a").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels/recurring-job-group.longhorn.io~1critical", "enabled"),
					addOp("/metadata/labels/recurring-job.longhorn.io~1daily", "enabled"),
					addOp("/metadata/labels/recurring-job.longhorn.io~1source", "enabled"),
					addOp("/metadata/annotations/backupguard.io~1managed-labels",
						"recurring-job-group.longhorn.io/critical,recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source"),
				},
				Labels: map[string]string{
					"app": "postgres",
					"recurring-job-group.longhorn.io/critical": "enabled",
					"recurring-job.longhorn.io/daily":          "enabled",
					"recurring-job.longhorn.io/source":         "enabled",
				},
			},
		},
		"a PVC labelled already gets no patch and keeps its labels": {
			config: rulesConfig(databasesRule()),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").
				Label(criticalLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{Labels: map[string]string{
				"app": "postgres", criticalLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled",
			}},
		},
		"a managed label a person removed is added back": {
			config: rulesConfig(databasesRule()),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label(criticalLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{addOp(dailyPath, "enabled")},
				Labels: databasesLabels(),
			},
		},
		"a desired label a person set to enabled stays theirs: it is not added to the annotation": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(criticalPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: criticalLabel + "," + sourceLabel}),
				},
				Labels: databasesLabels(),
			},
		},
		"a PVC with nil labels and nil annotations that no rule matches gets nothing": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"a PVC with empty label and annotation maps gets per-key adds": {
			config: rulesConfig(dailyRule(LabelMatch{})),
			pvc: func() *corev1.PersistentVolumeClaim {
				pvc := makePVC("db", "data").StorageClass("longhorn").Obj()
				pvc.Labels, pvc.Annotations = map[string]string{}, map[string]string{}
				return pvc
			}(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp(managedPath, dailyLabel+","+sourceLabel),
				},
				Labels: map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},

		// Which PVCs are Longhorn's.
		"a PVC with backupguard.io/skip true is left alone, even a recurring label Longhorn ignores": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "yes").Annotation(SkipAnnotation, "true").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{Labels: map[string]string{weeklyLabel: "yes"}},
		},
		"backupguard.io/skip with another value than true does not skip": {
			config: rulesConfig(dailyRule(LabelMatch{})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Annotation(SkipAnnotation, "yes").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels", map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"}),
					addOp(managedPath, dailyLabel+","+sourceLabel),
				},
				Labels: map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a PVC of another provisioner gets nothing": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("local").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: makeStorageClass("local", "rancher.io/local-path")},
			want:   LabelDecision{},
		},
		"a PVC with no StorageClass and no bound PV gets nothing and no warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want:   LabelDecision{},
		},
		"a statically bound PVC of a Longhorn PV is labelled": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("").VolumeName("pv-static").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, BoundPVDriver: longhorn.CSIDriver},
			want:   labelledWithDatabases(),
		},
		"a statically bound PVC of another CSI driver gets nothing": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("").VolumeName("pv-nfs").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, BoundPVDriver: "nfs.csi.k8s.io"},
			want:   LabelDecision{},
		},
		"the StorageClass decides before the bound PV's driver": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("local").VolumeName("pv-1").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true,
				StorageClass: makeStorageClass("local", "rancher.io/local-path"), BoundPVDriver: longhorn.CSIDriver},
			want: LabelDecision{},
		},
		"a PVC naming a StorageClass that does not exist is left without labels, with a warning that they were left as they are": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want:   LabelDecision{Warnings: []string{storageClassGoneWarning}},
		},
		"a PVC naming a StorageClass that does not exist keeps the labels backupguard added and the annotation, with a warning": {
			config: rulesConfig(databasesRule()),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label(criticalLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want: LabelDecision{
				Labels:   databasesLabels(),
				Warnings: []string{storageClassGoneWarning},
			},
		},
		"a PVC naming a StorageClass that does not exist keeps even a recurring label Longhorn ignores, with the one warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "yes").Label(goldLabel, "off").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want: LabelDecision{
				Labels:   map[string]string{weeklyLabel: "yes", goldLabel: "off"},
				Warnings: []string{storageClassGoneWarning},
			},
		},
		"without rules, a StorageClass that does not exist is not worth a warning": {
			pvc:  makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:  PVCEnvironment{Namespace: "db", NamespaceFound: true},
			want: LabelDecision{},
		},
		"offline, a StorageClass missing from the input is assumed to be Longhorn's, with a warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			want: LabelDecision{
				Patch:    labelledWithDatabases().Patch,
				Labels:   databasesLabels(),
				Warnings: []string{assumedLonghornWarning},
			},
		},
		"offline, a PVC naming no StorageClass is assumed to get a default StorageClass of Longhorn's, with a warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			want: LabelDecision{
				Patch:    labelledWithDatabases().Patch,
				Labels:   databasesLabels(),
				Warnings: []string{assumedDefaultWarning},
			},
		},
		"offline, the default StorageClass assumption names the configured provisioners, sorted": {
			config: LabelsConfig{Provisioners: []string{"rancher.io/local-path", "driver.longhorn.io"}, Rules: []LabelRule{databasesRule()}, KeepDefaultGroup: ptr.To(false)},
			pvc:    makePVC("db", "data").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			want: LabelDecision{
				Patch:  labelledWithDatabases().Patch,
				Labels: databasesLabels(),
				Warnings: []string{
					`no storageClassName and no default StorageClass in the input; assuming the cluster's default has one of the provisioners driver.longhorn.io, rancher.io/local-path`,
				},
			},
		},
		"offline, a PVC with storageClassName set to \"\" is still not Longhorn's": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			want:   LabelDecision{},
		},

		// Removing what backupguard added, and only that.
		"a rule no longer matching removes the labels in the annotation but the source label, which the annotation then lists alone, and not a hand-set label": {
			config: rulesConfig(LabelRule{Name: "databases", Match: LabelMatch{Namespaces: []string{"web"}}, Jobs: []string{"daily"}, Groups: []string{"critical"}}),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").
				Label(criticalLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Label(weeklyLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Annotation("owner", "team-a").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					removeOp(criticalPath), removeOp(dailyPath), replaceOp(managedPath, sourceLabel),
				},
				Labels: map[string]string{"app": "postgres", sourceLabel: "enabled", weeklyLabel: "enabled"},
			},
		},
		"the source label backupguard set stays when no rule matches any more": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(dailyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{sourceLabel: "enabled"},
			},
		},
		"the source label backupguard set and only it stays when no rule matches and there are no rules at all": {
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label(criticalLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(criticalPath), removeOp(dailyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{sourceLabel: "enabled"},
			},
		},
		"a rule that changes its job swaps the managed label and keeps the source label": {
			config: rulesConfig(LabelRule{Name: "databases", Jobs: []string{"weekly"}}),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					removeOp(dailyPath), addOp(weeklyPath, "enabled"),
					replaceOp(managedPath, sourceLabel+","+weeklyLabel),
				},
				Labels: map[string]string{sourceLabel: "enabled", weeklyLabel: "enabled"},
			},
		},
		"spaces and empty entries in the annotation are tolerated, and the annotation is rewritten without them": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, " recurring-job.longhorn.io/daily ,, recurring-job.longhorn.io/source,").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(dailyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{sourceLabel: "enabled"},
			},
		},
		"a key in the annotation that is not a recurring label is ignored, so that label is never removed": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label("app", "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, "app,"+dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(dailyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{"app": "enabled", sourceLabel: "enabled"},
			},
		},
		"a key in the annotation that is not a recurring label is dropped from it when a rule matches": {
			config: rulesConfig(dailyRule(LabelMatch{})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label("app", "enabled").
				Annotation(ManagedLabelsAnnotation, "app").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					replaceOp(managedPath, dailyLabel+","+sourceLabel),
				},
				Labels: map[string]string{"app": "enabled", dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a managed label a person set to disabled is not removed and, on a Longhorn PVC, is kept as written with a warning": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "disabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:    []jsonpatch.Operation{replaceOp(managedPath, sourceLabel)},
				Labels:   map[string]string{dailyLabel: "disabled", sourceLabel: "enabled"},
				Warnings: []string{`label recurring-job.longhorn.io/daily="disabled" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`},
			},
		},
		"a managed label a person changed to a value that does not mean off is not removed, but on a Longhorn PVC is set back to enabled": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "yes").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:    []jsonpatch.Operation{replaceOp(dailyPath, "enabled"), replaceOp(managedPath, sourceLabel)},
				Labels:   map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
				Warnings: []string{`label recurring-job.longhorn.io/daily="yes" was changed to "enabled": Longhorn ignores any other value`},
			},
		},
		"a managed label a person changed is kept as it is on a PVC no longer of a configured provisioner": {
			config: LabelsConfig{Provisioners: []string{"example.com/csi"}, Rules: []LabelRule{dailyRule(LabelMatch{})}},
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "disabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(sourcePath), removeOp(managedPath)},
				Labels: map[string]string{dailyLabel: "disabled"},
			},
		},
		"a still desired managed label a person set to disabled is kept as written, with a warning, and is no longer managed": {
			config: rulesConfig(dailyRule(LabelMatch{})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "disabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:    []jsonpatch.Operation{replaceOp(managedPath, sourceLabel)},
				Labels:   map[string]string{dailyLabel: "disabled", sourceLabel: "enabled"},
				Warnings: []string{`label recurring-job.longhorn.io/daily="disabled" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`},
			},
		},

		// Values Longhorn ignores.
		"a hand-set desired label with value true stays unmanaged and is corrected to enabled": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "true").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(criticalPath, "enabled"),
					replaceOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: criticalLabel + "," + sourceLabel}),
				},
				Labels:   databasesLabels(),
				Warnings: []string{`label recurring-job.longhorn.io/daily="true" was changed to "enabled": Longhorn ignores any other value`},
			},
		},
		"a hand-set recurring label no rule names is corrected on a Longhorn PVC": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "yes").Label(goldLabel, "").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass()},
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(criticalPath, "enabled"),
					replaceOp("/metadata/labels/recurring-job-group.longhorn.io~1gold", "enabled"),
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					replaceOp(weeklyPath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: managedByDatabases}),
				},
				Labels: map[string]string{
					criticalLabel: "enabled", goldLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled", weeklyLabel: "enabled",
				},
				Warnings: []string{
					`label recurring-job-group.longhorn.io/gold="" was changed to "enabled": Longhorn ignores any other value`,
					`label recurring-job.longhorn.io/weekly="yes" was changed to "enabled": Longhorn ignores any other value`,
				},
			},
		},
		"a hand-set recurring label is corrected on a Longhorn PVC even without rules": {
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "yes").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch:    []jsonpatch.Operation{replaceOp(weeklyPath, "enabled")},
				Labels:   map[string]string{weeklyLabel: "enabled"},
				Warnings: []string{`label recurring-job.longhorn.io/weekly="yes" was changed to "enabled": Longhorn ignores any other value`},
			},
		},
		"a hand-set recurring label with value off is left as is on a Longhorn PVC, with a warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "off").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(criticalPath, "enabled"),
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: managedByDatabases}),
				},
				Labels: map[string]string{
					criticalLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled", weeklyLabel: "off",
				},
				Warnings: []string{`label recurring-job.longhorn.io/weekly="off" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`},
			},
		},
		"a hand-set recurring label with value \"No \", spaces and capitals, is left as is on a Longhorn PVC, with a warning": {
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(goldLabel, "No ").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Labels:   map[string]string{goldLabel: "No "},
				Warnings: []string{`label recurring-job-group.longhorn.io/gold="No " has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`},
			},
		},
		"every value that means off, trimmed and in any case, is left as is, each with a warning": {
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label("recurring-job.longhorn.io/a", " Disabled").Label("recurring-job.longhorn.io/b", "FALSE").
				Label("recurring-job.longhorn.io/c", "no").Label("recurring-job.longhorn.io/d", "Off\t").
				Label("recurring-job.longhorn.io/e", "0").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Labels: map[string]string{
					"recurring-job.longhorn.io/a": " Disabled", "recurring-job.longhorn.io/b": "FALSE",
					"recurring-job.longhorn.io/c": "no", "recurring-job.longhorn.io/d": "Off\t",
					"recurring-job.longhorn.io/e": "0",
				},
				Warnings: []string{
					`label recurring-job.longhorn.io/a=" Disabled" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
					`label recurring-job.longhorn.io/b="FALSE" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
					`label recurring-job.longhorn.io/c="no" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
					`label recurring-job.longhorn.io/d="Off\t" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
					`label recurring-job.longhorn.io/e="0" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
				},
			},
		},
		"a hand-set recurring label is left alone on a PVC of another provisioner": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("local").Label(weeklyLabel, "yes").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: makeStorageClass("local", "rancher.io/local-path")},
			want:   LabelDecision{Labels: map[string]string{weeklyLabel: "yes"}},
		},
		"a label that only looks recurring is not corrected": {
			pvc:  makePVC("db", "data").StorageClass("longhorn").Label("recurring-job.longhorn.io", "yes").Label("example.com/recurring-job", "x").Obj(),
			env:  longhornEnv("db"),
			want: LabelDecision{Labels: map[string]string{"recurring-job.longhorn.io": "yes", "example.com/recurring-job": "x"}},
		},

		// Match criteria, one at a time.
		"namespaces select a PVC in a listed namespace": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web", "db"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledDaily(),
		},
		"namespaces reject a PVC in another namespace": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"namespaces use the request's namespace, not the object's": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc:    makePVC("web", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"a namespaceSelector selects a PVC whose Namespace has matching labels": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				NamespaceLabels: map[string]string{"backup": "yes", "team": "data"}},
			want: labelledDaily(),
		},
		"a namespaceSelector rejects a PVC whose Namespace has other labels": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				NamespaceLabels: map[string]string{"backup": "no"}},
			want: LabelDecision{},
		},
		"an empty namespaceSelector selects every known Namespace": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledDaily(),
		},
		"an unknown Namespace is selected by no namespaceSelector, not even an empty one, and is warned about": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    PVCEnvironment{Namespace: "db", StorageClass: longhornClass()},
			want:   LabelDecision{Warnings: []string{namespaceUnknownWarning}},
		},
		"an unknown Namespace is warned about when another rule matched and a namespaceSelector rule exists": {
			config: rulesConfig(
				LabelRule{Name: "by-namespace", Match: LabelMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}}, Jobs: []string{"weekly"}},
				databasesRule(),
			),
			pvc: makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", StorageClass: longhornClass()},
			want: LabelDecision{
				Patch:    labelledWithDatabases().Patch,
				Labels:   databasesLabels(),
				Warnings: []string{namespaceUnknownWarning},
			},
		},
		"an unknown Namespace is warned about when no rule matched and a namespaceSelector rule exists": {
			config: rulesConfig(
				LabelRule{Name: "by-namespace", Match: LabelMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}}, Jobs: []string{"weekly"}},
				dailyRule(LabelMatch{Namespaces: []string{"web"}}),
			),
			pvc:  makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:  PVCEnvironment{Namespace: "db", StorageClass: longhornClass()},
			want: LabelDecision{Warnings: []string{namespaceUnknownWarning}},
		},
		"an unknown Namespace is not warned about on a PVC of another provisioner, though a namespaceSelector rule exists": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{}})),
			pvc:    makePVC("db", "data").StorageClass("local").Obj(),
			env:    PVCEnvironment{Namespace: "db", StorageClass: makeStorageClass("local", "rancher.io/local-path")},
			want:   LabelDecision{},
		},
		"an unknown Namespace is not warned about when no rule has a namespaceSelector": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    PVCEnvironment{Namespace: "db", StorageClass: longhornClass()},
			want:   labelledWithDatabases(),
		},
		"a selector selects a PVC by its own labels": {
			config: rulesConfig(dailyRule(LabelMatch{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"postgres", "mysql"}},
			}}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: dailyLabel + "," + sourceLabel}),
				},
				Labels: map[string]string{"app": "postgres", dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a selector rejects a PVC with other labels": {
			config: rulesConfig(dailyRule(LabelMatch{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "postgres"}}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label("app", "redis").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{Labels: map[string]string{"app": "redis"}},
		},
		"a selector does not look at the Namespace's labels": {
			config: rulesConfig(dailyRule(LabelMatch{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "postgres"}}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				NamespaceLabels: map[string]string{"app": "postgres"}},
			want: LabelDecision{},
		},
		"storageClassNames select a PVC by spec.storageClassName": {
			config: rulesConfig(dailyRule(LabelMatch{StorageClassNames: []string{"longhorn"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledDaily(),
		},
		"storageClassNames reject a PVC of another Longhorn StorageClass": {
			config: rulesConfig(dailyRule(LabelMatch{StorageClassNames: []string{"longhorn-fast"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"storageClassNames select a PVC by the legacy beta annotation": {
			config: rulesConfig(dailyRule(LabelMatch{StorageClassNames: []string{"fast"}})),
			pvc:    makePVC("db", "data").Annotation("volume.beta.kubernetes.io/storage-class", "fast").Obj(),
			env:    PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: makeStorageClass("fast", longhorn.CSIDriver)},
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels", map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"}),
					addOp(managedPath, dailyLabel+","+sourceLabel),
				},
				Labels: map[string]string{dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"spec.storageClassName wins over the legacy annotation": {
			config: rulesConfig(dailyRule(LabelMatch{StorageClassNames: []string{"fast"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Annotation("volume.beta.kubernetes.io/storage-class", "fast").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"pvcs select a PVC by namespace/name": {
			config: rulesConfig(dailyRule(LabelMatch{PVCs: []string{"web/data", "db/data"}})),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledDaily(),
		},
		"pvcs reject a PVC of another name": {
			config: rulesConfig(dailyRule(LabelMatch{PVCs: []string{"db/data"}})),
			pvc:    makePVC("db", "logs").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"pvcs reject a PVC of the same name in another namespace": {
			config: rulesConfig(dailyRule(LabelMatch{PVCs: []string{"db/data"}})),
			pvc:    makePVC("web", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("web"),
			want:   LabelDecision{},
		},
		"pvcs use the request's namespace, not the object's": {
			config: rulesConfig(dailyRule(LabelMatch{PVCs: []string{"db/data"}})),
			pvc:    makePVC("", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   labelledDaily(),
		},
		"pvcs never select a PVC without a name, as with generateName": {
			config: rulesConfig(dailyRule(LabelMatch{PVCs: []string{"db/data"}})),
			pvc:    makePVC("db", "").GenerateName("data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want:   LabelDecision{},
		},
		"a rule with every criterion selects a PVC that meets them all": {
			config: rulesConfig(everyCriterionRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				NamespaceLabels: map[string]string{"backup": "yes"}},
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(dailyPath, "enabled"),
					addOp(sourcePath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: dailyLabel + "," + sourceLabel}),
				},
				Labels: map[string]string{"app": "postgres", dailyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a rule with every criterion rejects a PVC that misses one": {
			config: rulesConfig(everyCriterionRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				NamespaceLabels: map[string]string{"backup": "no"}},
			want: LabelDecision{Labels: map[string]string{"app": "postgres"}},
		},

		// Several rules.
		"two matching rules merge their jobs and groups": {
			config: rulesConfig(
				databasesRule(),
				LabelRule{Name: "gold", Match: LabelMatch{Namespaces: []string{"db"}}, Jobs: []string{"weekly", "daily"}, Groups: []string{"gold"}},
				LabelRule{Name: "web", Match: LabelMatch{Namespaces: []string{"web"}}, Jobs: []string{"hourly"}},
			),
			pvc: makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels", map[string]string{
						criticalLabel: "enabled", goldLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled", weeklyLabel: "enabled",
					}),
					addOp("/metadata/annotations", map[string]string{
						ManagedLabelsAnnotation: "recurring-job-group.longhorn.io/critical,recurring-job-group.longhorn.io/gold,recurring-job.longhorn.io/daily,recurring-job.longhorn.io/source,recurring-job.longhorn.io/weekly",
					}),
				},
				Labels: map[string]string{
					criticalLabel: "enabled", goldLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled", weeklyLabel: "enabled",
				},
			},
		},

		// Jobs and groups nobody runs.
		"a matched rule naming an unknown job and group is warned about, once each, in rule order": {
			config: rulesConfig(
				LabelRule{Name: "databases", Jobs: []string{"daily", "hourly"}, Groups: []string{"critical", "gold"}},
				LabelRule{Name: "web", Match: LabelMatch{Namespaces: []string{"web"}}, Jobs: []string{"never-run"}},
				LabelRule{Name: "more", Jobs: []string{"nightly"}},
			),
			pvc: makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				KnownJobs: sets.New("daily", "weekly"), KnownGroups: sets.New("critical")},
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels", map[string]string{
						criticalLabel: "enabled", goldLabel: "enabled", dailyLabel: "enabled",
						"recurring-job.longhorn.io/hourly": "enabled", "recurring-job.longhorn.io/nightly": "enabled", sourceLabel: "enabled",
					}),
					addOp("/metadata/annotations", map[string]string{
						ManagedLabelsAnnotation: "recurring-job-group.longhorn.io/critical,recurring-job-group.longhorn.io/gold,recurring-job.longhorn.io/daily,recurring-job.longhorn.io/hourly,recurring-job.longhorn.io/nightly,recurring-job.longhorn.io/source",
					}),
				},
				Labels: map[string]string{
					criticalLabel: "enabled", goldLabel: "enabled", dailyLabel: "enabled",
					"recurring-job.longhorn.io/hourly": "enabled", "recurring-job.longhorn.io/nightly": "enabled", sourceLabel: "enabled",
				},
				Warnings: []string{
					`rule "databases" names recurring job "hourly", but no RecurringJob has that name: nothing will run for it`,
					`rule "databases" names group "gold", but no RecurringJob is in that group: nothing will run for it`,
					`rule "more" names recurring job "nightly", but no RecurringJob has that name: nothing will run for it`,
				},
			},
		},
		"empty sets of known jobs and groups make every name unknown": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				KnownJobs: sets.New[string](), KnownGroups: sets.New[string]()},
			want: LabelDecision{
				Patch:  labelledWithDatabases().Patch,
				Labels: databasesLabels(),
				Warnings: []string{
					`rule "databases" names recurring job "daily", but no RecurringJob has that name: nothing will run for it`,
					`rule "databases" names group "critical", but no RecurringJob is in that group: nothing will run for it`,
				},
			},
		},
		"known jobs and groups that cover the rule give no warning": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env: PVCEnvironment{Namespace: "db", NamespaceFound: true, StorageClass: longhornClass(),
				KnownJobs: sets.New("daily"), KnownGroups: sets.New("critical")},
			want: labelledWithDatabases(),
		},
		"nil known jobs and groups turn the warnings off": {
			config: rulesConfig(LabelRule{Name: "databases", Jobs: []string{"hourly"}, Groups: []string{"gold"}}),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp("/metadata/labels", map[string]string{goldLabel: "enabled", "recurring-job.longhorn.io/hourly": "enabled", sourceLabel: "enabled"}),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: "recurring-job-group.longhorn.io/gold,recurring-job.longhorn.io/hourly,recurring-job.longhorn.io/source"}),
				},
				Labels: map[string]string{goldLabel: "enabled", "recurring-job.longhorn.io/hourly": "enabled", sourceLabel: "enabled"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := compileRules(t, tc.config)
			before := tc.pvc.DeepCopy()
			got := DecidePVCLabels(tc.pvc, tc.env, rules)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecidePVCLabels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.pvc); diff != "" {
				t.Errorf("DecidePVCLabels changed its input (-before +after):\n%s", diff)
			}
		})
	}
}

func everyCriterionRule() LabelRule {
	return dailyRule(LabelMatch{
		Namespaces:        []string{"db"},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}},
		Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"app": "postgres"}},
		StorageClassNames: []string{"longhorn"},
		PVCs:              []string{"db/data"},
	})
}

// TestDecidePVCLabelsIsIdempotent applies each decision's patch and decides again: the second decision
// must change nothing, end with the same labels and give exactly wantSecondWarnings (what stays true of
// the PVC, such as a label that has no effect).
func TestDecidePVCLabelsIsIdempotent(t *testing.T) {
	cases := map[string]struct {
		config             LabelsConfig
		pvc                *corev1.PersistentVolumeClaim
		env                PVCEnvironment
		wantSecondWarnings []string
	}{
		"a fresh PVC": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Obj(),
			env:    longhornEnv("db"),
		},
		"a PVC with other labels and annotations": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Annotation("owner", "team-a").Obj(),
			env:    longhornEnv("db"),
		},
		"a PVC losing its managed labels": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
		},
		"a PVC whose hand-set labels are corrected": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "true").Label(weeklyLabel, "yes").Obj(),
			env:    longhornEnv("db"),
		},
		"a PVC whose managed label a person set to disabled keeps it, with the same warning each time": {
			config: rulesConfig(dailyRule(LabelMatch{})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "disabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env:                longhornEnv("db"),
			wantSecondWarnings: []string{`label recurring-job.longhorn.io/daily="disabled" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`},
		},
		"a PVC whose managed label a person changed to a value that does not mean off": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "yes").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
		},
		"a PVC keeping only the source label once no rule matches, beside a hand-set label": {
			config: rulesConfig(LabelRule{Name: "databases", Match: LabelMatch{Namespaces: []string{"web"}}, Jobs: []string{"daily"}, Groups: []string{"critical"}}),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label(criticalLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Label(weeklyLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, managedByDatabases).Obj(),
			env: longhornEnv("db"),
		},
		"a PVC whose hand-set labels mean off": {
			config: rulesConfig(databasesRule()),
			pvc:    makePVC("db", "data").StorageClass("longhorn").Label(weeklyLabel, "off").Label(goldLabel, "No ").Obj(),
			env:    longhornEnv("db"),
			wantSecondWarnings: []string{
				`label recurring-job-group.longhorn.io/gold="No " has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
				`label recurring-job.longhorn.io/weekly="off" has no effect: Longhorn only honours "enabled"; remove the label to leave the job out`,
			},
		},
		"a PVC whose annotation lists a label that is not a recurring one": {
			config: rulesConfig(dailyRule(LabelMatch{Namespaces: []string{"web"}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").
				Label("app", "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, "app,"+dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
		},
		"a PVC naming a StorageClass that does not exist": {
			config: rulesConfig(databasesRule()),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(weeklyLabel, "yes").
				Annotation(ManagedLabelsAnnotation, dailyLabel).Obj(),
			env:                PVCEnvironment{Namespace: "db", NamespaceFound: true},
			wantSecondWarnings: []string{storageClassGoneWarning},
		},
		"offline, a PVC naming no StorageClass": {
			config:             rulesConfig(databasesRule()),
			pvc:                makePVC("db", "data").Obj(),
			env:                PVCEnvironment{Namespace: "db", NamespaceFound: true, Offline: true},
			wantSecondWarnings: []string{assumedDefaultWarning},
		},
		"a PVC in an unknown Namespace that no rule matches": {
			config: rulesConfig(dailyRule(LabelMatch{NamespaceSelector: &metav1.LabelSelector{}})),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env:                PVCEnvironment{Namespace: "db", StorageClass: longhornClass()},
			wantSecondWarnings: []string{namespaceUnknownWarning},
		},
		"a PVC whose job changed": {
			config: rulesConfig(LabelRule{Name: "databases", Jobs: []string{"weekly"}}),
			pvc: makePVC("db", "data").StorageClass("longhorn").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, dailyLabel+","+sourceLabel).Obj(),
			env: longhornEnv("db"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := compileRules(t, tc.config)
			first := DecidePVCLabels(tc.pvc, tc.env, rules)
			patched := applyMetadataPatch(t, tc.pvc, first.Patch)
			if diff := cmp.Diff(first.Labels, patched.Labels); diff != "" {
				t.Errorf("labels after applying the patch differ from the decision's (-decision +patched):\n%s", diff)
			}
			second := DecidePVCLabels(patched, tc.env, rules)
			if diff := cmp.Diff(LabelDecision{Labels: first.Labels, Warnings: tc.wantSecondWarnings}, second); diff != "" {
				t.Errorf("second decision (-want +got):\n%s", diff)
			}
		})
	}
}

// applyMetadataPatch applies the operations DecidePVCLabels makes to a copy of pvc, with RFC 6902's
// rules: adding a key needs the map to exist, replacing or removing one needs the key.
func applyMetadataPatch(t *testing.T, pvc *corev1.PersistentVolumeClaim, patch []jsonpatch.Operation) *corev1.PersistentVolumeClaim {
	t.Helper()
	out := pvc.DeepCopy()
	unescape := strings.NewReplacer("~1", "/", "~0", "~")
	for _, op := range patch {
		var target *map[string]string
		var rest string
		switch {
		case strings.HasPrefix(op.Path, "/metadata/labels"):
			target, rest = &out.Labels, strings.TrimPrefix(op.Path, "/metadata/labels")
		case strings.HasPrefix(op.Path, "/metadata/annotations"):
			target, rest = &out.Annotations, strings.TrimPrefix(op.Path, "/metadata/annotations")
		default:
			t.Fatalf("unexpected patch path %q", op.Path)
		}
		if rest == "" {
			value, ok := op.Value.(map[string]string)
			if op.Operation != "add" || !ok || *target != nil {
				t.Fatalf("cannot apply %+v to %v", op, *target)
			}
			*target = maps.Clone(value)
			continue
		}
		key, ok := strings.CutPrefix(rest, "/")
		if !ok || *target == nil {
			t.Fatalf("cannot apply %+v to %v", op, *target)
		}
		key = unescape.Replace(key)
		_, exists := (*target)[key]
		switch op.Operation {
		case "add":
			(*target)[key] = op.Value.(string)
		case "replace":
			if !exists {
				t.Fatalf("replace of missing key %q", key)
			}
			(*target)[key] = op.Value.(string)
		case "remove":
			if !exists {
				t.Fatalf("remove of missing key %q", key)
			}
			delete(*target, key)
		default:
			t.Fatalf("unexpected operation %+v", op)
		}
	}
	return out
}

// volumeBuilder makes Longhorn Volumes for tests.
type volumeBuilder struct{ volume longhorn.Volume }

func makeVolume(name string) *volumeBuilder {
	return &volumeBuilder{volume: longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "longhorn-system"}}}
}

func (b *volumeBuilder) Label(key, value string) *volumeBuilder {
	if b.volume.Labels == nil {
		b.volume.Labels = map[string]string{}
	}
	b.volume.Labels[key] = value
	return b
}

func (b *volumeBuilder) ResourceVersion(version string) *volumeBuilder {
	b.volume.ResourceVersion = version
	return b
}

func (b *volumeBuilder) Obj() *longhorn.Volume {
	out := &longhorn.Volume{}
	b.volume.DeepCopyInto(out)
	return out
}

func TestDecideVolumeLabels(t *testing.T) {
	const volumeName = "pvc-0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b"
	cases := map[string]struct {
		volume *longhorn.Volume
		pvc    *corev1.PersistentVolumeClaim
		want   LabelDecision
	}{
		"the Volume of a source PVC gets exactly the PVC's recurring job and group labels": {
			volume: makeVolume(volumeName).Label("longhornvolume", volumeName).
				Label(weeklyLabel, "enabled").Label(defaultGroupLabel, "enabled").Obj(),
			pvc: makePVC("db", "data").Label("app", "postgres").
				Label(dailyLabel, "enabled").Label(criticalLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(criticalPath, "enabled"),
					removeOp(defaultGroupPath),
					addOp(dailyPath, "enabled"),
					removeOp(weeklyPath),
				},
				Labels: map[string]string{"longhornvolume": volumeName, criticalLabel: "enabled", dailyLabel: "enabled"},
			},
		},
		"a Volume without labels gets the source PVC's labels whole": {
			volume: makeVolume(volumeName).Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{addOp("/metadata/labels", map[string]string{dailyLabel: "enabled"})},
				Labels: map[string]string{dailyLabel: "enabled"},
			},
		},
		"a Volume with the source PVC's labels already gets no patch": {
			volume: makeVolume(volumeName).Label("longhornvolume", volumeName).Label(dailyLabel, "enabled").Label(criticalLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Label(criticalLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Labels: map[string]string{"longhornvolume": volumeName, criticalLabel: "enabled", dailyLabel: "enabled"},
			},
		},
		"a Volume keeps a source label of its own": {
			volume: makeVolume(volumeName).Label(sourceLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{addOp(dailyPath, "enabled")},
				Labels: map[string]string{sourceLabel: "enabled", dailyLabel: "enabled"},
			},
		},
		"a PVC that is not a source changes nothing": {
			volume: makeVolume(volumeName).Label(weeklyLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Obj(),
			want:   LabelDecision{Labels: map[string]string{weeklyLabel: "enabled"}},
		},
		"a source label with another value than enabled is no source": {
			volume: makeVolume(volumeName).Label(weeklyLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "true").Obj(),
			want:   LabelDecision{Labels: map[string]string{weeklyLabel: "enabled"}},
		},
		"no PVC changes nothing": {
			volume: makeVolume(volumeName).Label(weeklyLabel, "enabled").Obj(),
			want:   LabelDecision{Labels: map[string]string{weeklyLabel: "enabled"}},
		},
		"no PVC and no labels changes nothing": {
			volume: makeVolume("my-volume").Obj(),
			want:   LabelDecision{},
		},
		"a source PVC without jobs or groups leaves the Volume the default group Longhorn gave it": {
			volume: makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Label(weeklyLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(weeklyPath)},
				Labels: map[string]string{defaultGroupLabel: "enabled"},
			},
		},
		"a source PVC without jobs or groups removes every recurring label of a Volume without the default group": {
			volume: makeVolume(volumeName).Label(weeklyLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(weeklyPath)},
				Labels: map[string]string{},
			},
		},
		"a source PVC without jobs or groups and a Volume without labels change nothing": {
			volume: makeVolume(volumeName).Obj(),
			pvc:    makePVC("db", "data").Label(sourceLabel, "enabled").Obj(),
			want:   LabelDecision{},
		},
		"a source PVC naming the default group keeps it on the Volume": {
			volume: makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Obj(),
			pvc:    makePVC("db", "data").Label(defaultGroupLabel, "enabled").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{addOp(dailyPath, "enabled")},
				Labels: map[string]string{defaultGroupLabel: "enabled", dailyLabel: "enabled"},
			},
		},
		"a recurring label whose value differs is replaced with the PVC's": {
			volume: makeVolume(volumeName).Label(dailyLabel, "disabled").Obj(),
			pvc:    makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj(),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{replaceOp(dailyPath, "enabled")},
				Labels: map[string]string{dailyLabel: "enabled"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.volume.DeepCopyObject()
			got := DecideVolumeLabels(tc.volume, tc.pvc)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecideVolumeLabels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.volume); diff != "" {
				t.Errorf("DecideVolumeLabels changed the Volume (-before +after):\n%s", diff)
			}
		})
	}
}

func (b *volumeBuilder) KubernetesStatus(status longhorn.KubernetesStatus) *volumeBuilder {
	b.volume.Status.KubernetesStatus = status
	return b
}

func makePV(name string, claimRef *corev1.ObjectReference) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{ClaimRef: claimRef}}
}

func TestVolumeBoundToPVC(t *testing.T) {
	const (
		uid      = "0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b"
		newerUID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	)
	pvc := func(uid string) *corev1.PersistentVolumeClaim {
		claim := makePVC("db", "data-db-0").Obj()
		claim.UID = types.UID(uid)
		return claim
	}
	claimedBy := func(uid string) *corev1.PersistentVolume {
		return makePV("static-pv", &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "db", Name: "data-db-0", UID: types.UID(uid)})
	}
	bound := longhorn.KubernetesStatus{PVName: "static-pv", PVStatus: "Bound", Namespace: "db", PVCName: "data-db-0"}
	released := bound
	released.PVStatus, released.LastPVCRefAt = "Released", "2026-11-20T10:00:00Z"
	cases := map[string]struct {
		volume *longhorn.Volume
		pvc    *corev1.PersistentVolumeClaim
		pv     *corev1.PersistentVolume
		want   bool
	}{
		"a Volume named pvc-<uid> belongs to the PVC of that uid, before any PV exists": {
			volume: makeVolume("pvc-" + uid).Obj(), pvc: pvc(uid), want: true,
		},
		"a Volume named pvc-<uid> does not belong to a PVC of another uid": {
			volume: makeVolume("pvc-" + uid).Obj(), pvc: pvc(newerUID), want: false,
		},
		"a static Volume belongs to the PVC its kubernetesStatus names when that PVC claims the PV": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid), pv: claimedBy(uid), want: true,
		},
		"a Released Volume (lastPVCRefAt set) belongs to no PVC, even the one it was bound to": {
			volume: makeVolume("static").KubernetesStatus(released).Obj(), pvc: pvc(uid), pv: claimedBy(uid), want: false,
		},
		"a PVC recreated with the same name is not the Volume's: the PV is claimed by the old uid": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(newerUID), pv: claimedBy(uid), want: false,
		},
		"a Volume named pvc-<old uid> whose status still names the PVC is not the recreated PVC's": {
			volume: makeVolume("pvc-" + uid).KubernetesStatus(released).Obj(), pvc: pvc(newerUID), pv: claimedBy(uid), want: false,
		},
		"without the PV the status alone does not bind": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid), want: false,
		},
		"a PV other than the one the status names does not bind": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid),
			pv: makePV("other-pv", &corev1.ObjectReference{Namespace: "db", Name: "data-db-0", UID: types.UID(uid)}), want: false,
		},
		"a PV pre-bound by a claimRef without a uid binds the PVC it names, as Kubernetes binds it": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid), pv: claimedBy(""), want: true,
		},
		"a PV claimed by another PVC name does not bind": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid),
			pv: makePV("static-pv", &corev1.ObjectReference{Namespace: "db", Name: "data-db-1", UID: types.UID(uid)}), want: false,
		},
		"a PV without a claimRef does not bind": {
			volume: makeVolume("static").KubernetesStatus(bound).Obj(), pvc: pvc(uid), pv: makePV("static-pv", nil), want: false,
		},
		"a PV claimed by the PVC whose CSI volume handle is the Volume binds before Longhorn fills kubernetesStatus": {
			volume: makeVolume("static").Obj(), pvc: pvc(uid),
			pv: func() *corev1.PersistentVolume {
				pv := claimedBy(uid)
				pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: "static"}
				return pv
			}(), want: true,
		},
		"a Volume with no kubernetesStatus and another name belongs to no PVC": {
			volume: makeVolume("static").Obj(), pvc: pvc(uid), pv: claimedBy(uid), want: false,
		},
		"no PVC is no binding": {
			volume: makeVolume("pvc-" + uid).Obj(), want: false,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := VolumeBoundToPVC(tc.volume, tc.pvc, tc.pv); got != tc.want {
				t.Errorf("VolumeBoundToPVC = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPVCUIDOfVolume(t *testing.T) {
	type result struct {
		UID string
		OK  bool
	}
	cases := map[string]struct {
		volumeName string
		want       result
	}{
		"a dynamically provisioned Volume's name holds its PVC's UID": {
			volumeName: "pvc-0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b",
			want:       result{UID: "0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b", OK: true},
		},
		"a name without the pvc- prefix gives no UID": {
			volumeName: "my-volume",
			want:       result{},
		},
		"a pvc- name too short for a UID gives no UID": {
			volumeName: "pvc-short",
			want:       result{},
		},
		"a pvc- name one character too long for a UID gives no UID": {
			volumeName: "pvc-0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6bc",
			want:       result{},
		},
		"the prefix is case-sensitive: PVC- gives no UID": {
			volumeName: "PVC-0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b",
			want:       result{},
		},
		"a pvc- name with 36 characters that are not a UUID gives no UID": {
			volumeName: "pvc-0b6f3a57x8c1e-4d2a-9f3b-2c8d1e4f5a6b",
			want:       result{},
		},
		"a pvc- name with 36 hex digits and no dashes gives no UID": {
			volumeName: "pvc-0b6f3a578c1e4d2a9f3b2c8d1e4f5a6b0000",
			want:       result{},
		},
		"a pvc- name with an upper-case UUID gives no UID": {
			volumeName: "pvc-0B6F3A57-8C1E-4D2A-9F3B-2C8D1E4F5A6B",
			want:       result{},
		},
		"an empty name is no PVC's": {},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			uid, ok := PVCUIDOfVolume(tc.volumeName)
			if diff := cmp.Diff(tc.want, result{UID: uid, OK: ok}); diff != "" {
				t.Errorf("PVCUIDOfVolume(%q) (-want +got):\n%s", tc.volumeName, diff)
			}
		})
	}
}

// BenchmarkDecidePVCLabels decides for a PVC that 3 of 20 rules of mixed criteria match.
func BenchmarkDecidePVCLabels(b *testing.B) {
	var config LabelsConfig
	for i := range 20 {
		rule := LabelRule{Name: fmt.Sprintf("rule-%02d", i), Jobs: []string{fmt.Sprintf("job-%02d", i)}}
		if i%2 == 0 {
			rule.Groups = []string{fmt.Sprintf("group-%02d", i%5)}
		}
		switch i % 5 {
		case 0:
			rule.Match.Namespaces = []string{fmt.Sprintf("team-%02d", i), "shared"}
		case 1:
			rule.Match.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": fmt.Sprintf("tier-%02d", i)}}
		case 2:
			rule.Match.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{fmt.Sprintf("app-%02d", i), "other"}},
			}}
		case 3:
			rule.Match.StorageClassNames = []string{fmt.Sprintf("class-%02d", i)}
		case 4:
			rule.Match.PVCs = []string{fmt.Sprintf("team-%02d/data", i)}
		}
		config.Rules = append(config.Rules, rule)
	}
	// The PVC below is matched by rule-00 (namespaces), rule-01 (namespaceSelector) and rule-02 (selector).
	rules := compileRules(b, config)
	pvc := makePVC("team-00", "data").StorageClass("longhorn").Label("app", "app-02").Label("team", "a").
		Annotation("owner", "team-a").Obj()
	env := PVCEnvironment{
		Namespace: "team-00", NamespaceFound: true, NamespaceLabels: map[string]string{"tier": "tier-01"},
		StorageClass: longhornClass(),
		KnownJobs:    sets.New("job-00", "job-01", "job-02"), KnownGroups: sets.New("group-00", "group-02"),
	}
	decision := DecidePVCLabels(pvc, env, rules)
	// 3 jobs, 2 groups, the source label, Longhorn's default group kept, and the PVC's own 2.
	if want := 3 + 2 + 1 + 1 + 2; len(decision.Labels) != want {
		b.Fatalf("the PVC ends with %d labels, want %d: %v", len(decision.Labels), want, decision.Labels)
	}
	b.ReportAllocs()
	for b.Loop() {
		DecidePVCLabels(pvc, env, rules)
	}
}

func TestDefaultStorageClass(t *testing.T) {
	class := func(name string, created int, annotations map[string]string) *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations,
			CreationTimestamp: metav1.NewTime(time.Date(2026, time.January, created, 0, 0, 0, 0, time.UTC))}, Provisioner: longhorn.CSIDriver}
	}
	isDefault := map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	cases := map[string]struct {
		classes []*storagev1.StorageClass
		want    string
	}{
		"no class marked default gives none": {
			classes: []*storagev1.StorageClass{class("longhorn", 1, nil)},
		},
		"the one marked default is chosen": {
			classes: []*storagev1.StorageClass{class("local", 1, nil), class("longhorn", 2, isDefault)},
			want:    "longhorn",
		},
		"the beta annotation marks a default too": {
			classes: []*storagev1.StorageClass{class("longhorn", 1, map[string]string{"storageclass.beta.kubernetes.io/is-default-class": "true"})},
			want:    "longhorn",
		},
		"of two defaults the newest is chosen": {
			classes: []*storagev1.StorageClass{class("newer", 5, isDefault), class("older", 1, isDefault)},
			want:    "newer",
		},
		"of two defaults made at the same time the first by name is chosen": {
			classes: []*storagev1.StorageClass{class("b", 1, isDefault), class("a", 1, isDefault)},
			want:    "a",
		},
		"a value other than true does not mark a default": {
			classes: []*storagev1.StorageClass{class("longhorn", 1, map[string]string{"storageclass.kubernetes.io/is-default-class": "yes"})},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ""
			if chosen := DefaultStorageClass(tc.classes); chosen != nil {
				got = chosen.Name
			}
			if got != tc.want {
				t.Errorf("DefaultStorageClass = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDecidePVCLabelsKeepsTheVolumesOwnLabels: once a PVC is a source, Longhorn makes its Volume's
// recurring labels exactly the PVC's, so the labels the Volume has of its own, and Longhorn's default
// group, must be on the PVC before backupguard makes it a source. Each decision, applied, is decided
// again with the same facts and must then change nothing.
func TestDecidePVCLabelsKeepsTheVolumesOwnLabels(t *testing.T) {
	const (
		volumeName  = "pvc-0b6f3a57-8c1e-4d2a-9f3b-2c8d1e4f5a6b"
		hourlyLabel = "recurring-job.longhorn.io/snap-hourly"
		byHandLabel = "recurring-job.longhorn.io/by-hand"
	)
	weeklyRule := LabelRule{Name: "weekly", Jobs: []string{"weekly"}}
	keep := LabelsConfig{Rules: []LabelRule{weeklyRule}}
	dropDefault := LabelsConfig{Rules: []LabelRule{weeklyRule}, KeepDefaultGroup: ptr.To(false)}
	withSelector := func(selector string) PVCEnvironment {
		env := longhornEnv("db")
		env.StorageClass.Parameters = map[string]string{"recurringJobSelector": selector}
		return env
	}
	withVolume := func(volume *longhorn.Volume) PVCEnvironment {
		env := longhornEnv("db")
		env.Volume = volume
		return env
	}
	newPVC := func() *pvcBuilder { return makePVC("db", "data").StorageClass("longhorn") }
	boundPVC := func() *pvcBuilder { return newPVC().VolumeName(volumeName) }
	added := func(labels map[string]string, managed ...string) LabelDecision {
		return LabelDecision{
			Patch: []jsonpatch.Operation{
				addOp("/metadata/labels", labels),
				addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: strings.Join(managed, ",")}),
			},
			Labels: labels,
		}
	}
	cases := map[string]struct {
		config LabelsConfig
		pvc    *corev1.PersistentVolumeClaim
		env    PVCEnvironment
		want   LabelDecision
	}{
		// Item 1: the Volume's own labels.
		"a new PVC made a source takes the jobs and groups its StorageClass's recurringJobSelector gives the Volume, unmanaged": {
			config: keep,
			pvc:    newPVC().Obj(),
			env:    withSelector(`[{"name":"snap-hourly","isGroup":false},{"name":"gold","isGroup":true}]`),
			want: added(map[string]string{weeklyLabel: "enabled", hourlyLabel: "enabled", goldLabel: "enabled", sourceLabel: "enabled"},
				sourceLabel, weeklyLabel),
		},
		"a PVC whose Volume has labels of its own takes its enabled job and group labels, unmanaged, when it becomes a source": {
			config: keep,
			pvc:    boundPVC().Obj(),
			env: withVolume(makeVolume(volumeName).Label("longhornvolume", volumeName).Label(hourlyLabel, "enabled").
				Label(goldLabel, "enabled").Label(dailyLabel, "disabled").Obj()),
			want: added(map[string]string{weeklyLabel: "enabled", hourlyLabel: "enabled", goldLabel: "enabled", sourceLabel: "enabled"},
				sourceLabel, weeklyLabel),
		},
		"a bound PVC takes the Volume's labels, not its StorageClass's": {
			config: keep,
			pvc:    boundPVC().Obj(),
			env: func() PVCEnvironment {
				env := withSelector(`[{"name":"gold","isGroup":true}]`)
				env.Volume = makeVolume(volumeName).Label(hourlyLabel, "enabled").Obj()
				return env
			}(),
			want: added(map[string]string{weeklyLabel: "enabled", hourlyLabel: "enabled", sourceLabel: "enabled"}, sourceLabel, weeklyLabel),
		},
		"a label the rule gives too stays the Volume's own: unmanaged": {
			config: keep,
			pvc:    boundPVC().Obj(),
			env:    withVolume(makeVolume(volumeName).Label(weeklyLabel, "enabled").Obj()),
			want:   added(map[string]string{weeklyLabel: "enabled", sourceLabel: "enabled"}, sourceLabel),
		},
		"once the PVC is a source, a label only its Volume has is not taken: Longhorn copies the PVC": {
			config: keep,
			pvc: boundPVC().Label(weeklyLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, sourceLabel+","+weeklyLabel).Label(hourlyLabel, "enabled").Obj(),
			env:  withVolume(makeVolume(volumeName).Label(weeklyLabel, "enabled").Label(hourlyLabel, "enabled").Label(byHandLabel, "enabled").Obj()),
			want: LabelDecision{Labels: map[string]string{weeklyLabel: "enabled", hourlyLabel: "enabled", sourceLabel: "enabled"}},
		},
		"labels taken from the Volume are never removed: when no rule matches any more only the managed job goes": {
			config: rulesConfig(LabelRule{Name: "weekly", Match: LabelMatch{Namespaces: []string{"web"}}, Jobs: []string{"weekly"}}),
			pvc: boundPVC().Label(weeklyLabel, "enabled").Label(sourceLabel, "enabled").Label(hourlyLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, sourceLabel+","+weeklyLabel).Obj(),
			env: withVolume(makeVolume(volumeName).Label(weeklyLabel, "enabled").Label(hourlyLabel, "enabled").Obj()),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(weeklyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{hourlyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a recurringJobSelector that is not JSON takes nothing, with a warning": {
			config: keep,
			pvc:    newPVC().Obj(),
			env:    withSelector(`snap-hourly`),
			want: func() LabelDecision {
				decision := added(map[string]string{weeklyLabel: "enabled", defaultGroupLabel: "enabled", sourceLabel: "enabled"},
					defaultGroupLabel, sourceLabel, weeklyLabel)
				decision.Warnings = []string{`StorageClass "longhorn": parameter recurringJobSelector is not valid JSON (Longhorn will refuse to provision from it): invalid character 's' looking for beginning of value`}
				return decision
			}(),
		},
		"a PVC no rule matches takes nothing from its Volume": {
			config: LabelsConfig{},
			pvc:    boundPVC().Obj(),
			env:    withVolume(makeVolume(volumeName).Label(hourlyLabel, "enabled").Obj()),
			want:   LabelDecision{},
		},

		// Item 2: Longhorn's default group.
		"a Volume in the default group keeps it: the group is added and managed like the rule's labels": {
			config: keep,
			pvc:    boundPVC().Obj(),
			env:    withVolume(makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Obj()),
			want: added(map[string]string{weeklyLabel: "enabled", defaultGroupLabel: "enabled", sourceLabel: "enabled"},
				defaultGroupLabel, sourceLabel, weeklyLabel),
		},
		"a new PVC whose StorageClass selects nothing keeps the default group Longhorn will give its Volume": {
			config: keep,
			pvc:    newPVC().Obj(),
			env:    longhornEnv("db"),
			want: added(map[string]string{weeklyLabel: "enabled", defaultGroupLabel: "enabled", sourceLabel: "enabled"},
				defaultGroupLabel, sourceLabel, weeklyLabel),
		},
		"when no rule matches any more the managed default group goes too: Longhorn gives it back to a Volume without labels": {
			config: LabelsConfig{},
			pvc: boundPVC().Label(weeklyLabel, "enabled").Label(defaultGroupLabel, "enabled").Label(sourceLabel, "enabled").
				Annotation(ManagedLabelsAnnotation, defaultGroupLabel+","+sourceLabel+","+weeklyLabel).Obj(),
			env: withVolume(makeVolume(volumeName).Label(weeklyLabel, "enabled").Label(defaultGroupLabel, "enabled").Obj()),
			want: LabelDecision{
				Patch:  []jsonpatch.Operation{removeOp(defaultGroupPath), removeOp(weeklyPath), replaceOp(managedPath, sourceLabel)},
				Labels: map[string]string{sourceLabel: "enabled"},
			},
		},
		"a Volume with labels of its own is not in the default group: nothing is added": {
			config: keep,
			pvc:    boundPVC().Obj(),
			env:    withVolume(makeVolume(volumeName).Label(hourlyLabel, "enabled").Obj()),
			want:   added(map[string]string{weeklyLabel: "enabled", hourlyLabel: "enabled", sourceLabel: "enabled"}, sourceLabel, weeklyLabel),
		},
		"a PVC with a recurring label of a person's is not in the default group once it is a source": {
			config: keep,
			pvc:    boundPVC().Label(byHandLabel, "enabled").Obj(),
			env:    withVolume(makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Obj()),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(sourcePath, "enabled"),
					addOp(weeklyPath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: sourceLabel + "," + weeklyLabel}),
				},
				Labels: map[string]string{byHandLabel: "enabled", weeklyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"a default group a person set on the PVC stays theirs": {
			config: keep,
			pvc:    newPVC().Label(defaultGroupLabel, "enabled").Obj(),
			env:    longhornEnv("db"),
			want: LabelDecision{
				Patch: []jsonpatch.Operation{
					addOp(sourcePath, "enabled"),
					addOp(weeklyPath, "enabled"),
					addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: sourceLabel + "," + weeklyLabel}),
				},
				Labels: map[string]string{defaultGroupLabel: "enabled", weeklyLabel: "enabled", sourceLabel: "enabled"},
			},
		},
		"with keepDefaultGroup off, taking a volume out of a default group that has jobs is warned about": {
			config: dropDefault,
			pvc:    boundPVC().Obj(),
			env: func() PVCEnvironment {
				env := withVolume(makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Obj())
				env.KnownJobs, env.KnownGroups = sets.New("weekly"), sets.New("default")
				return env
			}(),
			want: func() LabelDecision {
				decision := added(map[string]string{weeklyLabel: "enabled", sourceLabel: "enabled"}, sourceLabel, weeklyLabel)
				decision.Warnings = []string{`the labels of rule "weekly" take this volume out of Longhorn's default group, whose RecurringJobs will no longer run for it: set labels.keepDefaultGroup: true, or name the jobs in a rule`}
				return decision
			}(),
		},
		"with keepDefaultGroup off and no job in the default group there is no warning": {
			config: dropDefault,
			pvc:    boundPVC().Obj(),
			env: func() PVCEnvironment {
				env := withVolume(makeVolume(volumeName).Label(defaultGroupLabel, "enabled").Obj())
				env.KnownJobs, env.KnownGroups = sets.New("weekly"), sets.New[string]()
				return env
			}(),
			want: added(map[string]string{weeklyLabel: "enabled", sourceLabel: "enabled"}, sourceLabel, weeklyLabel),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := compileRules(t, tc.config)
			got := DecidePVCLabels(tc.pvc, tc.env, rules)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("DecidePVCLabels (-want +got):\n%s", diff)
			}
			again := DecidePVCLabels(applyMetadataPatch(t, tc.pvc, got.Patch), tc.env, rules)
			if len(again.Patch) > 0 || !maps.Equal(got.Labels, again.Labels) {
				t.Errorf("deciding again changes the labels: patch %v, labels %v", again.Patch, again.Labels)
			}
		})
	}
}
