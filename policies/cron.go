package policies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// longhornCronParser is robfig/cron's standard parser, the one Longhorn uses: five fields or a
// descriptor (@daily, @every 1h, ...).
var longhornCronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const cronFieldNames = "minute hour day-of-month month day-of-week"

// ValidateCron checks a schedule the way Longhorn will run it: parsed by robfig/cron's standard parser
// and fired in UTC, because Longhorn turns it into a CronJob without a time zone. now only picks the
// year whose daylight-saving offsets appear in the examples of the time-zone message.
func ValidateCron(path *field.Path, expression string, now time.Time) (cron.Schedule, field.ErrorList) {
	trimmed := strings.TrimSpace(expression)
	if trimmed == "" {
		return nil, field.ErrorList{field.Required(path, "a schedule in UTC, e.g. \"0 2 * * *\" for 02:00 UTC every day")}
	}
	// robfig/cron v3 would honour a zone prefix, but Longhorn's CronJob ignores it: the job would fire at
	// the written hour in UTC, off by the zone's offset.
	if zone, rest, ok := zonePrefix(trimmed); ok {
		return nil, field.ErrorList{field.Invalid(path, expression, timeZoneMessage(zone, rest, now))}
	}
	fields := strings.Fields(trimmed)
	if !strings.HasPrefix(trimmed, "@") && len(fields) != 5 {
		detail := fmt.Sprintf("must have exactly 5 fields (%s), found %d", cronFieldNames, len(fields))
		if len(fields) == 6 {
			detail += ": a seconds field is not supported"
		}
		return nil, field.ErrorList{field.Invalid(path, expression, detail)}
	}
	schedule, err := longhornCronParser.Parse(trimmed)
	if err != nil {
		if len(fields) == 5 && mentionsSeven(fields[4]) {
			return nil, field.ErrorList{field.Invalid(path, expression, "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)")}
		}
		return nil, field.ErrorList{field.Invalid(path, expression, "not a valid schedule: "+err.Error())}
	}
	return schedule, nil
}

// NextRuns lists the next count fire times of schedule after the given instant, in UTC.
func NextRuns(schedule cron.Schedule, after time.Time, count int) []time.Time {
	runs := make([]time.Time, 0, count)
	next := after.UTC()
	for range count {
		next = schedule.Next(next)
		if next.IsZero() {
			break
		}
		runs = append(runs, next)
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

func timeZoneMessage(zone, rest string, now time.Time) string {
	const base = "time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC"
	location, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		return fmt.Sprintf("%s (unknown time zone %q)", base, zone)
	}
	// January and July catch standard and daylight-saving time in both hemispheres.
	var examples []string
	seen := map[int]bool{}
	for _, month := range []time.Month{time.January, time.July} {
		abbreviation, offset := time.Date(now.Year(), month, 15, 12, 0, 0, 0, location).Zone()
		if seen[offset] {
			continue
		}
		seen[offset] = true
		converted, ok := cronInUTC(rest, offset)
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

// cronInUTC rewrites a five-field schedule written in a zone with the given UTC offset into UTC. It only
// handles the common shape, one minute and a list of hours; when the shift crosses midnight the day
// fields must be "*", since the day would change too.
func cronInUTC(expression string, offsetSeconds int) (string, bool) {
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
