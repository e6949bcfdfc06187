package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// RecurringJobEnvironment is what RecurringJob validation needs besides the object: where it is created
// and the Longhorn settings in force (read from the cluster, or the config's stand-ins offline).
type RecurringJobEnvironment struct {
	// Namespace is the namespace the object is created in: the admission request's, or the manifest's
	// offline (empty when the manifest names none).
	Namespace string
	// LonghornNamespace is where Longhorn looks for RecurringJobs.
	LonghornNamespace string
	// Settings are the Longhorn Settings in force.
	Settings LonghornSettings
	// Now is the instant of the decision: it picks the year of the time-zone examples and where the
	// check of fire times against the window starts.
	Now time.Time
	// Window is the S3 window, nil when none is configured.
	Window *Window
	// PollingBackupTargets name the BackupTargets whose pollInterval is not 0s, with that interval.
	PollingBackupTargets map[string]string
}

// Longhorn's own patterns and limits (longhorn-manager webhook/resources/recurringjob).
var (
	recurringJobNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]+$`)
	groupNamePattern        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

const (
	maxRecurringJobNameLength = 40
	// A group becomes the name part of the label key recurring-job-group.longhorn.io/<group>.
	maxGroupNameLength = validation.LabelValueMaxLength
)

// reservedLabelKeys are keys Longhorn sets on snapshots and backups itself; a job's label would clash.
var reservedLabelKeys = sets.New("RecurringJob", "KubernetesStatus", "ranchervm-base-image")

// allowedParameters says which spec.parameters keys each task reads; Longhorn ignores any other.
var allowedParameters = map[longhorn.Task]sets.Set[string]{
	longhorn.TaskBackup:            sets.New(longhorn.ParameterFullBackupInterval, longhorn.ParameterVolumeBackupPolicy),
	longhorn.TaskBackupForceCreate: sets.New(longhorn.ParameterFullBackupInterval, longhorn.ParameterVolumeBackupPolicy),
	longhorn.TaskSystemBackup:      sets.New(longhorn.ParameterVolumeBackupPolicy),
}

var volumeBackupPolicies = []string{"always", "if-not-present", "disabled"}

// tasksSkippingDetachedVolumes are the tasks Longhorn does not run on a detached volume unless the
// Setting allow-recurring-job-while-volume-detached is true.
var tasksSkippingDetachedVolumes = sets.New(longhorn.TaskSnapshot, longhorn.TaskSnapshotForceCreate, longhorn.TaskBackup, longhorn.TaskBackupForceCreate)

// ValidateRecurringJob applies every RecurringJob rule: Longhorn's own checks, so a manifest fails in CI
// rather than at apply time, and the ones Longhorn misses. It returns the violations (the object must be
// denied when there is any) and warnings for what is allowed but probably not meant.
func ValidateRecurringJob(job *longhorn.RecurringJob, env RecurringJobEnvironment) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	metadata := field.NewPath("metadata")
	spec := field.NewPath("spec")

	errs = append(errs, validateRecurringJobName(job, metadata, spec)...)

	switch env.Namespace {
	case env.LonghornNamespace:
	case "":
		warnings = append(warnings, fmt.Sprintf("metadata.namespace is not set: apply this RecurringJob to namespace %q, the only one Longhorn reads", env.LonghornNamespace))
	default:
		errs = append(errs, field.Invalid(metadata.Child("namespace"), env.Namespace,
			fmt.Sprintf("RecurringJobs must be in the Longhorn namespace %q: Longhorn ignores them anywhere else", env.LonghornNamespace)))
	}

	taskKnown := false
	switch {
	case job.Spec.Task == "":
		errs = append(errs, field.Required(spec.Child("task"), "one of "+strings.Join(taskNames(), ", ")))
	case !isKnownTask(job.Spec.Task):
		errs = append(errs, field.NotSupported(spec.Child("task"), job.Spec.Task, taskNames()))
	default:
		taskKnown = true
	}

	_, cronErrs := ValidateCron(spec.Child("cron"), job.Spec.Cron, env.Now)
	errs = append(errs, cronErrs...)
	if env.Window != nil && isBackupTask(job.Spec.Task) {
		// Outside the window the backup target is fenced off, and Longhorn refuses new backups.
		errs = append(errs, env.Window.ValidateScheduleInWindow(spec.Child("cron"), job.Spec.Cron, env.Now)...)
		for _, name := range sets.List(sets.KeySet(env.PollingBackupTargets)) {
			warnings = append(warnings, fmt.Sprintf("BackupTarget %s polls every %s: periodic polling still lists the bucket; backupguard syncs it at every opening, so set spec.pollInterval: 0s",
				name, env.PollingBackupTargets[name]))
		}
	}

	errs = append(errs, validateGroups(job.Spec.Groups, spec.Child("groups"))...)
	errs = append(errs, validateJobLabels(job.Spec.Labels, spec.Child("labels"))...)

	if job.Spec.Concurrency < 0 {
		// Longhorn accepts it, and the job pod then panics creating a worker pool of negative size.
		errs = append(errs, field.Invalid(spec.Child("concurrency"), job.Spec.Concurrency, "must not be negative; 0 means Longhorn's default of 10"))
	}

	fullBackupInterval, parameterErrs := validateParameters(job.Spec.Parameters, job.Spec.Task, taskKnown, spec.Child("parameters"))
	errs = append(errs, parameterErrs...)

	if taskKnown {
		errs = append(errs, validateRetain(job.Spec.Retain, job.Spec.Task, fullBackupInterval, env.Settings.RecurringJobMaxRetention, spec.Child("retain"))...)
	}

	if !env.Settings.AllowRecurringJobWhileVolumeDetached && tasksSkippingDetachedVolumes.Has(job.Spec.Task) {
		warnings = append(warnings, fmt.Sprintf("detached volumes will be skipped: the Longhorn setting %s is false", longhorn.SettingAllowRecurringJobWhileVolumeDetached))
	}
	return errs, warnings
}

func validateRecurringJobName(job *longhorn.RecurringJob, metadata, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	namePath := metadata.Child("name")
	switch {
	case job.Name == "":
		errs = append(errs, field.Required(namePath, "a lower-case name such as \"daily-backup\""))
	default:
		if msgs := validation.IsDNS1123Subdomain(job.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(namePath, job.Name, strings.Join(msgs, "; ")))
		} else if !recurringJobNamePattern.MatchString(job.Name) {
			errs = append(errs, field.Invalid(namePath, job.Name, "must be at least 2 characters and match "+recurringJobNamePattern.String()))
		}
	}
	if job.Spec.Name == "" {
		// Longhorn fills spec.name from metadata.name and uses it in volume labels.
		if len(job.Name) > maxRecurringJobNameLength {
			errs = append(errs, field.TooLong(namePath, job.Name, maxRecurringJobNameLength))
		}
		return errs
	}
	if len(job.Spec.Name) > maxRecurringJobNameLength {
		errs = append(errs, field.TooLong(spec.Child("name"), job.Spec.Name, maxRecurringJobNameLength))
	}
	if job.Name != "" && job.Spec.Name != job.Name {
		errs = append(errs, field.Invalid(spec.Child("name"), job.Spec.Name,
			fmt.Sprintf("must equal metadata.name %q or be left empty: Longhorn labels volumes with this name", job.Name)))
	}
	return errs
}

func validateGroups(groups []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, group := range groups {
		groupPath := path.Index(i)
		switch {
		case len(group) > maxGroupNameLength:
			errs = append(errs, field.TooLong(groupPath, group, maxGroupNameLength))
		case !groupNamePattern.MatchString(group):
			errs = append(errs, field.Invalid(groupPath, group, "must be at least 2 characters and match "+groupNamePattern.String()))
		}
		if seen.Has(group) {
			errs = append(errs, field.Duplicate(groupPath, group))
		}
		seen.Insert(group)
	}
	return errs
}

func validateJobLabels(labels map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, key := range sets.List(sets.KeySet(labels)) {
		keyPath := path.Key(key)
		if reservedLabelKeys.Has(key) {
			errs = append(errs, field.Forbidden(keyPath, fmt.Sprintf("%q is reserved: Longhorn sets it on every snapshot and backup", key)))
			continue
		}
		if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
			errs = append(errs, field.Invalid(keyPath, key, strings.Join(msgs, "; ")))
		}
		if labels[key] == "" {
			errs = append(errs, field.Required(keyPath, "label values must not be empty"))
		}
	}
	return errs
}

// validateParameters checks spec.parameters and returns the full-backup interval (0 when absent or
// invalid, so retain is then not compared with it).
func validateParameters(parameters map[string]string, task longhorn.Task, taskKnown bool, path *field.Path) (int, field.ErrorList) {
	var errs field.ErrorList
	fullBackupInterval := 0
	allowed := allowedParameters[task]
	for _, key := range sets.List(sets.KeySet(parameters)) {
		keyPath := path.Key(key)
		value := parameters[key]
		if taskKnown && !allowed.Has(key) {
			if allowed.Len() == 0 {
				errs = append(errs, field.Forbidden(keyPath, fmt.Sprintf("task %s takes no parameters", task)))
			} else {
				errs = append(errs, field.NotSupported(keyPath, key, sets.List(allowed)))
			}
			continue
		}
		switch key {
		case longhorn.ParameterFullBackupInterval:
			interval, err := strconv.Atoi(value)
			if err != nil || interval < 0 || strings.TrimLeft(value, "0123456789") != "" {
				errs = append(errs, field.Invalid(keyPath, value, "must be a whole number of runs, 0 or more, as a string (e.g. \"5\"); 0 means incremental backups only"))
				continue
			}
			fullBackupInterval = interval
		case longhorn.ParameterVolumeBackupPolicy:
			if !slices.Contains(volumeBackupPolicies, value) {
				errs = append(errs, field.NotSupported(keyPath, value, volumeBackupPolicies))
			}
		}
	}
	return fullBackupInterval, errs
}

func validateRetain(retain int, task longhorn.Task, fullBackupInterval, maxRetention int, path *field.Path) field.ErrorList {
	switch task {
	case longhorn.TaskSnapshotCleanup, longhorn.TaskFilesystemTrim:
		if retain != 0 {
			return field.ErrorList{field.Invalid(path, retain, fmt.Sprintf("must be 0 for task %s, which keeps nothing (Longhorn forces it to 0)", task))}
		}
		return nil
	case longhorn.TaskSnapshotDelete:
		if retain < 0 {
			return field.ErrorList{field.Invalid(path, retain, "must not be negative")}
		}
	default:
		if retain < 1 {
			return field.ErrorList{field.Invalid(path, retain, fmt.Sprintf("must be at least 1 for task %s", task))}
		}
	}
	if retain > maxRetention {
		return field.ErrorList{field.Invalid(path, retain, fmt.Sprintf("must be at most %d (the Longhorn setting %s)", maxRetention, longhorn.SettingRecurringJobMaxRetention))}
	}
	// Pruning to retain deletes the oldest full backup, and the incrementals that build on it can no
	// longer be restored: the newest retain backups must reach back past one full backup.
	if fullBackupInterval > 0 && retain <= fullBackupInterval {
		return field.ErrorList{field.Invalid(path, retain, fmt.Sprintf(
			"must be greater than parameters[%s] (%d): otherwise Longhorn deletes the oldest full backup while incremental backups still depend on it, leaving fewer than %d restorable backups; set retain to at least %d",
			longhorn.ParameterFullBackupInterval, fullBackupInterval, retain, fullBackupInterval+1))}
	}
	return nil
}

// RecurringJobIdentity names one RecurringJob of an offline run.
type RecurringJobIdentity struct {
	Namespace string
	// Name is metadata.name as written.
	Name string
	// Source says where the object came from, e.g. "jobs.yaml#2".
	Source string
}

// RecurringJobNameClashes finds RecurringJobs of one offline run that would be the same object in the
// cluster: Longhorn lower-cases names on create, and Git would keep only one of them. It maps the index
// of each later duplicate to its violation.
func RecurringJobNameClashes(jobs []RecurringJobIdentity) map[int]*field.Error {
	clashes := map[int]*field.Error{}
	firstByKey := map[string]int{}
	for i, job := range jobs {
		if job.Name == "" {
			continue
		}
		key := job.Namespace + "/" + strings.ToLower(job.Name)
		first, seen := firstByKey[key]
		if !seen {
			firstByKey[key] = i
			continue
		}
		clashes[i] = &field.Error{
			Type:     field.ErrorTypeDuplicate,
			Field:    "metadata.name",
			BadValue: job.Name,
			Detail: fmt.Sprintf("%s already defines RecurringJob %q; names are compared in lower case because Longhorn lower-cases them, so only one would exist",
				jobs[first].Source, jobs[first].Name),
		}
	}
	return clashes
}

func isKnownTask(task longhorn.Task) bool {
	return slices.Contains(longhorn.Tasks, task)
}

func taskNames() []string {
	names := make([]string, len(longhorn.Tasks))
	for i, task := range longhorn.Tasks {
		names[i] = string(task)
	}
	return names
}
