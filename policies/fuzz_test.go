package policies

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	jsonpatchv4 "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// FuzzValidateCron checks that any schedule gets an answer without a panic, and that a schedule it
// accepts fires at strictly increasing instants, in UTC, both in UTC and in a zone with summer time, and
// that the window check over a year ends.
func FuzzValidateCron(f *testing.F) {
	for _, seed := range []string{"0 2 * * *", "@daily", " @daily", "@every 90m", "CRON_TZ=Europe/Berlin 0 3 * * *", "TZ=Nowhere 1 2 3 4 5",
		"0 0 2 * * *", "*/7 1-3 * * 1,3,5", "0 2 30 2 *", "0 2 * * 7", "@every 0s", "59 23 31 12 *", "? ? ? ? ?"} {
		f.Add(seed)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	window, errs := CompileWindow(&WindowConfig{Opens: "55 0 * * *", Duration: metav1.Duration{Duration: 3 * time.Hour}}, field.NewPath("window"))
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	f.Fuzz(func(t *testing.T, expression string) {
		schedule, errs := ValidateCron(field.NewPath("spec", "cron"), expression, testNow, time.UTC)
		if (schedule == nil) == (len(errs) == 0) {
			t.Fatalf("ValidateCron(%q): schedule %v with errors %v", expression, schedule, errs)
		}
		if schedule == nil {
			return
		}
		for _, zone := range []*time.Location{time.UTC, berlin} {
			runs := NextRuns(schedule, testNow, 5, zone)
			for i, run := range runs {
				if run.Location() != time.UTC {
					t.Fatalf("%q: run %v is not in UTC", expression, run)
				}
				if !run.After(testNow) || (i > 0 && !run.After(runs[i-1])) {
					t.Fatalf("%q in %s: runs not strictly increasing after now: %v", expression, zone, runs)
				}
			}
			_ = window.FirstRunOutside(schedule, testNow, zone)
		}
	})
}

// labelsFromText turns "key=value" lines into a map; fuzzed text gives fuzzed keys and values.
func labelsFromText(text string) map[string]string {
	if text == "" {
		return nil
	}
	labels := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		key, value, _ := strings.Cut(line, "=")
		labels[key] = value
	}
	return labels
}

// FuzzLabelPatches checks the label decisions on arbitrary labels and annotations: the patch applied to
// the object (by the JSON-patch library the API server uses) gives exactly the decided labels, and
// deciding again on the patched object changes nothing.
func FuzzLabelPatches(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("recurring-job.longhorn.io/nightly=disabled\napp=db", "", "recurring-job.longhorn.io/snap-hourly=enabled", "")
	f.Add("recurring-job.longhorn.io/source=enabled\nrecurring-job-group.longhorn.io/old=enabled", ManagedLabelsAnnotation+"=recurring-job-group.longhorn.io/old", "", "")
	f.Add("a~b/c=1\nx/y=enabled", "", "recurring-job-group.longhorn.io/default=enabled", "true")
	rules := compileRules(f, LabelsConfig{Rules: []LabelRule{
		{Name: "shop", Match: LabelMatch{Namespaces: []string{"shop"}}, Jobs: []string{"nightly"}, Groups: []string{"critical"}},
	}})
	f.Fuzz(func(t *testing.T, labelText, annotationText, volumeLabelText, skip string) {
		// Only what the API server stores: JSON carries only UTF-8, and label keys and values, and
		// annotation keys, are validated (the fuzzer found both kinds of impossible input; they stay in
		// testdata/fuzz/FuzzLabelPatches as regression cases).
		if !utf8.ValidString(labelText) || !utf8.ValidString(annotationText) || !utf8.ValidString(volumeLabelText) ||
			!storable(labelsFromText(labelText), true) || !storable(labelsFromText(annotationText), false) || !storable(labelsFromText(volumeLabelText), true) {
			return
		}
		pvc := makePVC("shop", "data").StorageClass("longhorn").VolumeName("pvc-1").Obj()
		pvc.UID = "1"
		pvc.Labels = labelsFromText(labelText)
		pvc.Annotations = labelsFromText(annotationText)
		if skip == "true" {
			if pvc.Annotations == nil {
				pvc.Annotations = map[string]string{}
			}
			pvc.Annotations[SkipAnnotation] = "true"
		}
		volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Namespace: "longhorn-system", Labels: labelsFromText(volumeLabelText)}}
		env := longhornEnv("shop")
		env.Volume = volume
		decision := DecidePVCLabels(pvc, env, rules)
		patched := applyToPVC(t, pvc, decision.Patch)
		if diff := cmp.Diff(nonEmpty(decision.Labels), nonEmpty(patched.Labels)); diff != "" {
			t.Fatalf("the patch gives other labels than decided (-decided +patched):\n%s\npatch: %v", diff, decision.Patch)
		}
		if again := DecidePVCLabels(patched, env, rules); len(again.Patch) > 0 {
			t.Fatalf("deciding again changes the patched PVC: %v", again.Patch)
		}
		volumeDecision := DecideVolumeLabels(volume, patched)
		raw, err := json.Marshal(volume)
		if err != nil {
			t.Fatal(err)
		}
		raw = applyPatch(t, raw, volumeDecision.Patch)
		patchedVolume := &longhorn.Volume{}
		if err := json.Unmarshal(raw, patchedVolume); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(nonEmpty(volumeDecision.Labels), nonEmpty(patchedVolume.Labels)); diff != "" {
			t.Fatalf("the Volume patch gives other labels than decided (-decided +patched):\n%s", diff)
		}
		if again := DecideVolumeLabels(patchedVolume, patched); len(again.Patch) > 0 {
			t.Fatalf("deciding the Volume again changes it: %v", again.Patch)
		}
	})
}

// storable tells whether the API server would store these labels (or, with labels false, annotations).
func storable(values map[string]string, labels bool) bool {
	for key, value := range values {
		if len(validation.IsQualifiedName(key)) > 0 || (labels && len(validation.IsValidLabelValue(value)) > 0) {
			return false
		}
	}
	return true
}

func nonEmpty(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return labels
}

func applyToPVC(t *testing.T, pvc *corev1.PersistentVolumeClaim, patch []jsonpatch.Operation) *corev1.PersistentVolumeClaim {
	t.Helper()
	raw, err := json.Marshal(pvc)
	if err != nil {
		t.Fatal(err)
	}
	patched := &corev1.PersistentVolumeClaim{}
	if err := json.Unmarshal(applyPatch(t, raw, patch), patched); err != nil {
		t.Fatal(err)
	}
	return patched
}

func applyPatch(t *testing.T, raw []byte, patch []jsonpatch.Operation) []byte {
	t.Helper()
	if len(patch) == 0 {
		return raw
	}
	encoded, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jsonpatchv4.DecodePatch(encoded)
	if err != nil {
		t.Fatalf("decoding %s: %v", encoded, err)
	}
	out, err := decoded.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", encoded, err)
	}
	return out
}

// FuzzParseConfig feeds arbitrary files to the config loader: an answer, never a panic, and a config
// it accepts compiles all its sections.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\n"))
	f.Add([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn: {cronTimeZone: Europe/Berlin}\nrecurringJobs: {enforcement: Warn, trustedWriters: []}\n"))
	f.Add([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nwindow: {opens: \"55 0 * * *\", duration: 3h}\nlabels: {rules: [{name: a, jobs: [x], match: {selector: {matchLabels: {a: b}}}}]}\n"))
	f.Add([]byte("kind: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		config, err := ParseConfig(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if config.LabelRules() == nil || config.BackupJobRules() == nil || config.RecurringJobRules() == nil {
			t.Fatalf("an accepted config left a section uncompiled")
		}
	})
}
