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
