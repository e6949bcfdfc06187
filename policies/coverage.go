package policies

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// CoverageVerdict says whether a volume is being backed up.
type CoverageVerdict string

// The verdicts, from the most to the least urgent.
const (
	// CoverageFailing: the newest backup of the volume is in Error.
	CoverageFailing CoverageVerdict = "failing"
	// CoverageStale: the newest completed backup is older than twice the backup job's interval (or than
	// the given maximum age), or there is none although the volume is that old.
	CoverageStale CoverageVerdict = "stale"
	// CoverageSkipped: a backup job selects the volume, but it is detached and Longhorn skips detached
	// volumes (Setting allow-recurring-job-while-volume-detached is false).
	CoverageSkipped CoverageVerdict = "skipped"
	// CoverageDangling: a recurring label names a job or group no RecurringJob provides, or has a value
	// other than "enabled", which Longhorn ignores.
	CoverageDangling CoverageVerdict = "dangling"
	// CoverageUnprotected: no backup job selects the volume.
	CoverageUnprotected CoverageVerdict = "unprotected"
	// CoverageProtected: a backup job selects it, and its backups are recent.
	CoverageProtected CoverageVerdict = "protected"
)

// CoverageVerdicts lists every verdict, most urgent first.
var CoverageVerdicts = []CoverageVerdict{CoverageFailing, CoverageStale, CoverageSkipped, CoverageDangling, CoverageUnprotected, CoverageProtected}

// CoverageVolume is what is known of one volume: a PVC with its Longhorn Volume, a PVC whose Volume is
// not known (offline), or a Volume without a PVC.
type CoverageVolume struct {
	// Namespace and PVC name the claim; empty for a Volume without one.
	Namespace, PVC string
	// Volume is the Longhorn Volume's name; empty when it is not known.
	Volume string
	// Labels are the recurring labels Longhorn selects the volume by: the Volume's, or for a PVC whose
	// Volume is not known, the ones its source PVC will give it.
	Labels map[string]string
	// Detached is true when the volume is known not to be attached (detached, or on its way): Longhorn
	// runs volume jobs only for attached volumes unless the Setting allows detached ones.
	Detached bool
	// Faulted and Restoring volumes are skipped by every job whatever the Setting (longhorn-manager
	// app/recurringjob/util.go filterVolumesForJob: robustness faulted, status.restoreRequired).
	Faulted, Restoring bool
	// Created is when the volume (or its PVC) was created; zero when not known.
	Created time.Time
	// LastBackup is when the newest completed backup of the volume was made; zero when none is known.
	LastBackup time.Time
	// NewestBackupState and NewestBackupError are the state and error of the newest backup, whatever
	// its state.
	NewestBackupState, NewestBackupError string
}

// CoverageFacts are what the coverage report is decided from, gathered once.
type CoverageFacts struct {
	Now     time.Time
	Jobs    []*longhorn.RecurringJob
	Volumes []CoverageVolume
	// AllowDetached is the Setting allow-recurring-job-while-volume-detached.
	AllowDetached bool
	// Window is the S3 window, nil when none is configured.
	Window *Window
	// CronZone is the zone Longhorn's CronJobs fire in.
	CronZone *time.Location
	// MaxAge, when above 0, is the age past which a backup is stale whatever the job's interval.
	MaxAge time.Duration
}

// JobSelection is one RecurringJob that selects a volume, and how.
type JobSelection struct {
	Job  string        `json:"job"`
	Task longhorn.Task `json:"task"`
	// Via is "job label", "group <name>" or "default group (no recurring labels of its own)".
	Via string `json:"via"`
}

// CoverageRow is the verdict on one volume.
type CoverageRow struct {
	Namespace string         `json:"namespace,omitempty"`
	PVC       string         `json:"pvc,omitempty"`
	Volume    string         `json:"volume,omitempty"`
	Jobs      []JobSelection `json:"jobs"`
	// NextBackup is the next run of a backup job that selects the volume, in UTC; zero when none.
	NextBackup time.Time `json:"nextBackup,omitzero"`
	// NextBackupInWindow says whether that run falls inside the S3 window; nil without a window.
	NextBackupInWindow *bool     `json:"nextBackupInWindow,omitempty"`
	LastBackup         time.Time `json:"lastBackup,omitzero"`
	// Age is how old LastBackup is at the report's instant; JSON carries it as ageSeconds.
	Age     time.Duration   `json:"-"`
	Verdict CoverageVerdict `json:"verdict"`
	Reasons []string        `json:"reasons"`
}

// MarshalJSON writes the row with its age in seconds, which scripts read more easily than a Go duration.
func (r CoverageRow) MarshalJSON() ([]byte, error) {
	type plain CoverageRow
	return json.Marshal(struct {
		plain
		AgeSeconds int64 `json:"ageSeconds,omitempty"`
	}{plain(r), int64(r.Age.Seconds())})
}

// CoverageReport is the whole report.
type CoverageReport struct {
	Rows []CoverageRow `json:"rows"`
	// IdleJobs are RecurringJobs that select no volume.
	IdleJobs []string `json:"idleJobs"`
}

// nextRunsForInterval is how many fire times the interval of a schedule is measured over.
const nextRunsForInterval = 8

// DecideCoverage works out, for every volume, which RecurringJobs select it and whether it is being
// backed up. Selection follows Longhorn: a job selects a volume labelled
// recurring-job.longhorn.io/<job>: enabled, or recurring-job-group.longhorn.io/<group>: enabled for one
// of its groups; a volume with no recurring label of its own is in group "default" (longhorn-manager
// datastore/longhorn.go labelRecurringJobDefault, app/recurringjob/volume.go); only "enabled" counts.
func DecideCoverage(facts CoverageFacts) CoverageReport {
	zone := facts.CronZone
	if zone == nil {
		zone = time.UTC
	}
	jobs := map[string]*longhorn.RecurringJob{}
	groups := map[string][]*longhorn.RecurringJob{}
	for _, job := range facts.Jobs {
		jobs[job.Name] = job
		for _, group := range job.Spec.Groups {
			groups[group] = append(groups[group], job)
		}
	}
	used := sets.New[string]()
	report := CoverageReport{Rows: []CoverageRow{}, IdleJobs: []string{}}
	for _, volume := range facts.Volumes {
		row := CoverageRow{Namespace: volume.Namespace, PVC: volume.PVC, Volume: volume.Volume, Jobs: []JobSelection{}, Reasons: []string{}}
		var dangling []string
		selected := map[string]JobSelection{}
		own := 0
		for _, key := range sets.List(sets.KeySet(volume.Labels)) {
			value := volume.Labels[key]
			var name string
			var isGroup bool
			switch {
			case strings.HasPrefix(key, longhorn.RecurringJobLabelPrefix):
				name = strings.TrimPrefix(key, longhorn.RecurringJobLabelPrefix)
				if name == strings.TrimPrefix(longhorn.RecurringJobSourceLabel, longhorn.RecurringJobLabelPrefix) {
					continue
				}
			case strings.HasPrefix(key, longhorn.RecurringJobGroupLabelPrefix):
				name, isGroup = strings.TrimPrefix(key, longhorn.RecurringJobGroupLabelPrefix), true
			default:
				continue
			}
			own++
			if value != "enabled" {
				dangling = append(dangling, fmt.Sprintf("%s=%s: Longhorn only counts the value enabled", key, value))
				continue
			}
			if isGroup {
				// Longhorn puts a volume without recurring labels in group default itself: no job in it
				// leaves the volume unprotected, but the label is no mistake.
				if len(groups[name]) == 0 && name != longhorn.DefaultGroup {
					dangling = append(dangling, fmt.Sprintf("%s: no RecurringJob is in group %s", key, name))
				}
				for _, job := range groups[name] {
					if _, seen := selected[job.Name]; !seen {
						selected[job.Name] = JobSelection{Job: job.Name, Task: job.Spec.Task, Via: "group " + name}
					}
				}
				continue
			}
			job, found := jobs[name]
			if !found {
				dangling = append(dangling, fmt.Sprintf("%s: no RecurringJob is named %s", key, name))
				continue
			}
			selected[name] = JobSelection{Job: name, Task: job.Spec.Task, Via: "job label"}
		}
		if own == 0 {
			for _, job := range groups["default"] {
				selected[job.Name] = JobSelection{Job: job.Name, Task: job.Spec.Task, Via: "default group (no recurring labels of its own)"}
			}
		}
		var backupJobs []*longhorn.RecurringJob
		for _, name := range sets.List(sets.KeySet(selected)) {
			row.Jobs = append(row.Jobs, selected[name])
			used.Insert(name)
			if task := selected[name].Task; task == longhorn.TaskBackup || task == longhorn.TaskBackupForceCreate {
				backupJobs = append(backupJobs, jobs[name])
			}
		}
		row.LastBackup = volume.LastBackup
		if !volume.LastBackup.IsZero() {
			row.Age = facts.Now.Sub(volume.LastBackup)
		}
		interval := time.Duration(0)
		for _, job := range backupJobs {
			schedule, errs := ValidateCron(field.NewPath("spec", "cron"), job.Spec.Cron, facts.Now, zone)
			if len(errs) > 0 {
				row.Reasons = append(row.Reasons, fmt.Sprintf("RecurringJob %s has a schedule Longhorn cannot run: %s", job.Name, errs[0].ErrorBody()))
				continue
			}
			runs := NextRuns(schedule, facts.Now, nextRunsForInterval, zone)
			if len(runs) > 0 && (row.NextBackup.IsZero() || runs[0].Before(row.NextBackup)) {
				row.NextBackup = runs[0]
			}
			if gap := longestGap(facts.Now, runs); gap > 0 && (interval == 0 || gap < interval) {
				interval = gap
			}
		}
		if facts.Window != nil && !row.NextBackup.IsZero() {
			inside := facts.Window.Covers(row.NextBackup)
			row.NextBackupInWindow = &inside
		}
		staleAfter := 2 * interval
		if facts.MaxAge > 0 {
			staleAfter = facts.MaxAge
		}
		// Why Longhorn skips the volume, if it does (app/recurringjob/util.go filterVolumesForJob): the
		// verdict when nothing is worse, and the cause given with a failing or stale one.
		var skipped string
		switch {
		case len(backupJobs) == 0:
		case volume.Faulted:
			skipped = "faulted: Longhorn runs no recurring job for a faulted volume"
		case volume.Restoring:
			skipped = "restoring from a backup: Longhorn runs no recurring job for it until the restore ends"
		case volume.Detached && !facts.AllowDetached:
			skipped = "detached, and the Longhorn setting " + longhorn.SettingAllowRecurringJobWhileVolumeDetached + " is false"
		}
		switch {
		case volume.NewestBackupState == "Error":
			row.Verdict = CoverageFailing
			row.Reasons = append(row.Reasons, "the newest backup is in Error: "+volume.NewestBackupError)
		case len(backupJobs) > 0 && staleAfter > 0 && !volume.LastBackup.IsZero() && row.Age > staleAfter:
			row.Verdict = CoverageStale
			row.Reasons = append(row.Reasons, fmt.Sprintf("the last backup is %s old, more than %s", roundDuration(row.Age), roundDuration(staleAfter)))
		case len(backupJobs) > 0 && staleAfter > 0 && volume.LastBackup.IsZero() && !volume.Created.IsZero() && facts.Now.Sub(volume.Created) > staleAfter:
			row.Verdict = CoverageStale
			row.Reasons = append(row.Reasons, fmt.Sprintf("no backup yet, %s after the volume was created", roundDuration(facts.Now.Sub(volume.Created))))
		case skipped != "":
			row.Verdict = CoverageSkipped
		case len(dangling) > 0:
			row.Verdict = CoverageDangling
		case len(backupJobs) == 0:
			row.Verdict = CoverageUnprotected
			row.Reasons = append(row.Reasons, "no backup job selects it")
		default:
			row.Verdict = CoverageProtected
		}
		if skipped != "" {
			row.Reasons = append(row.Reasons, skipped)
		}
		if row.NextBackupInWindow != nil && !*row.NextBackupInWindow {
			row.Reasons = append(row.Reasons, "the next backup runs outside the S3 window, when the backup target is unreachable")
		}
		row.Reasons = append(row.Reasons, dangling...)
		report.Rows = append(report.Rows, row)
	}
	for _, job := range facts.Jobs {
		if !used.Has(job.Name) {
			report.IdleJobs = append(report.IdleJobs, job.Name)
		}
	}
	sort.Strings(report.IdleJobs)
	slices.SortStableFunc(report.Rows, func(a, b CoverageRow) int {
		return strings.Compare(a.Namespace+"/"+a.PVC+"/"+a.Volume, b.Namespace+"/"+b.PVC+"/"+b.Volume)
	})
	return report
}

// longestGap is the longest time between now and the first run, or between two runs: what a volume
// waits at worst for its next backup.
func longestGap(now time.Time, runs []time.Time) time.Duration {
	var longest time.Duration
	previous := now
	for i, run := range runs {
		if gap := run.Sub(previous); i > 0 && gap > longest {
			longest = gap
		}
		previous = run
	}
	return longest
}

// Covers tells whether a backup starting at instant t runs inside the window: in an opening, at least
// the lead after it opened, before it ends (the rule FirstRunOutside applies to every fire time).
func (w *Window) Covers(t time.Time) bool {
	opening := w.opens.Next(t.Add(-w.duration).UTC())
	return !opening.IsZero() && !opening.After(t.Add(-w.lead))
}

func roundDuration(d time.Duration) string {
	if d >= time.Hour {
		return d.Round(time.Hour).String()
	}
	return d.Round(time.Minute).String()
}

// AuditedJob is a RecurringJob that exists and breaks a rule: what the webhook would deny today.
type AuditedJob struct {
	Job        string   `json:"job"`
	Violations []string `json:"violations"`
}

// RecurringJobAudit is the audit of the RecurringJobs that exist.
type RecurringJobAudit struct {
	Jobs []AuditedJob `json:"jobs"`
	// ByField counts the violations by the field they are about.
	ByField map[string]int `json:"byField"`
}

// AuditRecurringJobs applies ValidateRecurringJob to RecurringJobs that already exist, which may
// predate the webhook or have come in while it was down; env.Namespace is taken from each job.
func AuditRecurringJobs(jobs []*longhorn.RecurringJob, env RecurringJobEnvironment) RecurringJobAudit {
	audit := RecurringJobAudit{Jobs: []AuditedJob{}, ByField: map[string]int{}}
	for _, job := range jobs {
		env := env
		env.Namespace = job.Namespace
		errs, _ := ValidateRecurringJob(job, env)
		if len(errs) == 0 {
			continue
		}
		audited := AuditedJob{Job: job.Name, Violations: []string{}}
		for _, err := range errs {
			audited.Violations = append(audited.Violations, err.Error())
			audit.ByField[err.Field]++
		}
		audit.Jobs = append(audit.Jobs, audited)
	}
	slices.SortFunc(audit.Jobs, func(a, b AuditedJob) int { return strings.Compare(a.Job, b.Job) })
	return audit
}
