package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// coverageReport is what `backupguard coverage` prints: the rows, the idle jobs, the audit, counts.
type coverageReport struct {
	Now time.Time `json:"now"`
	policies.CoverageReport
	Audit   policies.RecurringJobAudit       `json:"audit"`
	Summary map[policies.CoverageVerdict]int `json:"summary"`
}

func (r coverageReport) writeJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}

// cells are one row's columns, as text and markdown show them.
func (r coverageReport) cells(row policies.CoverageRow, zone *time.Location) []string {
	jobs, tasks := []string{}, []string{}
	for _, selection := range row.Jobs {
		name := selection.Job
		if group, ok := strings.CutPrefix(selection.Via, "group "); ok {
			name += "[" + group + "]"
		} else if strings.HasPrefix(selection.Via, "default group") {
			name += "[" + longhorn.DefaultGroup + "]"
		}
		jobs = append(jobs, name)
		if task := string(selection.Task); !slices.Contains(tasks, task) {
			tasks = append(tasks, task)
		}
	}
	next, nextLocal, inWindow := "-", "-", "-"
	if !row.NextBackup.IsZero() {
		next = row.NextBackup.UTC().Format("2006-01-02 15:04")
		nextLocal = row.NextBackup.In(zone).Format("2006-01-02 15:04 MST")
	}
	if row.NextBackupInWindow != nil {
		inWindow = map[bool]string{true: "yes", false: "no"}[*row.NextBackupInWindow]
	}
	last, age := "-", "-"
	if !row.LastBackup.IsZero() {
		last, age = row.LastBackup.UTC().Format("2006-01-02 15:04"), humanAge(row.Age)
	}
	cells := []string{dash(row.Namespace), dash(row.PVC), dash(row.Volume), dash(strings.Join(jobs, ",")), dash(strings.Join(tasks, ",")), next}
	if zone != time.UTC {
		cells = append(cells, nextLocal)
	}
	return append(cells, inWindow, last, age, string(row.Verdict), dash(strings.Join(row.Reasons, "; ")))
}

func (r coverageReport) header(zone *time.Location) []string {
	header := []string{"NAMESPACE", "PVC", "VOLUME", "JOBS", "TASKS", "NEXT BACKUP (UTC)"}
	if zone != time.UTC {
		header = append(header, "NEXT BACKUP ("+zone.String()+")")
	}
	return append(header, "IN WINDOW", "LAST BACKUP (UTC)", "AGE", "VERDICT", "WHY")
}

func (r coverageReport) writeText(w io.Writer, zone *time.Location) error {
	fmt.Fprintf(w, "Coverage at %s\n\n", r.Now.UTC().Format(time.RFC3339))
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(table, strings.Join(r.header(zone), "\t"))
	for _, row := range r.Rows {
		fmt.Fprintln(table, strings.Join(r.cells(row, zone), "\t"))
	}
	if err := table.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", r.summaryLine())
	if len(r.IdleJobs) > 0 {
		fmt.Fprintf(w, "RecurringJobs that select no volume: %s\n", strings.Join(r.IdleJobs, ", "))
	}
	if len(r.Audit.Jobs) == 0 {
		_, err := fmt.Fprintln(w, "Audit: every RecurringJob follows the rules")
		return err
	}
	fmt.Fprintf(w, "Audit: %d RecurringJob(s) break a rule (the webhook would deny them today): %s\n", len(r.Audit.Jobs), r.byField())
	for _, job := range r.Audit.Jobs {
		for _, violation := range job.Violations {
			fmt.Fprintf(w, "  %s: %s\n", job.Job, violation)
		}
	}
	return nil
}

func (r coverageReport) writeMarkdown(w io.Writer, zone *time.Location) error {
	fmt.Fprintf(w, "### Backup coverage at %s\n\n", r.Now.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "%s\n\n", r.summaryLine())
	header := r.header(zone)
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
	for _, row := range r.Rows {
		cells := r.cells(row, zone)
		for i, cell := range cells {
			cells[i] = strings.ReplaceAll(cell, "|", `\|`)
		}
		cells[len(header)-2] = "**" + cells[len(header)-2] + "**"
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	if len(r.IdleJobs) > 0 {
		fmt.Fprintf(w, "\nRecurringJobs that select no volume: `%s`\n", strings.Join(r.IdleJobs, "`, `"))
	}
	if len(r.Audit.Jobs) == 0 {
		_, err := fmt.Fprintln(w, "\nAudit: every RecurringJob follows the rules.")
		return err
	}
	fmt.Fprintf(w, "\nAudit: %d RecurringJob(s) break a rule (%s):\n\n", len(r.Audit.Jobs), r.byField())
	for _, job := range r.Audit.Jobs {
		for _, violation := range job.Violations {
			fmt.Fprintf(w, "- `%s`: %s\n", job.Job, violation)
		}
	}
	return nil
}

// summaryLine counts the rows by verdict, most urgent first.
func (r coverageReport) summaryLine() string {
	parts := []string{fmt.Sprintf("%d volumes", len(r.Rows))}
	for _, verdict := range policies.CoverageVerdicts {
		if count := r.Summary[verdict]; count > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count, verdict))
		}
	}
	return strings.Join(parts, ", ")
}

// byField counts the audit's violations by field.
func (r coverageReport) byField() string {
	fields := make([]string, 0, len(r.Audit.ByField))
	for field := range r.Audit.ByField {
		fields = append(fields, field)
	}
	sort.Strings(fields)
	for i, field := range fields {
		fields[i] = fmt.Sprintf("%s %d", field, r.Audit.ByField[field])
	}
	return strings.Join(fields, ", ")
}

// humanAge is an age a person reads at a glance: 45m, 10h, 3d4h.
func humanAge(age time.Duration) string {
	switch {
	case age < time.Hour:
		return fmt.Sprintf("%dm", int(age.Minutes()))
	case age < 48*time.Hour:
		return fmt.Sprintf("%dh", int(age.Hours()))
	}
	days, hours := int(age.Hours())/24, int(age.Hours())%24
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
