package policies

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// Enforcement says what a broken rule does.
type Enforcement string

// The enforcement levels.
const (
	// EnforcementDeny refuses the write.
	EnforcementDeny Enforcement = "Deny"
	// EnforcementWarn lets the write through with an admission warning.
	EnforcementWarn Enforcement = "Warn"
)

var enforcements = []string{string(EnforcementDeny), string(EnforcementWarn)}

// RecurringJobsConfig says how RecurringJob rules are enforced.
type RecurringJobsConfig struct {
	// Enforcement is Deny (default) or Warn: with Warn every violation is an admission warning and is
	// counted, nothing is refused. For first rollouts over an existing cluster.
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// RetainAboveFullBackupInterval is Deny (default) or Warn, for the rule that a count-based backup job
	// keeps more backups than its full-backup interval.
	RetainAboveFullBackupInterval Enforcement `json:"retainAboveFullBackupInterval,omitempty"`
	// TrustedWriters are users whose writes are never refused, only reported: a broken restore is worse
	// than a broken rule. Default: Longhorn's own service account, which writes the RecurringJobs that
	// volume and system restores bring back and those created in Longhorn's UI. An empty list trusts
	// nobody.
	TrustedWriters []string `json:"trustedWriters,omitempty"`
}

// RecurringJobRules are the compiled RecurringJob settings.
type RecurringJobRules struct {
	Enforcement                   Enforcement
	RetainAboveFullBackupInterval Enforcement
	TrustedWriters                sets.Set[string]
	// CronTimeZone is the zone Longhorn's CronJobs fire in (longhorn.cronTimeZone).
	CronTimeZone *time.Location
}

// LonghornServiceAccount is the user Longhorn's manager writes as (longhorn-manager's chart and
// deploy/longhorn.yaml name the ServiceAccount longhorn-service-account).
func LonghornServiceAccount(longhornNamespace string) string {
	return fmt.Sprintf("system:serviceaccount:%s:longhorn-service-account", longhornNamespace)
}

// DefaultRecurringJobRules are the rules of a config that sets nothing.
func DefaultRecurringJobRules(longhornNamespace string) *RecurringJobRules {
	return &RecurringJobRules{
		Enforcement:                   EnforcementDeny,
		RetainAboveFullBackupInterval: EnforcementDeny,
		TrustedWriters:                sets.New(LonghornServiceAccount(longhornNamespace)),
		CronTimeZone:                  time.UTC,
	}
}

// CompileRecurringJobRules checks the recurringJobs section (and longhorn.cronTimeZone) and fills in the
// defaults. longhornConfig must already carry its defaults.
func CompileRecurringJobRules(config RecurringJobsConfig, longhornConfig LonghornConfig, path *field.Path) (*RecurringJobRules, field.ErrorList) {
	var errs field.ErrorList
	rules := DefaultRecurringJobRules(longhornConfig.Namespace)
	for _, setting := range []struct {
		name  string
		value Enforcement
		into  *Enforcement
	}{
		{"enforcement", config.Enforcement, &rules.Enforcement},
		{"retainAboveFullBackupInterval", config.RetainAboveFullBackupInterval, &rules.RetainAboveFullBackupInterval},
	} {
		switch setting.value {
		case "":
		case EnforcementDeny, EnforcementWarn:
			*setting.into = setting.value
		default:
			errs = append(errs, field.NotSupported(path.Child(setting.name), setting.value, enforcements))
		}
	}
	if config.TrustedWriters != nil {
		rules.TrustedWriters = sets.New(config.TrustedWriters...)
		for i, writer := range config.TrustedWriters {
			if writer == "" {
				errs = append(errs, field.Required(path.Child("trustedWriters").Index(i), "a user name such as system:serviceaccount:longhorn-system:longhorn-service-account"))
			}
		}
	}
	if zone := longhornConfig.CronTimeZone; zone != "" {
		location, err := time.LoadLocation(zone)
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath("longhorn", "cronTimeZone"), zone, "not a known time zone: use an IANA name such as UTC or Europe/Berlin"))
		} else {
			rules.CronTimeZone = location
		}
	}
	return rules, errs
}

// RecurringJobOperation is the kind of write being admitted.
type RecurringJobOperation string

// The operations RecurringJob admission decides.
const (
	RecurringJobCreate RecurringJobOperation = "CREATE"
	RecurringJobUpdate RecurringJobOperation = "UPDATE"
)

// RecurringJobWrite is one write of a RecurringJob to admit.
type RecurringJobWrite struct {
	Operation RecurringJobOperation
	// Object is the job as written (after Longhorn's mutation, in a cluster where its webhook runs).
	Object *longhorn.RecurringJob
	// OldObject is the stored job an UPDATE replaces.
	OldObject *longhorn.RecurringJob
	// User is who writes it, as the API server authenticated them ("" offline).
	User string
}

// RecurringJobVerdict is the decision on one write.
type RecurringJobVerdict struct {
	// Denied are the violations that refuse the write; none means it is allowed.
	Denied field.ErrorList
	// Warnings go back to the client.
	Warnings []string
	// LetThrough are violations that did not refuse the write, to be reported (metric, log, Event).
	LetThrough field.ErrorList
	// LetThroughBecause says why: one of the LetThrough... reasons.
	LetThroughBecause string
}

// Why violations were let through.
const (
	LetThroughTrustedWriter = "trusted-writer"
	LetThroughWarnOnly      = "warn-only"
)

// AdmitRecurringJob decides a write the way Kubernetes' own validation ratchets:
//   - an UPDATE of a job being deleted, or one that leaves the spec as it was (a label, an annotation, the
//     garbage collector removing the foregroundDeletion finalizer Longhorn's UI deletes with), is always
//     allowed, so a job that broke a rule later (the window or a Setting changed, or it predates
//     backupguard) can still be deleted and relabelled;
//   - an UPDATE that changes the spec is refused only for violations the stored job did not already
//     have; the old ones come back as warnings;
//   - a trusted writer (Longhorn's own service account: restores bring back jobs and must not lose them)
//     is never refused, only reported;
//   - with enforcement Warn nothing is refused, everything is reported.
func AdmitRecurringJob(write RecurringJobWrite, env RecurringJobEnvironment) RecurringJobVerdict {
	if write.Operation == RecurringJobUpdate && write.OldObject != nil {
		if write.Object.DeletionTimestamp != nil || write.OldObject.DeletionTimestamp != nil {
			return RecurringJobVerdict{}
		}
		oldStored, _ := LonghornStoredRecurringJob(write.OldObject)
		newStored, _ := LonghornStoredRecurringJob(write.Object)
		if equality.Semantic.DeepEqual(oldStored.Spec, newStored.Spec) {
			return RecurringJobVerdict{}
		}
	}
	violations, warnings := ValidateRecurringJob(write.Object, env)
	verdict := RecurringJobVerdict{Warnings: warnings}
	if write.Operation == RecurringJobUpdate && write.OldObject != nil {
		oldViolations, _ := ValidateRecurringJob(write.OldObject, env)
		known := sets.New[string]()
		for _, violation := range oldViolations {
			known.Insert(violationKey(violation))
		}
		var fresh field.ErrorList
		for _, violation := range violations {
			if known.Has(violationKey(violation)) {
				verdict.Warnings = append(verdict.Warnings, violation.Error()+" (already so before this update, so not refused)")
				continue
			}
			fresh = append(fresh, violation)
		}
		violations = fresh
	}
	if len(violations) == 0 {
		return verdict
	}
	rules := env.rules()
	switch {
	case write.User != "" && rules.TrustedWriters.Has(write.User):
		verdict.LetThroughBecause = LetThroughTrustedWriter
		for _, violation := range violations {
			verdict.Warnings = append(verdict.Warnings, fmt.Sprintf("%s (not refused: written by %s, a trusted writer in recurringJobs.trustedWriters)", violation.Error(), write.User))
		}
	case rules.Enforcement == EnforcementWarn:
		verdict.LetThroughBecause = LetThroughWarnOnly
		for _, violation := range violations {
			verdict.Warnings = append(verdict.Warnings, violation.Error()+" (not refused: recurringJobs.enforcement is Warn)")
		}
	default:
		verdict.Denied = violations
		return verdict
	}
	verdict.LetThrough = violations
	return verdict
}

// violationKey identifies a violation across the old and new object: the same kind of problem with the
// same field and value. A changed value is a new violation, as in Kubernetes' ratcheting.
func violationKey(violation *field.Error) string {
	return fmt.Sprintf("%s|%s|%v", violation.Type, violation.Field, violation.BadValue)
}
