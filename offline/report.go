package offline

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
)

// WriteText prints the report for people: one block per object, its verdict, each violation with its
// field, warnings, the changes it would get (label and annotation changes as "+ key=value" and
// "- key"), and for RecurringJobs the next fire times in UTC (and in zone, when given), because a
// schedule written in local time is the most common mistake.
func (r Report) WriteText(w io.Writer, zone *time.Location) error {
	for _, result := range r.Results {
		if _, err := fmt.Fprintf(w, "%s %s (%s): %s\n", result.Kind, result.objectName(), result.Source, result.verdict()); err != nil {
			return err
		}
		for _, violation := range result.Violations {
			fmt.Fprintf(w, "  %s: %s\n", violation.Field, violation.Message)
		}
		for _, warning := range result.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warning)
		}
		writePatch(w, result.Patch)
		if len(result.NextRuns) > 0 {
			fmt.Fprintf(w, "  next runs: %s\n", formatTimes(result.NextRuns, time.UTC))
			if zone != nil && zone != time.UTC {
				fmt.Fprintf(w, "  next runs in %s: %s\n", zone, formatTimes(result.NextRuns, zone))
			}
		}
	}
	_, err := fmt.Fprintln(w, r.Summary)
	return err
}

// metadataMaps are the maps whose changes the text report shows as key changes, with their headings.
var metadataMaps = []struct{ path, heading string }{{"/metadata/labels", "labels"}, {"/metadata/annotations", "annotations"}}

// writePatch shows a patch for people: changes of labels and annotations as "+ key=value" (added or
// set) and "- key" (removed) under a heading, in the patch's order; any other operation (a Job's node
// affinity) as "patch: op path value". -o json keeps the JSON patch itself.
func writePatch(w io.Writer, patch []jsonpatch.Operation) {
	changes := map[string][]string{}
	var others []jsonpatch.Operation
	for _, operation := range patch {
		heading, lines, ok := metadataChange(operation)
		if !ok {
			others = append(others, operation)
			continue
		}
		changes[heading] = append(changes[heading], lines...)
	}
	for _, m := range metadataMaps {
		if len(changes[m.heading]) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", m.heading)
		for _, line := range changes[m.heading] {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	for _, operation := range others {
		value, _ := json.Marshal(operation.Value)
		fmt.Fprintf(w, "  patch: %s %s %s\n", operation.Operation, operation.Path, value)
	}
}

// metadataChange reads an operation on metadata.labels or metadata.annotations as key changes under
// a heading; ok is false for any other operation.
func metadataChange(operation jsonpatch.Operation) (heading string, lines []string, ok bool) {
	for _, m := range metadataMaps {
		if operation.Path == m.path && operation.Operation == "add" {
			// The whole map, added where there was none.
			values, ok := stringMap(operation.Value)
			if !ok {
				return "", nil, false
			}
			for _, key := range slices.Sorted(maps.Keys(values)) {
				lines = append(lines, "+ "+key+"="+values[key])
			}
			return m.heading, lines, true
		}
		escaped, found := strings.CutPrefix(operation.Path, m.path+"/")
		if !found {
			continue
		}
		key := jsonPointerUnescaper.Replace(escaped)
		switch value, isString := operation.Value.(string); {
		case operation.Operation == "remove":
			return m.heading, []string{"- " + key}, true
		case (operation.Operation == "add" || operation.Operation == "replace") && isString:
			return m.heading, []string{"+ " + key + "=" + value}, true
		}
	}
	return "", nil, false
}

var jsonPointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")

func stringMap(value any) (map[string]string, bool) {
	switch values := value.(type) {
	case map[string]string:
		return values, true
	case map[string]any:
		out := make(map[string]string, len(values))
		for key, v := range values {
			text, ok := v.(string)
			if !ok {
				return nil, false
			}
			out[key] = text
		}
		return out, true
	}
	return nil, false
}

// WriteJSON prints the report in the documented machine-readable shape.
func (r Report) WriteJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}
