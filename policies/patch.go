package policies

import (
	"maps"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/util/sets"
)

// mapPatch is the JSON patch that turns the map at path (e.g. /metadata/labels) from current into
// desired, touching no other key: operations come in key order, so the same input always gives the same
// patch, and an equal input gives none.
func mapPatch(path string, current, desired map[string]string) []jsonpatch.Operation {
	if maps.Equal(current, desired) {
		return nil
	}
	if current == nil {
		return []jsonpatch.Operation{{Operation: "add", Path: path, Value: maps.Clone(desired)}}
	}
	var operations []jsonpatch.Operation
	for _, key := range sets.List(sets.KeySet(current).Union(sets.KeySet(desired))) {
		keyPath := path + "/" + escapeJSONPointer(key)
		currentValue, inCurrent := current[key]
		desiredValue, inDesired := desired[key]
		switch {
		case inCurrent && !inDesired:
			operations = append(operations, jsonpatch.Operation{Operation: "remove", Path: keyPath})
		case !inCurrent && inDesired:
			operations = append(operations, jsonpatch.Operation{Operation: "add", Path: keyPath, Value: desiredValue})
		case currentValue != desiredValue:
			operations = append(operations, jsonpatch.Operation{Operation: "replace", Path: keyPath, Value: desiredValue})
		}
	}
	return operations
}

var jsonPointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapeJSONPointer(key string) string { return jsonPointerEscaper.Replace(key) }

// resourceVersionPath is where a JSON patch finds the version of the object it applies to.
const resourceVersionPath = "/metadata/resourceVersion"

// PatchIfUnchanged makes patch, computed from an object read at resourceVersion, apply only to that
// same version: a first `test` operation fails the whole patch (the API server answers 422 Invalid and
// changes nothing) once anyone else has written the object since. Nil for an empty patch.
//
// A JSON patch otherwise applies to whatever the object is when it arrives. Made from a stale read it
// can undo another writer's change: `add /metadata/labels {...}` replaces a labels map that appeared
// meanwhile, and `add` of one key replaces a value a person has just set.
//
// Why the resourceVersion and not `test` operations on the labels read: the decision reads more than the
// labels (a PVC's annotations and storage class, a Volume's link to its PVC) and writes annotations
// too, and only the resourceVersion covers all of it in one operation. It also covers a map that was
// absent when read, which RFC 6902 cannot test for: the target of a `test` must exist, and that the
// API server's json-patch library lets `test ... null` pass on a missing member is a quirk of one
// implementation. The cost is that an unrelated write (a status update) also fails the test; the
// caller then decides again from a fresh read.
func PatchIfUnchanged(resourceVersion string, patch []jsonpatch.Operation) []jsonpatch.Operation {
	if len(patch) == 0 {
		return nil
	}
	return append([]jsonpatch.Operation{{Operation: "test", Path: resourceVersionPath, Value: resourceVersion}}, patch...)
}
