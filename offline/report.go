package offline

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// WriteText prints the report for people: one block per object, its verdict, each violation with its
// field, warnings, and for RecurringJobs the next fire times in UTC (and in zone, when given), because a
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
		for _, operation := range result.Patch {
			value, _ := json.Marshal(operation.Value)
			fmt.Fprintf(w, "  patch: %s %s %s\n", operation.Operation, operation.Path, value)
		}
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

// WriteJSON prints the report in the documented machine-readable shape.
func (r Report) WriteJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}
