package longhorn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
)

// DecodeJSONObject parses one JSON object, keeping numbers as json.Number so that integers and strings can
// be told apart exactly.
func DecodeJSONObject(raw []byte) (map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var object map[string]any
	if err := decoder.Decode(&object); err != nil {
		return nil, err
	}
	if object == nil {
		return nil, errors.New("expected a JSON object, got null")
	}
	if _, err := decoder.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return object, nil
}

var (
	recurringJobFields     = []string{"apiVersion", "kind", "metadata", "spec", "status"}
	recurringJobSpecFields = []string{"concurrency", "cron", "groups", "labels", "name", "parameters", "retain", "retainAge", "retentionPolicy", "task"}
	recurringJobStatFields = []string{"executionCount", "ownerID"}
)

// FieldChecking says what decoding does with a field backupguard's structs do not know.
type FieldChecking int

const (
	// StrictFields makes an unknown field an error: offline, a typo (retian) must not pass CI, because
	// the API server would reject it (kubectl's strict field validation) or prune it.
	StrictFields FieldChecking = iota
	// IgnoreUnknownFields skips unknown fields: in a cluster the API server has already checked the
	// object against the installed CRD, and a field a newer Longhorn adds is the CRD's business, not a
	// reason to deny.
	IgnoreUnknownFields
)

// DecodeRecurringJob turns a decoded JSON object into a RecurringJob strictly: an unknown field or a value
// of the wrong type is a field error with its path, never silently dropped, because Longhorn's CRD would
// prune or reject it and the user would not get what the manifest says.
func DecodeRecurringJob(object map[string]any) (*RecurringJob, field.ErrorList) {
	return DecodeRecurringJobWith(object, StrictFields)
}

// DecodeRecurringJobWith decodes like DecodeRecurringJob, with unknown fields handled as checking says.
// A value of the wrong type for a known field is an error either way.
func DecodeRecurringJobWith(object map[string]any, checking FieldChecking) (*RecurringJob, field.ErrorList) {
	job := &RecurringJob{}
	var errs field.ErrorList
	unknownField := func(path *field.Path, known []string, errs field.ErrorList) field.ErrorList {
		if checking == IgnoreUnknownFields {
			return errs
		}
		return append(errs, unknownFieldError(path, known))
	}
	for _, key := range sortedKeys(object) {
		value := object[key]
		path := field.NewPath(key)
		switch key {
		case "apiVersion":
			job.APIVersion, errs = decodeString(path, value, errs)
		case "kind":
			job.Kind, errs = decodeString(path, value, errs)
		case "metadata":
			if value == nil {
				continue
			}
			// managedFields are most of the metadata the API server sends, and nothing reads them.
			if metadata, ok := value.(map[string]any); ok && metadata["managedFields"] != nil {
				trimmed := maps.Clone(metadata)
				delete(trimmed, "managedFields")
				value = trimmed
			}
			if err := roundTrip(value, &job.ObjectMeta); err != nil {
				errs = append(errs, field.TypeInvalid(path, "...", err.Error()))
			}
		case "spec":
			errs = decodeRecurringJobSpec(path, value, &job.Spec, errs, unknownField)
		case "status":
			errs = decodeRecurringJobStatus(path, value, &job.Status, errs, unknownField)
		default:
			errs = unknownField(path, recurringJobFields, errs)
		}
	}
	return job, errs
}

// unknownFieldFunc reports (or not) a field the structs do not know.
type unknownFieldFunc func(path *field.Path, known []string, errs field.ErrorList) field.ErrorList

func decodeRecurringJobSpec(path *field.Path, value any, spec *RecurringJobSpec, errs field.ErrorList, unknownField unknownFieldFunc) field.ErrorList {
	object, errs := decodeObject(path, value, errs)
	for _, key := range sortedKeys(object) {
		value := object[key]
		child := path.Child(key)
		var task string
		switch key {
		case "name":
			spec.Name, errs = decodeString(child, value, errs)
		case "groups":
			spec.Groups, errs = decodeStringList(child, value, errs)
		case "task":
			task, errs = decodeString(child, value, errs)
			spec.Task = Task(task)
		case "cron":
			spec.Cron, errs = decodeString(child, value, errs)
		case "retain":
			spec.Retain, errs = decodeInt(child, value, errs)
		case "concurrency":
			spec.Concurrency, errs = decodeInt(child, value, errs)
		case "labels":
			spec.Labels, errs = decodeStringMap(child, value, errs)
		case "parameters":
			spec.Parameters, errs = decodeStringMap(child, value, errs)
		case "retentionPolicy":
			var policy string
			policy, errs = decodeString(child, value, errs)
			spec.RetentionPolicy = RetentionPolicy(policy)
		case "retainAge":
			spec.RetainAge, errs = decodeString(child, value, errs)
		default:
			errs = unknownField(child, recurringJobSpecFields, errs)
		}
	}
	return errs
}

func decodeRecurringJobStatus(path *field.Path, value any, status *RecurringJobStatus, errs field.ErrorList, unknownField unknownFieldFunc) field.ErrorList {
	object, errs := decodeObject(path, value, errs)
	for _, key := range sortedKeys(object) {
		child := path.Child(key)
		switch key {
		case "ownerID":
			status.OwnerID, errs = decodeString(child, object[key], errs)
		case "executionCount":
			status.ExecutionCount, errs = decodeInt(child, object[key], errs)
		default:
			errs = unknownField(child, recurringJobStatFields, errs)
		}
	}
	return errs
}

func unknownFieldError(path *field.Path, known []string) *field.Error {
	return field.Forbidden(path, "unknown field; known fields here: "+strings.Join(known, ", "))
}

func decodeObject(path *field.Path, value any, errs field.ErrorList) (map[string]any, field.ErrorList) {
	switch typed := value.(type) {
	case nil:
		return nil, errs
	case map[string]any:
		return typed, errs
	default:
		return nil, append(errs, field.TypeInvalid(path, shown(value), "must be an object"))
	}
}

func decodeString(path *field.Path, value any, errs field.ErrorList) (string, field.ErrorList) {
	switch typed := value.(type) {
	case nil:
		return "", errs
	case string:
		return typed, errs
	case json.Number:
		return "", append(errs, field.TypeInvalid(path, shown(value), fmt.Sprintf("must be a string; quote it in YAML: \"%s\"", typed)))
	default:
		return "", append(errs, field.TypeInvalid(path, shown(value), "must be a string"))
	}
}

func decodeInt(path *field.Path, value any, errs field.ErrorList) (int, field.ErrorList) {
	switch typed := value.(type) {
	case nil:
		return 0, errs
	case json.Number:
		number, err := typed.Int64()
		if err != nil {
			return 0, append(errs, field.TypeInvalid(path, shown(value), "must be a whole number"))
		}
		if number > math.MaxInt32 || number < math.MinInt32 {
			return 0, append(errs, field.Invalid(path, number, "must fit in 32 bits"))
		}
		return int(number), errs
	case string:
		return 0, append(errs, field.TypeInvalid(path, shown(value), "must be a whole number, not a string: remove the quotes"))
	default:
		return 0, append(errs, field.TypeInvalid(path, shown(value), "must be a whole number"))
	}
}

func decodeStringList(path *field.Path, value any, errs field.ErrorList) ([]string, field.ErrorList) {
	switch typed := value.(type) {
	case nil:
		return nil, errs
	case []any:
		list := make([]string, len(typed))
		for i, item := range typed {
			list[i], errs = decodeString(path.Index(i), item, errs)
		}
		return list, errs
	default:
		return nil, append(errs, field.TypeInvalid(path, shown(value), "must be a list of strings"))
	}
}

func decodeStringMap(path *field.Path, value any, errs field.ErrorList) (map[string]string, field.ErrorList) {
	object, errs := decodeObject(path, value, errs)
	if object == nil {
		return nil, errs
	}
	result := make(map[string]string, len(object))
	for _, key := range sortedKeys(object) {
		result[key], errs = decodeString(path.Key(key), object[key], errs)
	}
	return result, errs
}

// shown is the value as a user wrote it, for error messages: compound values are abbreviated.
func shown(value any) any {
	switch typed := value.(type) {
	case json.Number:
		if number, err := typed.Int64(); err == nil {
			return number
		}
		if number, err := typed.Float64(); err == nil {
			return number
		}
		return typed.String()
	case map[string]any:
		return "{...}"
	case []any:
		return "[...]"
	default:
		return value
	}
}

// roundTrip converts a decoded JSON value into a typed struct through its JSON form, matching keys
// case-sensitively as the API server does ("Name" is not "name").
func roundTrip(value any, into any) error {
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(raw, into)
}

func sortedKeys(object map[string]any) []string {
	keys := make([]string, 0, len(object))
	for key := range object {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}
