package policies

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	jsonpatchv4 "gopkg.in/evanphx/json-patch.v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMapPatch(t *testing.T) {
	cases := map[string]struct {
		current, desired map[string]string
		want             []jsonpatch.Operation
	}{
		"equal maps give no patch": {
			current: map[string]string{"a": "1", "b": "2"},
			desired: map[string]string{"a": "1", "b": "2"},
		},
		"two nil maps give no patch": {},
		"a nil map and an empty one are equal": {
			desired: map[string]string{},
		},
		"a nil current map is added whole": {
			desired: map[string]string{"b": "2", "a": "1"},
			want: []jsonpatch.Operation{
				{Operation: "add", Path: "/metadata/labels", Value: map[string]string{"a": "1", "b": "2"}},
			},
		},
		"an empty current map gets one add per key, because the map exists": {
			current: map[string]string{},
			desired: map[string]string{"a": "1"},
			want: []jsonpatch.Operation{
				{Operation: "add", Path: "/metadata/labels/a", Value: "1"},
			},
		},
		"adds, replaces and removes come in key order, and equal keys are left alone": {
			current: map[string]string{"d": "remove me", "b": "old", "c": "same", "a": "gone"},
			desired: map[string]string{"e": "new", "b": "new", "c": "same"},
			want: []jsonpatch.Operation{
				{Operation: "remove", Path: "/metadata/labels/a"},
				{Operation: "replace", Path: "/metadata/labels/b", Value: "new"},
				{Operation: "remove", Path: "/metadata/labels/d"},
				{Operation: "add", Path: "/metadata/labels/e", Value: "new"},
			},
		},
		"a nil desired map removes every key one by one": {
			current: map[string]string{"b": "2", "a": "1"},
			want: []jsonpatch.Operation{
				{Operation: "remove", Path: "/metadata/labels/a"},
				{Operation: "remove", Path: "/metadata/labels/b"},
			},
		},
		"an empty value is still a value": {
			current: map[string]string{"a": "1"},
			desired: map[string]string{"a": ""},
			want: []jsonpatch.Operation{
				{Operation: "replace", Path: "/metadata/labels/a", Value: ""},
			},
		},
		"'/' and '~' in keys are escaped as JSON pointers, '~' first": {
			current: map[string]string{"example.com/old": "x", "a~b": "1"},
			desired: map[string]string{"example.com/new": "y", "a~b": "2", "odd~1/key": "z"},
			want: []jsonpatch.Operation{
				{Operation: "replace", Path: "/metadata/labels/a~0b", Value: "2"},
				{Operation: "add", Path: "/metadata/labels/example.com~1new", Value: "y"},
				{Operation: "remove", Path: "/metadata/labels/example.com~1old"},
				{Operation: "add", Path: "/metadata/labels/odd~01~1key", Value: "z"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := mapPatch("/metadata/labels", tc.current, tc.desired)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mapPatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMapPatchDoesNotShareTheDesiredMap(t *testing.T) {
	desired := map[string]string{"a": "1"}
	patch := mapPatch("/metadata/labels", nil, desired)
	desired["a"] = "changed"
	want := []jsonpatch.Operation{{Operation: "add", Path: "/metadata/labels", Value: map[string]string{"a": "1"}}}
	if diff := cmp.Diff(want, patch); diff != "" {
		t.Errorf("mapPatch after changing the desired map (-want +got):\n%s", diff)
	}
}

func TestPatchIfUnchanged(t *testing.T) {
	cases := map[string]struct {
		patch []jsonpatch.Operation
		want  []jsonpatch.Operation
	}{
		"no patch stays none":    {},
		"an empty patch is none": {patch: []jsonpatch.Operation{}},
		"the test of the version read comes first, then the patch as it was": {
			patch: []jsonpatch.Operation{addOp(dailyPath, "enabled"), removeOp(weeklyPath)},
			want: []jsonpatch.Operation{
				{Operation: "test", Path: "/metadata/resourceVersion", Value: "41"},
				addOp(dailyPath, "enabled"),
				removeOp(weeklyPath),
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PatchIfUnchanged("41", tc.patch)); diff != "" {
				t.Errorf("PatchIfUnchanged (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLabelPatchesApplyOnlyToTheVersionTheyWereMadeFrom applies the sync's patches with the JSON patch
// library the API server uses: to the object they were decided from they give exactly the decided
// metadata; to the same object after another writer added a label they change nothing.
func TestLabelPatchesApplyOnlyToTheVersionTheyWereMadeFrom(t *testing.T) {
	rules := compileRules(t, rulesConfig(databasesRule()))
	sourcePVC := makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj()
	barePVC := makePVC("db", "data").StorageClass("longhorn").ResourceVersion("41").Obj()
	labelledPVC := makePVC("db", "data").StorageClass("longhorn").Label("app", "postgres").Annotation("owner", "team-a").
		ResourceVersion("41").Obj()
	bareVolume := makeVolume("data").ResourceVersion("41").Obj()
	labelledVolume := makeVolume("data").Label("longhornvolume", "data").Label(weeklyLabel, "enabled").ResourceVersion("41").Obj()
	test41 := jsonpatch.Operation{Operation: "test", Path: "/metadata/resourceVersion", Value: "41"}
	cases := map[string]struct {
		read            any
		patch           []jsonpatch.Operation
		wantPatch       []jsonpatch.Operation
		wantLabels      map[string]string
		wantAnnotations map[string]string
	}{
		"a PVC without labels or annotations, whose maps are added whole": {
			read:  barePVC,
			patch: DecidePVCLabels(barePVC, longhornEnv("db"), rules).Patch,
			wantPatch: []jsonpatch.Operation{
				test41,
				addOp("/metadata/labels", databasesLabels()),
				addOp("/metadata/annotations", map[string]string{ManagedLabelsAnnotation: managedByDatabases}),
			},
			wantLabels:      databasesLabels(),
			wantAnnotations: map[string]string{ManagedLabelsAnnotation: managedByDatabases},
		},
		"a PVC with labels and annotations, whose keys are added one by one": {
			read:  labelledPVC,
			patch: DecidePVCLabels(labelledPVC, longhornEnv("db"), rules).Patch,
			wantPatch: []jsonpatch.Operation{
				test41,
				addOp(criticalPath, "enabled"),
				addOp(dailyPath, "enabled"),
				addOp(sourcePath, "enabled"),
				addOp(managedPath, managedByDatabases),
			},
			wantLabels:      map[string]string{"app": "postgres", criticalLabel: "enabled", dailyLabel: "enabled", sourceLabel: "enabled"},
			wantAnnotations: map[string]string{"owner": "team-a", ManagedLabelsAnnotation: managedByDatabases},
		},
		"a Volume without labels, whose map is added whole": {
			read:       bareVolume,
			patch:      DecideVolumeLabels(bareVolume, sourcePVC).Patch,
			wantPatch:  []jsonpatch.Operation{test41, addOp("/metadata/labels", map[string]string{dailyLabel: "enabled"})},
			wantLabels: map[string]string{dailyLabel: "enabled"},
		},
		"a Volume with labels, whose keys are changed one by one": {
			read:       labelledVolume,
			patch:      DecideVolumeLabels(labelledVolume, sourcePVC).Patch,
			wantPatch:  []jsonpatch.Operation{test41, addOp(dailyPath, "enabled"), removeOp(weeklyPath)},
			wantLabels: map[string]string{"longhornvolume": "data", dailyLabel: "enabled"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			patch := PatchIfUnchanged("41", tc.patch)
			if diff := cmp.Diff(tc.wantPatch, patch); diff != "" {
				t.Fatalf("patch (-want +got):\n%s", diff)
			}
			read := marshal(t, tc.read)
			metadata, err := applyJSONPatch(t, read, patch)
			if err != nil {
				t.Fatalf("applying the patch to the object it was made from: %v", err)
			}
			if diff := cmp.Diff(tc.wantLabels, metadata.Labels); diff != "" {
				t.Errorf("labels after the patch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAnnotations, metadata.Annotations); diff != "" {
				t.Errorf("annotations after the patch (-want +got):\n%s", diff)
			}

			if _, err := applyJSONPatch(t, anotherWriterLabelled(t, read), patch); !errors.Is(err, jsonpatchv4.ErrTestFailed) {
				t.Errorf("applying the patch after another writer's change: got error %v, want %v", err, jsonpatchv4.ErrTestFailed)
			}
		})
	}
}

// TestAStaleUnconditionalPatchLosesLabels shows what PatchIfUnchanged prevents: without the test, a
// patch made when the object had no labels replaces the labels another writer has added since.
func TestAStaleUnconditionalPatchLosesLabels(t *testing.T) {
	volume := makeVolume("data").ResourceVersion("41").Obj()
	patch := DecideVolumeLabels(volume, makePVC("db", "data").Label(dailyLabel, "enabled").Label(sourceLabel, "enabled").Obj()).Patch
	metadata, err := applyJSONPatch(t, anotherWriterLabelled(t, marshal(t, volume)), patch)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{dailyLabel: "enabled"}, metadata.Labels); diff != "" {
		t.Errorf("labels after the unconditional patch (-want +got):\n%s", diff)
	}
}

// anotherWriterLabelled is document after another writer added the label team=storage, as the API
// server stores it: with a new resourceVersion.
func anotherWriterLabelled(t *testing.T, document []byte) []byte {
	t.Helper()
	changed, err := jsonpatchv4.MergePatch(document, []byte(`{"metadata":{"resourceVersion":"42","labels":{"team":"storage"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

func marshal(t *testing.T, object any) []byte {
	t.Helper()
	data, err := json.Marshal(object)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// applyJSONPatch applies patch to document with the json-patch library and version the API server
// uses, and returns the metadata of the result.
func applyJSONPatch(t *testing.T, document []byte, patch []jsonpatch.Operation) (metav1.ObjectMeta, error) {
	t.Helper()
	decoded, err := jsonpatchv4.DecodePatch(marshal(t, patch))
	if err != nil {
		t.Fatal(err)
	}
	patched, err := decoded.Apply(document)
	if err != nil {
		return metav1.ObjectMeta{}, err
	}
	var object struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(patched, &object); err != nil {
		t.Fatal(err)
	}
	return object.Metadata, nil
}
