package policies

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

var (
	specPath   = field.NewPath("spec")
	cronPath   = specPath.Child("cron")
	retainPath = specPath.Child("retain")
	paramsPath = specPath.Child("parameters")
)

const tzBase = "time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC"

func TestValidateRecurringJob(t *testing.T) {
	cases := map[string]struct {
		job      *longhorn.RecurringJob
		env      func(*RecurringJobEnvironment)
		want     field.ErrorList
		warnings []string
	}{
		"a daily backup at 02:00 UTC with retain above the full-backup interval is allowed": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "5").Retain(6).Groups("default", "critical").Label("app", "db").Obj(),
		},
		"a snapshot-cleanup job with retain 0 is allowed": {
			job: makeRecurringJob("cleanup").Task(longhorn.TaskSnapshotCleanup).Retain(0).Obj(),
		},
		"a descriptor schedule is allowed": {
			job: makeRecurringJob("hourly").Cron("@hourly").Obj(),
		},
		"spec.name equal to metadata.name is allowed": {
			job: makeRecurringJob("daily").SpecName("daily").Obj(),
		},
		"a missing name is required": {
			job:  makeRecurringJob("").Obj(),
			want: field.ErrorList{field.Required(field.NewPath("metadata", "name"), `a lower-case name such as "daily-backup"`)},
		},
		"an upper-case name is invalid": {
			job: makeRecurringJob("Daily").Obj(),
			want: field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), "Daily",
				`a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)},
		},
		"a one-character name does not match Longhorn's pattern": {
			job:  makeRecurringJob("a").Obj(),
			want: field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), "a", "must be at least 2 characters and match ^[a-z0-9][a-z0-9_.-]+$")},
		},
		"a name longer than 40 characters is too long": {
			job:  makeRecurringJob(strings.Repeat("a", 41)).Obj(),
			want: field.ErrorList{field.TooLong(field.NewPath("metadata", "name"), strings.Repeat("a", 41), 40)},
		},
		"spec.name different from metadata.name is allowed: the job's identity is metadata.name": {
			job: makeRecurringJob("daily").SpecName("nightly").Obj(),
		},
		"a spec.name longer than 40 characters is too long": {
			job:  makeRecurringJob("daily").SpecName(strings.Repeat("n", 41)).Obj(),
			want: field.ErrorList{field.TooLong(specPath.Child("name"), strings.Repeat("n", 41), 40)},
		},
		"a long metadata.name is fine when spec.name is short": {
			job: makeRecurringJob(strings.Repeat("a", 41)).SpecName("short").Obj(),
		},
		"a RecurringJob outside the Longhorn namespace is invalid": {
			job: makeRecurringJob("daily").Namespace("default").Obj(),
			want: field.ErrorList{field.Invalid(field.NewPath("metadata", "namespace"), "default",
				`RecurringJobs must be in the Longhorn namespace "longhorn-system": Longhorn ignores them anywhere else`)},
		},
		"a RecurringJob without a namespace gets a warning": {
			job:      makeRecurringJob("daily").Namespace("").Obj(),
			warnings: []string{`metadata.namespace is not set: apply this RecurringJob to namespace "longhorn-system", the only one Longhorn reads`},
		},
		"a configured Longhorn namespace is honoured": {
			job: makeRecurringJob("daily").Namespace("storage").Obj(),
			env: func(e *RecurringJobEnvironment) { e.LonghornNamespace = "storage" },
		},
		"a missing task is required": {
			job:  makeRecurringJob("daily").Task("").Obj(),
			want: field.ErrorList{field.Required(specPath.Child("task"), "one of snapshot, snapshot-force-create, snapshot-cleanup, snapshot-delete, backup, backup-force-create, filesystem-trim, system-backup")},
		},
		"an unknown task is not supported": {
			job:  makeRecurringJob("daily").Task("bakup").Obj(),
			want: field.ErrorList{field.NotSupported(specPath.Child("task"), longhorn.Task("bakup"), taskNames())},
		},
		"a missing cron is required": {
			job:  makeRecurringJob("daily").Cron("").Obj(),
			want: field.ErrorList{field.Required(cronPath, `a schedule such as "0 2 * * *" (02:00 every day in the zone Longhorn's CronJobs fire in, UTC on most clusters)`)},
		},
		"a leading space before a descriptor is refused, as Longhorn's parser refuses it": {
			job:  makeRecurringJob("daily").Cron(" @daily").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, " @daily", `a descriptor must be written without spaces around it (Longhorn's parser refuses them): use "@daily"`)},
		},
		"a trailing space after a descriptor is refused too": {
			job:  makeRecurringJob("daily").Cron("@daily ").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "@daily ", `a descriptor must be written without spaces around it (Longhorn's parser refuses them): use "@daily"`)},
		},
		"spaces around five fields are accepted, as Longhorn accepts them": {
			job: makeRecurringJob("daily").Cron(" 0 2 * * * ").Obj(),
		},
		"an unknown descriptor is refused with the parser's reason": {
			job:  makeRecurringJob("daily").Cron("@fortnightly").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "@fortnightly", "not a valid schedule: Unrecognized descriptor: @fortnightly")},
		},
		"CRON_TZ naming the zone Longhorn's CronJobs already fire in only needs the prefix dropped": {
			job: makeRecurringJob("daily").Cron("CRON_TZ=Europe/Berlin 0 3 * * *").Obj(),
			env: func(e *RecurringJobEnvironment) { e.Rules = rulesInZone("Europe/Berlin") },
			want: field.ErrorList{field.Invalid(cronPath, "CRON_TZ=Europe/Berlin 0 3 * * *",
				`time zones are not supported: Longhorn's CronJobs fire in Europe/Berlin (longhorn.cronTimeZone) whatever the schedule says; drop the prefix and write the time in Europe/Berlin: "0 3 * * *"`)},
		},
		"CRON_TZ in another zone than longhorn.cronTimeZone is converted into that zone": {
			job: makeRecurringJob("daily").Cron("CRON_TZ=UTC 0 2 * * *").Obj(),
			env: func(e *RecurringJobEnvironment) { e.Rules = rulesInZone("Asia/Tokyo") },
			want: field.ErrorList{field.Invalid(cronPath, "CRON_TZ=UTC 0 2 * * *",
				`time zones are not supported: Longhorn's CronJobs fire in Asia/Tokyo (longhorn.cronTimeZone) whatever the schedule says; drop the prefix and write the time in Asia/Tokyo: "0 11 * * *" while UTC is on UTC (UTC+00:00)`)},
		},
		"CRON_TZ in a zone with daylight saving time gets both UTC forms": {
			job: makeRecurringJob("daily").Cron("CRON_TZ=Europe/Berlin 0 3 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "CRON_TZ=Europe/Berlin 0 3 * * *",
				tzBase+`: "0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)`)},
		},
		"TZ in a zone without daylight saving time gets one UTC form, wrapped past midnight": {
			job: makeRecurringJob("daily").Cron("TZ=Asia/Tokyo 30 1,5 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "TZ=Asia/Tokyo 30 1,5 * * *",
				tzBase+`: "30 16,20 * * *" while Asia/Tokyo is on JST (UTC+09:00)`)},
		},
		"a zone shift across midnight with a day restriction gives the offsets only": {
			job: makeRecurringJob("daily").Cron("CRON_TZ=Europe/Berlin 30 0 * * 1").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "CRON_TZ=Europe/Berlin 30 0 * * 1",
				tzBase+` (Europe/Berlin is CET UTC+01:00 or CEST UTC+02:00)`)},
		},
		"an unknown zone is named": {
			job:  makeRecurringJob("daily").Cron("CRON_TZ=Mars/Olympus 0 3 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "CRON_TZ=Mars/Olympus 0 3 * * *", tzBase+` (unknown time zone "Mars/Olympus")`)},
		},
		"a seconds field is rejected": {
			job:  makeRecurringJob("daily").Cron("0 0 2 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 0 2 * * *", "must have exactly 5 fields (minute hour day-of-month month day-of-week), found 6: a seconds field is not supported")},
		},
		"day-of-week 7 is rejected": {
			job:  makeRecurringJob("daily").Cron("0 2 * * 7").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 2 * * 7", "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)")},
		},
		"day-of-week range ending in 7 is rejected": {
			job:  makeRecurringJob("daily").Cron("0 2 * * 5-7").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 2 * * 5-7", "day-of-week 7 is not accepted: use 0 for Sunday (0-6 is Sunday to Saturday)")},
		},
		"an hour out of range is rejected with the parser's reason": {
			job:  makeRecurringJob("daily").Cron("0 25 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 25 * * *", "not a valid schedule: End of range (25) above maximum (23): 25")},
		},
		"a bad group name is invalid": {
			job:  makeRecurringJob("daily").Groups("-bad").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("groups").Index(0), "-bad", "must be at least 2 characters and match ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")},
		},
		"a group longer than 63 characters is too long": {
			job: makeRecurringJob("daily").Groups(strings.Repeat("g", 64)).Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("groups").Index(0), strings.Repeat("g", 64),
				"must be usable in the label key recurring-job-group.longhorn.io/<group>, or the job can never select a volume: name part must be no more than 63 bytes")},
		},
		"a group ending in a dash passes Longhorn but can never be a label key": {
			job: makeRecurringJob("daily").Groups("nightly-").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("groups").Index(0), "nightly-",
				`must be usable in the label key recurring-job-group.longhorn.io/<group>, or the job can never select a volume: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`)},
		},
		"a group ending in an underscore can never be a label key either": {
			job: makeRecurringJob("daily").Groups("a_").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("groups").Index(0), "a_",
				`must be usable in the label key recurring-job-group.longhorn.io/<group>, or the job can never select a volume: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`)},
		},
		"a repeated group is a duplicate": {
			job:  makeRecurringJob("daily").Groups("default", "default").Obj(),
			want: field.ErrorList{field.Duplicate(specPath.Child("groups").Index(1), "default")},
		},
		"a reserved label key is forbidden": {
			job:  makeRecurringJob("daily").Label("RecurringJob", "x").Obj(),
			want: field.ErrorList{field.Forbidden(specPath.Child("labels").Key("RecurringJob"), `"RecurringJob" is reserved: Longhorn sets it on every snapshot and backup`)},
		},
		"a label key that is not a qualified name is invalid": {
			job: makeRecurringJob("daily").Label("bad key", "x").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("labels").Key("bad key"), "bad key",
				`name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`)},
		},
		"an empty label value is required": {
			job:  makeRecurringJob("daily").Label("app", "").Obj(),
			want: field.ErrorList{field.Required(specPath.Child("labels").Key("app"), "label values must not be empty")},
		},
		"negative concurrency is invalid": {
			job:  makeRecurringJob("daily").Concurrency(-1).Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("concurrency"), -1, "must not be negative; 0 means Longhorn's default of 10")},
		},
		"a parameter the task does not read is not supported": {
			job:  makeRecurringJob("daily").Parameter("full-backup-intervall", "5").Obj(),
			want: field.ErrorList{field.NotSupported(paramsPath.Key("full-backup-intervall"), "full-backup-intervall", []string{"full-backup-interval", "volume-backup-policy"})},
		},
		"a parameter on a snapshot job is ignored by Longhorn, so it is a warning": {
			job:      makeRecurringJob("snap").Task(longhorn.TaskSnapshot).Parameter("full-backup-interval", "5").Obj(),
			warnings: []string{"spec.parameters[full-backup-interval]: has no effect on a snapshot job: Longhorn reads parameters only for backup jobs"},
		},
		"any parameter on a trim job is a warning, even one Longhorn would refuse on a backup": {
			job:      makeRecurringJob("trim").Task(longhorn.TaskFilesystemTrim).Retain(0).Parameter("whatever", "x").Obj(),
			warnings: []string{"spec.parameters[whatever]: has no effect on a filesystem-trim job: Longhorn reads parameters only for backup jobs"},
		},
		"a volume-backup-policy on a backup job is accepted by Longhorn and has no effect": {
			job:      makeRecurringJob("daily").Parameter("volume-backup-policy", "always").Obj(),
			warnings: []string{"spec.parameters[volume-backup-policy]: has no effect on a backup job: only system-backup jobs read it"},
		},
		"a full-backup interval with a plus sign is what strconv.Atoi takes, like Longhorn": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "+5").Retain(6).Obj(),
		},
		"a full-backup interval on a system backup is ignored by Longhorn": {
			job:      makeRecurringJob("system").Task(longhorn.TaskSystemBackup).Parameter("full-backup-interval", "3").Obj(),
			warnings: []string{"spec.parameters[full-backup-interval]: has no effect on a system-backup job: Longhorn ignores it"},
		},
		"an empty volume-backup-policy on a system backup is Longhorn's default": {
			job: makeRecurringJob("system").Task(longhorn.TaskSystemBackup).Parameter("volume-backup-policy", "").Obj(),
		},
		"a negative full-backup interval is invalid": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "-1").Obj(),
			want: field.ErrorList{field.Invalid(paramsPath.Key("full-backup-interval"), "-1",
				`must be a whole number of runs, 0 or more, as a string (e.g. "5"); 0 means incremental backups only`)},
		},
		"a non-numeric full-backup interval is invalid": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "weekly").Obj(),
			want: field.ErrorList{field.Invalid(paramsPath.Key("full-backup-interval"), "weekly",
				`must be a whole number of runs, 0 or more, as a string (e.g. "5"); 0 means incremental backups only`)},
		},
		"an unknown volume-backup-policy is not supported": {
			job:  makeRecurringJob("system").Task(longhorn.TaskSystemBackup).Parameter("volume-backup-policy", "sometimes").Obj(),
			want: field.ErrorList{field.NotSupported(paramsPath.Key("volume-backup-policy"), "sometimes", volumeBackupPolicies)},
		},
		"retain equal to the full-backup interval is invalid and says why": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "7").Retain(7).Obj(),
			want: field.ErrorList{field.Invalid(retainPath, 7,
				"must be greater than parameters[full-backup-interval] (7), so that the 7 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8")},
		},
		"retain at the full-backup interval is a warning when the rule is set to Warn": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "7").Retain(7).Obj(),
			env: func(e *RecurringJobEnvironment) {
				e.Rules = DefaultRecurringJobRules(DefaultLonghornNamespace)
				e.Rules.RetainAboveFullBackupInterval = EnforcementWarn
			},
			warnings: []string{"spec.retain: Invalid value: 7: must be greater than parameters[full-backup-interval] (7), so that the 7 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8"},
		},
		"retain 0 with a full-backup interval is stored as 1 and then breaks the interval rule": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "3").Retain(0).Obj(),
			want: field.ErrorList{field.Invalid(retainPath, 1,
				"must be greater than parameters[full-backup-interval] (3), so that the 1 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 4")},
			warnings: []string{"spec.retain: Longhorn will store 1: a backup job keeps at least one backup"},
		},
		"age-based retention does not consult retain, so the interval rule does not apply": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "7").Retain(2).RetentionPolicy(longhorn.RetentionAgeBased).RetainAge("720h").Obj(),
		},
		"age-based retention without retainAge never starts": {
			job:  makeRecurringJob("daily").RetentionPolicy(longhorn.RetentionAgeBased).Obj(),
			want: field.ErrorList{field.Required(specPath.Child("retainAge"), `a positive duration such as "720h": with retentionPolicy age-based and no retainAge, Longhorn never starts the job`)},
		},
		"age-based retention on a cleanup job is refused, as Longhorn v1.13 refuses it": {
			job:  makeRecurringJob("cleanup").Task(longhorn.TaskSnapshotCleanup).Retain(0).RetentionPolicy(longhorn.RetentionAgeBased).RetainAge("24h").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("retentionPolicy"), longhorn.RetentionAgeBased, "cannot be used with task snapshot-cleanup, which keeps nothing by age (Longhorn refuses it)")},
		},
		"a retainAge in days is not a Go duration": {
			job:  makeRecurringJob("daily").RetentionPolicy(longhorn.RetentionAgeBased).RetainAge("30d").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("retainAge"), "30d", `must be a Go duration such as "720h" (there is no day unit: a day is "24h")`)},
		},
		"a negative retainAge is refused": {
			job:  makeRecurringJob("daily").RetentionPolicy(longhorn.RetentionAgeBased).RetainAge("-1h").Obj(),
			want: field.ErrorList{field.Invalid(specPath.Child("retainAge"), "-1h", "must not be negative")},
		},
		"an unknown retention policy is not supported": {
			job:  makeRecurringJob("daily").RetentionPolicy("forever").Obj(),
			want: field.ErrorList{field.NotSupported(specPath.Child("retentionPolicy"), longhorn.RetentionPolicy("forever"), []string{"count-based", "age-based"})},
		},
		"count-based retention written out is the default": {
			job: makeRecurringJob("daily").RetentionPolicy(longhorn.RetentionCountBased).Obj(),
		},
		"a full-backup interval of 0 puts no bound on retain": {
			job: makeRecurringJob("daily").Parameter("full-backup-interval", "0").Retain(1).Obj(),
		},
		"retain 0 for a backup is what Longhorn stores as 1, so a warning": {
			job:      makeRecurringJob("daily").Retain(0).Obj(),
			warnings: []string{"spec.retain: Longhorn will store 1: a backup job keeps at least one backup"},
		},
		"retain 0 for a snapshot is stored as 1 too": {
			job:      makeRecurringJob("snap").Task(longhorn.TaskSnapshot).Retain(-4).Obj(),
			warnings: []string{"spec.retain: Longhorn will store 1: a snapshot job keeps at least one snapshot"},
		},
		"retain above 0 for filesystem-trim is what Longhorn stores as 0, so a warning": {
			job:      makeRecurringJob("trim").Task(longhorn.TaskFilesystemTrim).Retain(3).Obj(),
			warnings: []string{"spec.retain: Longhorn will store 0: a filesystem-trim job keeps nothing"},
		},
		"retain 0 for snapshot-delete is allowed": {
			job: makeRecurringJob("prune").Task(longhorn.TaskSnapshotDelete).Retain(0).Obj(),
		},
		"negative retain for snapshot-delete is stored as 0": {
			job:      makeRecurringJob("prune").Task(longhorn.TaskSnapshotDelete).Retain(-1).Obj(),
			warnings: []string{"spec.retain: Longhorn will store 0: a snapshot-delete job cannot keep fewer than none"},
		},
		"retain above the maximum retention is invalid": {
			job:  makeRecurringJob("daily").Retain(101).Obj(),
			want: field.ErrorList{field.Invalid(retainPath, 101, "must be at most 100 (the Longhorn setting recurring-job-max-retention)")},
		},
		"retain up to a raised maximum retention is allowed": {
			job: makeRecurringJob("daily").Retain(200).Obj(),
			env: func(e *RecurringJobEnvironment) { e.Settings.RecurringJobMaxRetention = 250 },
		},
		"a backup job warns when detached volumes are skipped": {
			job:      makeRecurringJob("daily").Obj(),
			env:      func(e *RecurringJobEnvironment) { e.Settings.AllowRecurringJobWhileVolumeDetached = false },
			warnings: []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"},
		},
		"a trim job skips detached volumes too": {
			job:      makeRecurringJob("trim").Task(longhorn.TaskFilesystemTrim).Retain(0).Obj(),
			env:      func(e *RecurringJobEnvironment) { e.Settings.AllowRecurringJobWhileVolumeDetached = false },
			warnings: []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"},
		},
		"a system backup is not a volume task and does not warn about detached volumes": {
			job: makeRecurringJob("system").Task(longhorn.TaskSystemBackup).Obj(),
			env: func(e *RecurringJobEnvironment) { e.Settings.AllowRecurringJobWhileVolumeDetached = false },
		},
		"several violations are all reported in field order": {
			job: makeRecurringJob("daily").Cron("CRON_TZ=UTC 0 2 * * *").Concurrency(-2).Retain(101).Obj(),
			want: field.ErrorList{
				field.Invalid(cronPath, "CRON_TZ=UTC 0 2 * * *", tzBase+`: "0 2 * * *"`),
				field.Invalid(specPath.Child("concurrency"), -2, "must not be negative; 0 means Longhorn's default of 10"),
				field.Invalid(retainPath, 101, "must be at most 100 (the Longhorn setting recurring-job-max-retention)"),
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := defaultEnvironment(tc.job)
			if tc.env != nil {
				tc.env(&env)
			}
			errs, warnings := ValidateRecurringJob(tc.job, env)
			if diff := cmp.Diff(tc.want, errs); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func rulesInZone(zone string) *RecurringJobRules {
	rules := DefaultRecurringJobRules(DefaultLonghornNamespace)
	location, err := time.LoadLocation(zone)
	if err != nil {
		panic(err)
	}
	rules.CronTimeZone = location
	return rules
}

func TestRecurringJobNameClashes(t *testing.T) {
	jobs := []RecurringJobIdentity{
		{Namespace: "longhorn-system", Name: "daily", Source: "a.yaml#1"},
		{Namespace: "longhorn-system", Name: "weekly", Source: "a.yaml#2"},
		{Namespace: "longhorn-system", Name: "Daily", Source: "b.yaml#1"},
		{Namespace: "other", Name: "daily", Source: "b.yaml#2"},
		{Namespace: "longhorn-system", Name: "daily", Source: "c.yaml#1"},
	}
	want := map[int]*field.Error{
		2: {Type: field.ErrorTypeDuplicate, Field: "metadata.name", BadValue: "Daily",
			Detail: `a.yaml#1 already defines RecurringJob "daily"; names are compared in lower case because Longhorn lower-cases them, so only one would exist`},
		4: {Type: field.ErrorTypeDuplicate, Field: "metadata.name", BadValue: "daily",
			Detail: `a.yaml#1 already defines RecurringJob "daily"; names are compared in lower case because Longhorn lower-cases them, so only one would exist`},
	}
	if diff := cmp.Diff(want, RecurringJobNameClashes(jobs)); diff != "" {
		t.Errorf("clashes (-want +got):\n%s", diff)
	}
}

func BenchmarkValidateRecurringJob(b *testing.B) {
	job := makeRecurringJob("daily").Parameter("full-backup-interval", "5").Retain(6).Groups("default", "critical").Label("app", "db").Obj()
	env := defaultEnvironment(job)
	b.ReportAllocs()
	for b.Loop() {
		if errs, _ := ValidateRecurringJob(job, env); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
