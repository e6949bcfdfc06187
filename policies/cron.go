package policies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	longhornCron "github.com/robfig/cron"
	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// kubernetesCronParser is robfig/cron v3's standard parser, the one kube-controller-manager runs
// Longhorn's CronJobs with: it gives the fire times.
var kubernetesCronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const cronFieldNames = "minute hour day-of-month month day-of-week"

// ValidateCron checks a schedule the way Longhorn checks it and Kubernetes runs it. Longhorn's webhook
// parses spec.cron with robfig/cron v1.2.0's ParseStandard (longhorn-manager datastore/longhorn.go
// ValidateRecurringJob; go.mod pins github.com/robfig/cron v1.2.0), so that is the verdict here too,
// down to its whitespace rules (" @daily" is an error there). The CronJob Longhorn creates from it is
// then run by kube-controller-manager with robfig/cron v3, whose schedule is returned for fire times.
// fireZone is the zone the schedule fires in (longhorn.cronTimeZone for RecurringJobs, UTC for the
// window); now only picks the year whose daylight-saving offsets appear in the time-zone message.
func ValidateCron(path *field.Path, expression string, now time.Time, fireZone *time.Location) (cron.Schedule, field.ErrorList) {
	trimmed := strings.TrimSpace(expression)
	if trimmed == "" {
		return nil, field.ErrorList{field.Required(path, "a schedule such as \"0 2 * * *\" (02:00 every day in the zone Longhorn's CronJobs fire in, UTC on most clusters)")}
	}
	// A zone prefix would fail Longhorn's parser with "Expected exactly 5 fields, found 6"; say why and
	// what to write instead.
	if zone, rest, ok := zonePrefix(trimmed); ok {
		return nil, field.ErrorList{field.Invalid(path, expression, timeZoneMessage(zone, rest, now, fireZone))}
	}
	if _, err := longhornCron.ParseStandard(expression); err != nil {
		return nil, field.ErrorList{field.Invalid(path, expression, longhornCronError(expression, trimmed, err))}
	}
	schedule, err := kubernetesCronParser.Parse(expression)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, expression, "Longhorn accepts it, but Kubernetes would refuse the CronJob Longhorn makes of it: "+err.Error())}
	}
	return schedule, nil
}

// longhornCronError explains why Longhorn's parser refused a schedule, in the terms a person fixes it by.
func longhornCronError(expression, trimmed string, err error) string {
	fields := strings.Fields(trimmed)
	switch {
	case strings.HasPrefix(trimmed, "@") && trimmed != expression:
		return "a descriptor must be written without spaces around it (Longhorn's parser refuses them): use " + strconv.Quote(trimmed)
	case !strings.HasPrefix(trimmed, "@") && len(fields) == 6:
		return fmt.Sprintf("must have exactly 5 fields (%s), found 6: a seconds field is not supported", cronFieldNames)
	case !strings.HasPrefix(trimmed, "@") && len(fields) != 5:
		return fmt.Sprintf("must have exactly 5 fields (%s), found %d", cronFieldNames, len(fields))
	case len(fields) == 5 && mentionsSeven(fields[4]):
		return "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)"
	}
	return "not a valid schedule: " + err.Error()
}

// NextRuns lists the next count fire times of schedule after the given instant. The schedule fires in
// zone, the zone Longhorn's CronJobs run in; the times are returned in UTC.
func NextRuns(schedule cron.Schedule, after time.Time, count int, zone *time.Location) []time.Time {
	runs := make([]time.Time, 0, count)
	next := after.In(zone)
	for range count {
		next = schedule.Next(next)
		if next.IsZero() {
			break
		}
		runs = append(runs, next.UTC())
	}
	return runs
}

func zonePrefix(expression string) (zone, rest string, ok bool) {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(expression, prefix); found {
			zone, rest, _ = strings.Cut(after, " ")
			return zone, strings.TrimSpace(rest), true
		}
	}
	return "", "", false
}

func mentionsSeven(dayOfWeek string) bool {
	return slices.Contains(strings.FieldsFunc(dayOfWeek, func(r rune) bool { return r == ',' || r == '-' || r == '/' }), "7")
}

func timeZoneMessage(zone, rest string, now time.Time, fireZone *time.Location) string {
	fireZoneName := "UTC"
	if fireZone != time.UTC {
		fireZoneName = fireZone.String() + " (longhorn.cronTimeZone)"
	}
	base := fmt.Sprintf("time zones are not supported: Longhorn's CronJobs fire in %s whatever the schedule says; drop the prefix and write the time in %s", fireZoneName, fireZone)
	if fireZone == time.UTC {
		base = "time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC"
	}
	location, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		return fmt.Sprintf("%s (unknown time zone %q)", base, zone)
	}
	if location.String() == fireZone.String() {
		return fmt.Sprintf("%s: %q", base, rest)
	}
	// January and July catch standard and daylight-saving time in both hemispheres.
	var examples []string
	seen := map[int]bool{}
	for _, month := range []time.Month{time.January, time.July} {
		instant := time.Date(now.Year(), month, 15, 12, 0, 0, 0, location)
		abbreviation, offset := instant.Zone()
		_, fireOffset := instant.In(fireZone).Zone()
		shift := offset - fireOffset
		if seen[shift] {
			continue
		}
		seen[shift] = true
		converted, ok := cronShifted(rest, shift)
		if !ok {
			return fmt.Sprintf("%s (%s is %s)", base, zone, describeOffsets(location, now))
		}
		examples = append(examples, fmt.Sprintf("%q while %s is on %s (%s)", converted, zone, abbreviation, formatOffset(offset)))
	}
	return base + ": " + strings.Join(examples, ", ")
}

func describeOffsets(location *time.Location, now time.Time) string {
	var parts []string
	seen := map[int]bool{}
	for _, month := range []time.Month{time.January, time.July} {
		abbreviation, offset := time.Date(now.Year(), month, 15, 12, 0, 0, 0, location).Zone()
		if !seen[offset] {
			seen[offset] = true
			parts = append(parts, fmt.Sprintf("%s %s", abbreviation, formatOffset(offset)))
		}
	}
	return strings.Join(parts, " or ")
}

func formatOffset(seconds int) string {
	sign := "+"
	if seconds < 0 {
		sign = "-"
		seconds = -seconds
	}
	return fmt.Sprintf("UTC%s%02d:%02d", sign, seconds/3600, seconds%3600/60)
}

// cronShifted rewrites a five-field schedule written in a zone that is offsetSeconds ahead of the zone it
// fires in, so that it fires at the same instants. It only
// handles the common shape, one minute and a list of hours; when the shift crosses midnight the day
// fields must be "*", since the day would change too.
func cronShifted(expression string, offsetSeconds int) (string, bool) {
	fields := strings.Fields(expression)
	if len(fields) != 5 || offsetSeconds%60 != 0 {
		return "", false
	}
	minute, err := strconv.Atoi(fields[0])
	if err != nil || minute < 0 || minute > 59 {
		return "", false
	}
	anyDay := fields[2] == "*" && fields[3] == "*" && fields[4] == "*"
	offsetMinutes := offsetSeconds / 60
	var hours []int
	newMinute := -1
	for _, text := range strings.Split(fields[1], ",") {
		hour, err := strconv.Atoi(text)
		if err != nil || hour < 0 || hour > 23 {
			return "", false
		}
		utcMinutes := hour*60 + minute - offsetMinutes
		if utcMinutes < 0 || utcMinutes >= 24*60 {
			if !anyDay {
				return "", false
			}
			utcMinutes = (utcMinutes + 24*60) % (24 * 60)
		}
		newMinute = utcMinutes % 60
		hours = append(hours, utcMinutes/60)
	}
	slices.Sort(hours)
	hours = slices.Compact(hours)
	hourTexts := make([]string, len(hours))
	for i, hour := range hours {
		hourTexts[i] = strconv.Itoa(hour)
	}
	return strings.Join(append([]string{strconv.Itoa(newMinute), strings.Join(hourTexts, ",")}, fields[2:]...), " "), true
}
