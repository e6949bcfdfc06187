package policies

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
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
