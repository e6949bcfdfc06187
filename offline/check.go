package offline

import (
	"fmt"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// Violation is one reason an object is denied, shaped like a cause of a Kubernetes Invalid status, so
// that offline and in-cluster verdicts compare field for field.
type Violation struct {
	Field   string `json:"field"`
	Type    string `json:"type"`
	Message string `json:"message"`
	// Line is the line of the field in the object's file, for CI annotations.
	Line int `json:"-"`
}

// Result is the verdict on one object.
type Result struct {
	Source     string                `json:"source"`
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Namespace  string                `json:"namespace"`
	Name       string                `json:"name"`
	Allowed    bool                  `json:"allowed"`
	Violations []Violation           `json:"violations"`
	Warnings   []string              `json:"warnings"`
	Patch      []jsonpatch.Operation `json:"patch"`
	// NextRuns are a RecurringJob's next fire times in UTC, for the text report.
	NextRuns []time.Time `json:"-"`
	// File and Line locate the object in its file, for CI annotations.
	File string `json:"-"`
	Line int    `json:"-"`
}

// Summary counts the verdicts of a run.
type Summary struct {
	Checked int `json:"checked"`
	Denied  int `json:"denied"`
	Mutated int `json:"mutated"`
	Skipped int `json:"skipped"`
}

// Report is the outcome of a run: a result for each object of a handled kind, in input order.
type Report struct {
	Results []Result `json:"results"`
	Summary Summary  `json:"summary"`
}

// nextRunCount is how many fire times the text report shows: enough to see a wrong zone or weekday.
const nextRunCount = 3

// Check decides every document as the cluster would, with the configuration's stand-ins for cluster
// state, at the instant now. Namespaces, StorageClasses, PersistentVolumes and RecurringJobs in the
// input stand in for the cluster's when PVC labels are decided. An object of a kind Longhorn's group
// does not have, or of a near miss of a kind backupguard checks, is denied; objects of other kinds
// backupguard does not check are skipped and counted.
func Check(documents []Document, config *policies.Config, now time.Time) Report {
	report := Report{Results: []Result{}}
	inventory := takeInventory(documents)
	var recurringJobs []policies.RecurringJobIdentity
	var recurringJobResults []int
	for _, document := range documents {
		apiVersion, _ := document.Object["apiVersion"].(string)
		kind, _ := document.Object["kind"].(string)
		groupVersion, _ := schema.ParseGroupVersion(apiVersion)
		switch groupVersion.WithKind(kind).GroupKind() {
		case longhorn.RecurringJobGVK.GroupKind():
			result := checkRecurringJob(document, groupVersion, config, now, inventory.pollingBackupTargets)
			recurringJobs = append(recurringJobs, policies.RecurringJobIdentity{Namespace: result.Namespace, Name: result.Name, Source: result.Source})
			recurringJobResults = append(recurringJobResults, len(report.Results))
			report.Results = append(report.Results, result)
		case pvcGroupKind:
			report.Results = append(report.Results, checkPVC(document, config, inventory))
		case jobGroupKind, cronJobGroupKind:
			if result, selected := checkBackupJob(document, groupVersion.WithKind(kind).GroupKind(), config, inventory); selected {
				report.Results = append(report.Results, result)
			} else {
				report.Summary.Skipped++
			}
		default:
			if err := kindError(groupVersion.WithKind(kind).GroupKind()); err != nil {
				namespace, name := objectIdentity(document.Object)
				report.Results = append(report.Results, Result{
					Source: document.Source, APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name,
					Violations: ViolationsFrom(field.ErrorList{err}), Warnings: []string{}, Patch: []jsonpatch.Operation{},
				})
				continue
			}
			report.Summary.Skipped++
		}
	}
	for index, clash := range policies.RecurringJobNameClashes(recurringJobs) {
		result := &report.Results[recurringJobResults[index]]
		result.Violations = append(result.Violations, ViolationsFrom(field.ErrorList{clash})...)
		result.Allowed = false
	}
	for i := range report.Results {
		locate(&report.Results[i], documents)
	}
	for _, result := range report.Results {
		report.Summary.Checked++
		if !result.Allowed {
			report.Summary.Denied++
		}
		if len(result.Patch) > 0 {
			report.Summary.Mutated++
		}
	}
	return report
}

func checkRecurringJob(document Document, groupVersion schema.GroupVersion, config *policies.Config, now time.Time, polling map[string]string) Result {
	job, errs := longhorn.DecodeRecurringJob(document.Object)
	result := Result{
		Source:     document.Source,
		APIVersion: job.APIVersion,
		Kind:       job.Kind,
		Namespace:  job.Namespace,
		Name:       job.Name,
		Violations: []Violation{},
		Warnings:   []string{},
		Patch:      []jsonpatch.Operation{},
	}
	if groupVersion != longhorn.GroupVersion {
		errs = append(field.ErrorList{field.NotSupported(field.NewPath("apiVersion"), job.APIVersion, []string{longhorn.GroupVersion.String()})}, errs...)
	}
	rules := config.RecurringJobRules()
	if len(errs) == 0 {
		// As a create: offline there is no stored object to ratchet against, and no user.
		decision := policies.AdmitRecurringJob(policies.RecurringJobWrite{Operation: policies.RecurringJobCreate, Object: job}, policies.RecurringJobEnvironment{
			Namespace:            job.Namespace,
			LonghornNamespace:    config.Longhorn.Namespace,
			Settings:             policies.OfflineLonghornSettings(config),
			Now:                  now,
			Window:               config.CompiledWindow(),
			PollingBackupTargets: polling,
			Rules:                rules,
		})
		errs = decision.Denied
		if decision.Warnings != nil {
			result.Warnings = decision.Warnings
		}
	}
	if schedule, cronErrs := policies.ValidateCron(field.NewPath("spec", "cron"), job.Spec.Cron, now, rules.CronTimeZone); len(cronErrs) == 0 {
		result.NextRuns = policies.NextRuns(schedule, now, nextRunCount, rules.CronTimeZone)
	}
	result.Violations = ViolationsFrom(errs)
	result.Allowed = len(errs) == 0
	return result
}

// ViolationsFrom turns field errors into violations, exactly as the API server turns them into the
// causes of an Invalid status.
func ViolationsFrom(errs field.ErrorList) []Violation {
	violations := make([]Violation, 0, len(errs))
	for _, err := range errs {
		violations = append(violations, Violation{Field: err.Field, Type: string(metav1.CauseType(err.Type)), Message: err.ErrorBody()})
	}
	return violations
}

// objectName is "namespace/name", or the name alone when the manifest names no namespace.
func (r Result) objectName() string {
	name := r.Name
	if name == "" {
		name = "(no name)"
	}
	if r.Namespace == "" {
		return name
	}
	return r.Namespace + "/" + name
}

func (r Result) verdict() string {
	switch {
	case !r.Allowed:
		return "denied"
	case len(r.Patch) > 0:
		return "allowed, with changes"
	default:
		return "allowed"
	}
}

func formatTimes(times []time.Time, location *time.Location) string {
	parts := make([]string, len(times))
	for i, t := range times {
		parts[i] = t.In(location).Format("Mon 2006-01-02 15:04 MST")
	}
	return strings.Join(parts, ", ")
}

func (s Summary) String() string {
	return fmt.Sprintf("%d checked, %d denied, %d mutated, %d skipped", s.Checked, s.Denied, s.Mutated, s.Skipped)
}

// locate gives a result the file and line of the document it came from, and each violation the line
// of its field.
func locate(result *Result, documents []Document) {
	for _, document := range documents {
		if document.Source != result.Source {
			continue
		}
		result.File, result.Line = document.File, document.Line
		for i := range result.Violations {
			result.Violations[i].Line = document.FieldLine(result.Violations[i].Field)
		}
		return
	}
}
