package offline

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
)

// decodeInto converts a decoded manifest into a typed object, with field names matched exactly.
func decodeInto(object map[string]any, into any) error {
	data, err := json.Marshal(object)
	if err != nil {
		return err
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, into)
}

// decodeChecked decodes like decodeInto and says why it cannot as a field error at the offending
// field (spec.template.spec.volumes[1].persistentVolumeClaim.claimName), the way the API server
// refuses such a manifest, so that `validate` denies what it cannot read instead of skipping it.
func decodeChecked(object map[string]any, into any) field.ErrorList {
	err := decodeInto(object, into)
	if err == nil {
		return nil
	}
	blank := reflect.TypeOf(into).Elem()
	steps := undecodableField(object, func(candidate map[string]any) bool {
		return decodeInto(candidate, reflect.New(blank).Interface()) == nil
	})
	path, value := pathOf(object, steps)
	if !isScalar(value) {
		value = field.OmitValueType{}
	}
	if typeErr := (*json.UnmarshalTypeError)(nil); errors.As(err, &typeErr) {
		return field.ErrorList{field.TypeInvalid(path, value, "must be "+describeType(typeErr.Type))}
	}
	return field.ErrorList{field.Invalid(path, value, err.Error())}
}

// step is one key or list index on the way from a manifest's top to one of its fields.
type step struct {
	key   string
	index int
}

// undecodableField finds the field that makes a manifest fail to decode: the deepest one whose
// removal makes it decode. Typed decoding names a field without list indexes or map keys, and some
// errors (a malformed quantity) name none at all, so the manifest itself is searched.
func undecodableField(object map[string]any, decodes func(map[string]any) bool) []step {
	var steps []step
	node := any(object)
	for {
		var children []step
		switch typed := node.(type) {
		case map[string]any:
			for _, key := range slices.Sorted(maps.Keys(typed)) {
				children = append(children, step{key: key})
			}
		case []any:
			for i := range typed {
				children = append(children, step{index: i})
			}
		}
		found := false
		for _, child := range children {
			candidate := append(slices.Clone(steps), child)
			if without, _ := removeAt(object, candidate).(map[string]any); decodes(without) {
				steps, node, found = candidate, valueAt(node, child), true
				break
			}
		}
		if !found {
			return steps
		}
	}
}

// removeAt returns a copy of node without the value at steps; only the maps and lists on the way are
// copied.
func removeAt(node any, steps []step) any {
	switch typed := node.(type) {
	case map[string]any:
		copied := maps.Clone(typed)
		if len(steps) == 1 {
			delete(copied, steps[0].key)
		} else {
			copied[steps[0].key] = removeAt(typed[steps[0].key], steps[1:])
		}
		return copied
	case []any:
		copied := slices.Clone(typed)
		if len(steps) == 1 {
			return slices.Delete(copied, steps[0].index, steps[0].index+1)
		}
		copied[steps[0].index] = removeAt(typed[steps[0].index], steps[1:])
		return copied
	}
	return node
}

func valueAt(node any, s step) any {
	switch typed := node.(type) {
	case map[string]any:
		return typed[s.key]
	case []any:
		return typed[s.index]
	}
	return nil
}

// pathOf is the field path of steps, with map keys below labels and the like as [key], and the value
// found there.
func pathOf(object map[string]any, steps []step) (*field.Path, any) {
	var path *field.Path
	node, parent := any(object), ""
	for _, s := range steps {
		switch typed := node.(type) {
		case map[string]any:
			switch {
			case path == nil:
				path = field.NewPath(s.key)
			case keyedMaps.Has(parent):
				path = path.Key(s.key)
			default:
				path = path.Child(s.key)
			}
			node, parent = typed[s.key], s.key
		case []any:
			path = path.Index(s.index)
			node = typed[s.index]
		}
	}
	return path, node
}

// keyedMaps are fields whose keys are data, not field names.
var keyedMaps = sets.New("labels", "annotations", "nodeSelector", "requests", "limits", "capacity", "data", "stringData", "parameters")

func isScalar(value any) bool {
	switch value.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// describeType says what a Go type accepts, in the words of a manifest's author.
func describeType(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return "a " + t.String()
}
