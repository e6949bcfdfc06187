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
	// Rules say how violations are enforced and which zone schedules fire in; nil means the defaults.
	Rules *RecurringJobRules
}

func (env RecurringJobEnvironment) rules() *RecurringJobRules {
	if env.Rules == nil {
		return DefaultRecurringJobRules(env.LonghornNamespace)
	}
	return env.Rules
}

// Longhorn's own patterns and limits (longhorn-manager util/util.go ValidateName and ValidateString,
// datastore/longhorn.go NameMaximumLength).
var (
	recurringJobNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]+$`)
	groupNamePattern        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

const (
	maxRecurringJobNameLength = 40
	// defaultRecurringJobConcurrency is what Longhorn's mutator stores for a concurrency of 0
	// (longhorn-manager types.DefaultRecurringJobConcurrency).
	defaultRecurringJobConcurrency = 10
	// groupLabelPrefix is the prefix of the label that puts a volume in a group.
	groupLabelPrefix = "recurring-job-group.longhorn.io/"
)

// reservedLabelKeys are keys Longhorn sets on snapshots and backups itself; a job's label would clash
// (longhorn-manager util/util.go ValidateSnapshotLabels).
var reservedLabelKeys = sets.New("RecurringJob", "KubernetesStatus", "ranchervm-base-image")

var volumeBackupPolicies = []string{"always", "if-not-present", "disabled"}

// taskKeepsNothing are the tasks whose retain Longhorn's mutator forces to 0, and that v1.13 refuses an
// age-based retention for.
var taskKeepsNothing = sets.New(longhorn.TaskSnapshotCleanup, longhorn.TaskFilesystemTrim)

// LonghornStoredRecurringJob is the job as Longhorn stores it: its mutating webhook, which runs before
// any validating webhook on CREATE and UPDATE (longhorn-manager webhook/resources/recurringjob/mutator.go),
// fills spec.name from metadata.name, concurrency 0 with 10, and forces retain into the range each task
// uses. The warnings say what changed where a person would want to know: offline, `validate` models the
// mutation, so its verdict is the one the cluster reaches.
func LonghornStoredRecurringJob(job *longhorn.RecurringJob) (*longhorn.RecurringJob, []string) {
	stored := job.DeepCopy()
	var warnings []string
	if stored.Spec.Name == "" {
		stored.Spec.Name = stored.Name
	}
	if stored.Spec.Concurrency == 0 {
		stored.Spec.Concurrency = defaultRecurringJobConcurrency
	}
	countBased := stored.Spec.RetentionPolicy != longhorn.RetentionAgeBased
	task := stored.Spec.Task
	switch {
	case !isKnownTask(task):
	case taskKeepsNothing.Has(task):
		if stored.Spec.Retain != 0 {
			warnings = append(warnings, fmt.Sprintf("spec.retain: Longhorn will store 0: a %s job keeps nothing", task))
			stored.Spec.Retain = 0
		}
	case task == longhorn.TaskSnapshotDelete:
		if stored.Spec.Retain < 0 {
			warnings = append(warnings, fmt.Sprintf("spec.retain: Longhorn will store 0: a %s job cannot keep fewer than none", task))
			stored.Spec.Retain = 0
		}
	default:
		if stored.Spec.Retain < 1 {
			if countBased {
				warnings = append(warnings, fmt.Sprintf("spec.retain: Longhorn will store 1: a %s job keeps at least one %s", task, keptThing(task)))
			}
			stored.Spec.Retain = 1
		}
	}
	return stored, warnings
}

func keptThing(task longhorn.Task) string {
	switch task {
	case longhorn.TaskBackup, longhorn.TaskBackupForceCreate:
		return "backup"
	case longhorn.TaskSystemBackup:
		return "system backup"
	default:
		return "snapshot"
	}
}

// ValidateRecurringJob applies every RecurringJob rule to a job as written, as Longhorn will store it:
// Longhorn's own checks, so a manifest fails in CI rather than at apply time, and the ones Longhorn
// misses. It returns the violations (the object must be denied when there is any, unless the rules
// say otherwise: see AdmitRecurringJob) and warnings for what is allowed but probably not meant.
func ValidateRecurringJob(written *longhorn.RecurringJob, env RecurringJobEnvironment) (field.ErrorList, []string) {
	job, warnings := LonghornStoredRecurringJob(written)
	var errs field.ErrorList
	rules := env.rules()
	metadata := field.NewPath("metadata")
	spec := field.NewPath("spec")

	errs = append(errs, validateRecurringJobName(written, metadata, spec)...)

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

	_, cronErrs := ValidateCron(spec.Child("cron"), job.Spec.Cron, env.Now, rules.CronTimeZone)
	errs = append(errs, cronErrs...)
	if env.Window != nil && isBackupTask(job.Spec.Task) {
		// Outside the window the backup target is fenced off, and Longhorn refuses new backups.
		errs = append(errs, env.Window.ValidateScheduleInWindow(spec.Child("cron"), job.Spec.Cron, env.Now, rules.CronTimeZone)...)
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

	fullBackupInterval, parameterErrs, parameterWarnings := validateParameters(job.Spec.Parameters, job.Spec.Task, taskKnown, spec.Child("parameters"))
	errs = append(errs, parameterErrs...)
	warnings = append(warnings, parameterWarnings...)

	if taskKnown {
		retentionErrs, retentionWarnings := validateRetention(job, fullBackupInterval, env.Settings.RecurringJobMaxRetention, rules, spec)
		errs = append(errs, retentionErrs...)
		warnings = append(warnings, retentionWarnings...)
	}

	// Every volume task skips detached volumes unless the Setting allows them (longhorn-manager
	// app/recurringjob/volume.go filterVolumesForJob); a system backup is not a volume task.
	if taskKnown && job.Spec.Task != longhorn.TaskSystemBackup && !env.Settings.AllowRecurringJobWhileVolumeDetached {
		warnings = append(warnings, fmt.Sprintf("detached volumes will be skipped: the Longhorn setting %s is false", longhorn.SettingAllowRecurringJobWhileVolumeDetached))
	}
	return errs, warnings
}

// validateRecurringJobName checks the names. The job's identity is metadata.name: it names the CronJob
// and is the label key that selects volumes (longhorn-manager controller/recurring_job_controller.go,
// app/recurringjob/volume.go). spec.name only has to fit in 40 characters; Longhorn fills an empty one
// from metadata.name, so then metadata.name must fit.
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
	switch {
	case job.Spec.Name == "" && len(job.Name) > maxRecurringJobNameLength:
		errs = append(errs, field.TooLong(namePath, job.Name, maxRecurringJobNameLength))
	case len(job.Spec.Name) > maxRecurringJobNameLength:
		errs = append(errs, field.TooLong(spec.Child("name"), job.Spec.Name, maxRecurringJobNameLength))
	}
	return errs
}

func validateGroups(groups []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, group := range groups {
		if problem := groupNameProblem(group); problem != "" {
			errs = append(errs, field.Invalid(path.Index(i), group, problem))
		}
		if seen.Has(group) {
			errs = append(errs, field.Duplicate(path.Index(i), group))
		}
		seen.Insert(group)
	}
	return errs
}

// groupNameProblem says why a group name cannot work, "" when it can. Longhorn's pattern
// (util.ValidateString) lets "nightly-" through, but a volume joins a group through the label key
// recurring-job-group.longhorn.io/<group>, which must be a valid label key: a job in such a group could
// never select a volume.
func groupNameProblem(group string) string {
	if !groupNamePattern.MatchString(group) {
		return "must be at least 2 characters and match " + groupNamePattern.String()
	}
	if msgs := validation.IsQualifiedName(groupLabelPrefix + group); len(msgs) > 0 {
		return fmt.Sprintf("must be usable in the label key %s<group>, or the job can never select a volume: %s", groupLabelPrefix, strings.Join(msgs, "; "))
	}
	return ""
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
// invalid, so retain is then not compared with it). Longhorn validates parameters only for backup and
// backup-force-create (longhorn-manager datastore/longhorn.go ValidateRecurringJobParameters) and
// ignores them on every other task, so there they are warnings; a system backup reads
// volume-backup-policy at run time without checking it (app/recurringjob/systembackup.go), so its
// value is checked here.
func validateParameters(parameters map[string]string, task longhorn.Task, taskKnown bool, path *field.Path) (int, field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	fullBackupInterval := 0
	if !taskKnown {
		return 0, nil, nil
	}
	for _, key := range sets.List(sets.KeySet(parameters)) {
		keyPath := path.Key(key)
		value := parameters[key]
		switch task {
		case longhorn.TaskBackup, longhorn.TaskBackupForceCreate:
			switch key {
			case longhorn.ParameterFullBackupInterval:
				// Longhorn takes whatever strconv.Atoi takes ("+5" too); a negative value passes its check
				// and makes no sense.
				interval, err := strconv.Atoi(value)
				if err != nil || interval < 0 {
					errs = append(errs, field.Invalid(keyPath, value, "must be a whole number of runs, 0 or more, as a string (e.g. \"5\"); 0 means incremental backups only"))
					continue
				}
				fullBackupInterval = interval
			case longhorn.ParameterVolumeBackupPolicy:
				if !slices.Contains(volumeBackupPolicies, value) {
					errs = append(errs, field.NotSupported(keyPath, value, volumeBackupPolicies))
					continue
				}
				warnings = append(warnings, fmt.Sprintf("%s: has no effect on a %s job: only system-backup jobs read it", keyPath, task))
			default:
				errs = append(errs, field.NotSupported(keyPath, key, []string{longhorn.ParameterFullBackupInterval, longhorn.ParameterVolumeBackupPolicy}))
			}
		case longhorn.TaskSystemBackup:
			switch key {
			case longhorn.ParameterVolumeBackupPolicy:
				// Empty is Longhorn's default, if-not-present (webhook/resources/systembackup/mutator.go).
				if value != "" && !slices.Contains(volumeBackupPolicies, value) {
					errs = append(errs, field.NotSupported(keyPath, value, volumeBackupPolicies))
				}
			default:
				warnings = append(warnings, fmt.Sprintf("%s: has no effect on a %s job: Longhorn ignores it", keyPath, task))
			}
		default:
			warnings = append(warnings, fmt.Sprintf("%s: has no effect on a %s job: Longhorn reads parameters only for backup jobs", keyPath, task))
		}
	}
	return fullBackupInterval, errs, warnings
}

// validateRetention checks what a job keeps, on the job as Longhorn stores it (retain already forced
// into each task's range).
func validateRetention(job *longhorn.RecurringJob, fullBackupInterval, maxRetention int, rules *RecurringJobRules, spec *field.Path) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	retainPath := spec.Child("retain")
	task := job.Spec.Task
	if job.Spec.Retain > maxRetention {
		// Longhorn checks this whatever the retention policy (webhook/resources/recurringjob/validator.go).
		errs = append(errs, field.Invalid(retainPath, job.Spec.Retain, fmt.Sprintf("must be at most %d (the Longhorn setting %s)", maxRetention, longhorn.SettingRecurringJobMaxRetention)))
	}
	ageErrs, countBased := validateRetentionPolicy(job, spec)
	errs = append(errs, ageErrs...)
	if !countBased || fullBackupInterval == 0 || task == longhorn.TaskSystemBackup || job.Spec.Retain > fullBackupInterval {
		return errs, warnings
	}
	// Each backup carries its complete block map, so pruning never orphans anything (backupstore
	// deltablock.go mergeSnapshotMap). What retain > full-backup-interval guarantees is that the backups
	// kept always include a full one: one whose every block was uploaded afresh, which also repairs a
	// damaged block in the store.
	violation := field.Invalid(retainPath, job.Spec.Retain, fmt.Sprintf(
		"must be greater than parameters[%s] (%d), so that the %d backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least %d",
		longhorn.ParameterFullBackupInterval, fullBackupInterval, job.Spec.Retain, fullBackupInterval+1))
	if rules.RetainAboveFullBackupInterval == EnforcementWarn {
		return errs, append(warnings, violation.Error())
	}
	return append(errs, violation), warnings
}

// validateRetentionPolicy checks Longhorn v1.13's retention fields and tells whether retain counts.
// v1.13's CRD allows count-based (the default) and age-based, with retainAge a non-negative Go duration;
// its webhook refuses age-based for the jobs that keep nothing; a zero retainAge with age-based makes
// Longhorn never start the job (the CRD's own description), which backupguard refuses.
func validateRetentionPolicy(job *longhorn.RecurringJob, spec *field.Path) (field.ErrorList, bool) {
	var errs field.ErrorList
	policyPath, agePath := spec.Child("retentionPolicy"), spec.Child("retainAge")
	var retainAge time.Duration
	if job.Spec.RetainAge != "" {
		age, err := time.ParseDuration(job.Spec.RetainAge)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(agePath, job.Spec.RetainAge, "must be a Go duration such as \"720h\" (there is no day unit: a day is \"24h\")"))
		case age < 0:
			errs = append(errs, field.Invalid(agePath, job.Spec.RetainAge, "must not be negative"))
		default:
			retainAge = age
		}
	}
	switch job.Spec.RetentionPolicy {
	case "", longhorn.RetentionCountBased:
		return errs, true
	case longhorn.RetentionAgeBased:
		switch {
		case taskKeepsNothing.Has(job.Spec.Task) || job.Spec.Task == longhorn.TaskSnapshotDelete:
			errs = append(errs, field.Invalid(policyPath, job.Spec.RetentionPolicy, fmt.Sprintf("cannot be used with task %s, which keeps nothing by age (Longhorn refuses it)", job.Spec.Task)))
		case retainAge <= 0 && len(errs) == 0:
			errs = append(errs, field.Required(agePath, "a positive duration such as \"720h\": with retentionPolicy age-based and no retainAge, Longhorn never starts the job"))
		}
		return errs, false
	default:
		names := make([]string, len(longhorn.RetentionPolicies))
		for i, policy := range longhorn.RetentionPolicies {
			names[i] = string(policy)
		}
		return append(errs, field.NotSupported(policyPath, job.Spec.RetentionPolicy, names)), true
	}
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
