package policies

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

const configHeader = "apiVersion: backupguard.io/v1alpha1\nkind: Config\n"

// nightlyWindow opens at 00:55 UTC and closes at 04:00 UTC, and may be kept open until 05:00 UTC.
const nightlyWindow = "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  lead: 5m\n  maxExtension: 1h\n"

// weeklyWindow opens on Saturdays from 01:00 to 05:00 UTC.
const weeklyWindow = "window:\n  opens: \"0 1 * * 6\"\n  duration: 4h\n"

// alwaysOpenWindow opens every two hours for three hours, so each opening overlaps the next.
const alwaysOpenWindow = "window:\n  opens: \"0 */2 * * *\"\n  duration: 3h\n"

// windowComparer compares compiled windows whole, except the memo of checked schedules.
var windowComparer = cmp.Options{
	cmp.AllowUnexported(Window{}),
	cmpopts.IgnoreFields(Window{}, "checked", "checkedMu"),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b *time.Location) bool { return a == b }),
}

// compileWindowConfig parses a config file made of the header and section and returns its window.
func compileWindowConfig(tb testing.TB, section string) *Window {
	tb.Helper()
	config, err := ParseConfig([]byte(configHeader+section), "c.yaml")
	if err != nil {
		tb.Fatalf("ParseConfig: %v", err)
	}
	return config.CompiledWindow()
}

func mustParseCron(tb testing.TB, expression string) cron.Schedule {
	tb.Helper()
	schedule, err := kubernetesCronParser.Parse(expression)
	if err != nil {
		tb.Fatalf("parse %q: %v", expression, err)
	}
	return schedule
}

// nov is an instant in November 2026 UTC; 2026-11-21 (testNow's day) is a Saturday.
func nov(day, hour, minute int) time.Time {
	return time.Date(2026, time.November, day, hour, minute, 0, 0, time.UTC)
}

func TestParseConfigWindow(t *testing.T) {
	cases := map[string]struct {
		section string
		want    func(testing.TB) *Window
		wantErr string
	}{
		"a config without a window section has no window": {
			section: "",
			want:    func(testing.TB) *Window { return nil },
		},
		"a window with only opens and duration gets every default": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n",
			want: func(tb testing.TB) *Window {
				return &Window{
					opens:     mustParseCron(tb, "55 0 * * *"),
					opensText: "55 0 * * *",
					duration:  3*time.Hour + 5*time.Minute,
					lead:      5 * time.Minute,
					Targets: []WindowTarget{
						{Name: "longhorn-manager", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "longhorn-manager"}}},
						{Name: "instance-manager", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"longhorn.io/component": "instance-manager"}}},
					},
					closeWhenIdle: true,
					maxExtension:  2 * time.Hour,
					onDemand:      time.Hour,
				}
			},
		},
		"every window field is read, and allowed CIDRs are masked": {
			section: "window:\n  opens: \"0 1 * * 6\"\n  duration: 4h\n  lead: 10m\n  closeWhenIdle: false\n  maxExtension: 30m\n  onDemand: {maxDuration: 20m}\n" +
				"  targets:\n  - name: manager\n    podSelector: {matchLabels: {app: longhorn-manager}}\n" +
				"  allowedCIDRs: [10.1.2.3/8, \"fd00::/8\"]\n  backupTargets: [default, offsite]\n",
			want: func(tb testing.TB) *Window {
				return &Window{
					opens:         mustParseCron(tb, "0 1 * * 6"),
					opensText:     "0 1 * * 6",
					duration:      4 * time.Hour,
					lead:          10 * time.Minute,
					Targets:       []WindowTarget{{Name: "manager", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "longhorn-manager"}}}},
					AllowedCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
					BackupTargets: []string{"default", "offsite"},
					closeWhenIdle: false,
					maxExtension:  30 * time.Minute,
					onDemand:      20 * time.Minute,
				}
			},
		},
		"a lead and a maximum extension of 0 are allowed": {
			section: "window:\n  opens: \"@daily\"\n  duration: 1h\n  lead: 0s\n  maxExtension: 0s\n  onDemand: {enabled: false, maxDuration: 2h}\n",
			want: func(tb testing.TB) *Window {
				return &Window{
					opens:         mustParseCron(tb, "@daily"),
					opensText:     "@daily",
					duration:      time.Hour,
					Targets:       DefaultWindowTargets(),
					closeWhenIdle: true,
				}
			},
		},
		"a bad cron is reported by the cron rule": {
			section: "window:\n  opens: \"61 0 * * *\"\n  duration: 3h5m\n",
			wantErr: `config c.yaml: window.opens: Invalid value: "61 0 * * *": not a valid schedule: End of range (61) above maximum (59): 61`,
		},
		"@every cannot open a window": {
			section: "window:\n  opens: \"@every 24h\"\n  duration: 3h5m\n",
			wantErr: `config c.yaml: window.opens: Invalid value: "@every 24h": must be a five-field cron, not @every`,
		},
		"a time zone prefix is refused": {
			section: "window:\n  opens: \"CRON_TZ=UTC 55 0 * * *\"\n  duration: 3h5m\n",
			wantErr: `config c.yaml: window.opens: Invalid value: "CRON_TZ=UTC 55 0 * * *": time zones are not supported: Longhorn runs every schedule in UTC; ` +
				`drop the prefix and write the time in UTC: "55 0 * * *"`,
		},
		"a duration of 0 is invalid": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 0s\n",
			wantErr: `config c.yaml: window.duration: Invalid value: "0s": must be above 0, e.g. 3h5m`,
		},
		"a missing duration is 0": {
			section: "window:\n  opens: \"55 0 * * *\"\n",
			wantErr: `config c.yaml: window.duration: Invalid value: "0s": must be above 0, e.g. 3h5m`,
		},
		"a lead as long as the duration is invalid": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  lead: 3h5m\n",
			wantErr: `config c.yaml: window.lead: Invalid value: "3h5m0s": must be 0 or more and shorter than the duration (3h5m0s), or no backup could ever run`,
		},
		"a negative lead is invalid": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  lead: -5m\n",
			wantErr: `config c.yaml: window.lead: Invalid value: "-5m0s": must be 0 or more and shorter than the duration (3h5m0s), or no backup could ever run`,
		},
		"an on-demand opening of 0 is invalid: enabled: false turns it off": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  onDemand: {maxDuration: 0s}\n",
			wantErr: `config c.yaml: window.onDemand.maxDuration: Invalid value: "0s": must be above 0; set enabled: false to never open on demand`,
		},
		"a negative maximum extension is invalid": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  maxExtension: -1h\n",
			wantErr: `config c.yaml: window.maxExtension: Invalid value: "-1h0m0s": must not be negative`,
		},
		"a duration no longer than the default lead leaves no time for backups": {
			section: "window:\n  opens: \"0 1 * * *\"\n  duration: 5m\n",
			wantErr: `config c.yaml: window.lead: Invalid value: "5m0s": must be 0 or more and shorter than the duration (5m0s), or no backup could ever run`,
		},
		"a cron that never fires would never open the window": {
			section: "window:\n  opens: \"0 0 30 2 *\"\n  duration: 1h\n",
			wantErr: `config c.yaml: window.opens: Invalid value: "0 0 30 2 *": never fires, so the window would never open`,
		},
		"a target name that is not a DNS label is invalid": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  targets:\n  - name: Longhorn_Manager\n    podSelector: {matchLabels: {app: longhorn-manager}}\n",
			wantErr: `config c.yaml: window.targets[0].name: Invalid value: "Longhorn_Manager": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', ` +
				`and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
		},
		"two targets with one name would share a NetworkPolicy": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  targets:\n" +
				"  - name: longhorn\n    podSelector: {matchLabels: {app: longhorn-manager}}\n" +
				"  - name: longhorn\n    podSelector: {matchLabels: {longhorn.io/component: instance-manager}}\n",
			wantErr: `config c.yaml: window.targets[1].name: Duplicate value: "longhorn"`,
		},
		"a target without a pod selector is incomplete": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  targets:\n  - name: manager\n",
			wantErr: `config c.yaml: window.targets[0].podSelector: Required value: the pods to fence`,
		},
		"a target with an empty pod selector would fence every pod": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  targets:\n  - name: manager\n    podSelector: {}\n",
			wantErr: `config c.yaml: window.targets[0].podSelector: Invalid value: "{}": must select some pods, not every pod in the Longhorn namespace`,
		},
		"a prefix length beyond 32 is not a CIDR": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  allowedCIDRs: [10.0.0.0/33]\n",
			wantErr: `config c.yaml: window.allowedCIDRs[0]: Invalid value: "10.0.0.0/33": must be a CIDR such as 10.0.0.0/8`,
		},
		"an address without a prefix length is not a CIDR": {
			section: "window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  allowedCIDRs: [10.96.0.0/12, 10.0.0.1]\n",
			wantErr: `config c.yaml: window.allowedCIDRs[1]: Invalid value: "10.0.0.1": must be a CIDR such as 10.0.0.0/8`,
		},
		"several window errors are all reported in field order": {
			section: "window:\n  opens: \"@every 1h\"\n  duration: 0s\n  lead: 5m\n  targets:\n  - name: manager\n  allowedCIDRs: [cluster]\n",
			wantErr: `config c.yaml: [window.opens: Invalid value: "@every 1h": must be a five-field cron, not @every, ` +
				`window.duration: Invalid value: "0s": must be above 0, e.g. 3h5m, ` +
				`window.targets[0].podSelector: Required value: the pods to fence, ` +
				`window.allowedCIDRs[0]: Invalid value: "cluster": must be a CIDR such as 10.0.0.0/8]`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			config, err := ParseConfig([]byte(configHeader+tc.section), "c.yaml")
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				if config != nil {
					t.Errorf("config = %+v, want nil with an error", config)
				}
				return
			}
			if diff := cmp.Diff(tc.want(t), config.CompiledWindow(), windowComparer); diff != "" {
				t.Errorf("window (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileWindowNil(t *testing.T) {
	window, errs := CompileWindow(nil, field.NewPath("window"))
	if window != nil {
		t.Errorf("window = %+v, want nil", window)
	}
	if diff := cmp.Diff(field.ErrorList(nil), errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestWindowStateAt(t *testing.T) {
	const closedUntilTomorrow = "outside the window; it next opens at 2026-11-22 00:55 UTC"
	asked := StoreFacts{Backups: []longhorn.Backup{backupIn("manual", "")}}
	cases := map[string]struct {
		window string
		now    time.Time
		facts  WindowFacts
		want   WindowStatus
	}{
		"at noon the window is closed until it opens after midnight": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"a minute before the opening the window is closed until that opening": {
			window: nightlyWindow,
			now:    nov(21, 0, 54),
			want:   WindowStatus{State: WindowClosed, Reason: "outside the window; it next opens at 2026-11-21 00:55 UTC", NextTransition: nov(21, 0, 55)},
		},
		"at the opening exactly the window is open": {
			window: nightlyWindow,
			now:    nov(21, 0, 55),
			want:   WindowStatus{State: WindowOpen, Reason: "inside the window that opened at 2026-11-21 00:55 UTC", NextTransition: nov(21, 4, 0)},
		},
		"at 02:00 the window is open until 04:00": {
			window: nightlyWindow,
			now:    nov(21, 2, 0),
			want:   WindowStatus{State: WindowOpen, Reason: "inside the window that opened at 2026-11-21 00:55 UTC", NextTransition: nov(21, 4, 0)},
		},
		"the window is open whatever the fences and backups say": {
			window: nightlyWindow,
			now:    nov(21, 3, 59),
			facts:  WindowFacts{Store: uploading(3), Fenced: true},
			want:   WindowStatus{State: WindowOpen, Reason: "inside the window that opened at 2026-11-21 00:55 UTC", NextTransition: nov(21, 4, 0)},
		},
		"at the end exactly, with no backup running, the window is closed": {
			window: nightlyWindow,
			now:    nov(21, 4, 0),
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"after the end, running backups keep the window open until the maximum extension": {
			window: nightlyWindow,
			now:    nov(21, 4, 10),
			facts:  WindowFacts{Store: uploading(2)},
			want: WindowStatus{State: WindowExtended, Reason: "the window ended at 2026-11-21 04:00 UTC, but the object store is busy: 2 backups",
				NextTransition: nov(21, 5, 0)},
		},
		"once fenced after the end, the window stays closed though backups run": {
			window: nightlyWindow,
			now:    nov(21, 4, 10),
			facts:  WindowFacts{Store: uploading(2), Fenced: true},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"when the extension is used up the window closes though a backup runs": {
			window: nightlyWindow,
			now:    nov(21, 5, 0),
			facts:  WindowFacts{Store: uploading(1)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"without closeWhenIdle the window closes at its end though a backup runs": {
			window: nightlyWindow + "  closeWhenIdle: false\n",
			now:    nov(21, 4, 10),
			facts:  WindowFacts{Store: uploading(1)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"an extension ends early when the next opening comes first": {
			window: "window:\n  opens: \"0 */2 * * *\"\n  duration: 1h\n  maxExtension: 2h\n",
			now:    nov(21, 1, 30),
			facts:  WindowFacts{Store: uploading(1)},
			want: WindowStatus{State: WindowExtended, Reason: "the window ended at 2026-11-21 01:00 UTC, but the object store is busy: 1 backup",
				NextTransition: nov(21, 2, 0)},
		},
		"an open override opens the window until it expires": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Override: &Override{Open: true, Until: nov(21, 14, 0), Reason: "restore of pvc data-db-0"}, Fenced: true},
			want:   WindowStatus{State: WindowOverridden, Reason: "opened by hand until 2026-11-21 14:00 UTC (restore of pvc data-db-0)", NextTransition: nov(21, 14, 0)},
		},
		"an expired override is ignored": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Override: &Override{Open: true, Until: nov(21, 11, 0), Reason: "restore"}},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"an override is expired at its until instant": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Override: &Override{Open: true, Until: nov(21, 12, 0)}},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"a close override closes the window during its opening": {
			window: nightlyWindow,
			now:    nov(21, 2, 0),
			facts:  WindowFacts{Override: &Override{Open: false, Until: nov(21, 3, 0), Reason: "bucket migration"}},
			want:   WindowStatus{State: WindowClosed, Reason: "closed by hand until 2026-11-21 03:00 UTC (bucket migration)", NextTransition: nov(21, 3, 0)},
		},
		"a close override without a reason says only until when": {
			window: nightlyWindow,
			now:    nov(21, 2, 0),
			facts:  WindowFacts{Override: &Override{Until: nov(21, 3, 0)}},
			want:   WindowStatus{State: WindowClosed, Reason: "closed by hand until 2026-11-21 03:00 UTC", NextTransition: nov(21, 3, 0)},
		},
		"a window longer than its period is open at an opening": {
			window: alwaysOpenWindow,
			now:    nov(21, 0, 0),
			facts:  WindowFacts{Fenced: true},
			want:   WindowStatus{State: WindowOpen, Reason: "inside the window that opened at 2026-11-21 00:00 UTC", NextTransition: nov(21, 3, 0)},
		},
		"a window longer than its period is open just before an opening": {
			window: alwaysOpenWindow,
			now:    nov(21, 11, 59),
			facts:  WindowFacts{Fenced: true},
			want:   WindowStatus{State: WindowOpen, Reason: "inside the window that opened at 2026-11-21 10:00 UTC", NextTransition: nov(21, 13, 0)},
		},
		// Opening on demand, and releases.
		"a Backup asked for while closed opens the window on demand, naming it": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Store: asked},
			want: WindowStatus{State: WindowOnDemand, Reason: "opened on demand at 2026-11-21 12:00 UTC while the object store is busy, until 2026-11-21 13:00 UTC at the latest: 1 backup",
				NextTransition: nov(21, 13, 0), OnDemandSince: nov(21, 12, 0), Requests: []string{"Backup manual"}},
		},
		"the on-demand opening stays while the store is busy": {
			window: nightlyWindow,
			now:    nov(21, 12, 20),
			facts:  WindowFacts{Store: uploading(1), OnDemandSince: nov(21, 12, 0)},
			want: WindowStatus{State: WindowOnDemand, Reason: "opened on demand at 2026-11-21 12:00 UTC while the object store is busy, until 2026-11-21 13:00 UTC at the latest: 1 backup",
				NextTransition: nov(21, 13, 0), OnDemandSince: nov(21, 12, 0)},
		},
		"the on-demand opening closes when idle, and remembers when it began": {
			window: nightlyWindow,
			now:    nov(21, 12, 20),
			facts:  WindowFacts{OnDemandSince: nov(21, 12, 0)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55), OnDemandSince: nov(21, 12, 0)},
		},
		"the on-demand opening closes at its longest though a backup still waits, and that backup does not open it again": {
			window: nightlyWindow,
			now:    nov(21, 13, 0),
			facts:  WindowFacts{Store: asked, OnDemandSince: nov(21, 12, 0)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55), OnDemandSince: nov(21, 12, 0)},
		},
		"once closed after an on-demand opening, running work does not reopen it": {
			window: nightlyWindow,
			now:    nov(21, 12, 30),
			facts:  WindowFacts{Fenced: true, Store: uploading(1), OnDemandSince: nov(21, 12, 0)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55), OnDemandSince: nov(21, 12, 0)},
		},
		"an on-demand opening ends at the next scheduled opening, which takes over": {
			window: nightlyWindow,
			now:    nov(22, 0, 30),
			facts:  WindowFacts{Fenced: true, Store: asked},
			want: WindowStatus{State: WindowOnDemand, Reason: "opened on demand at 2026-11-22 00:30 UTC while the object store is busy, until 2026-11-22 01:30 UTC at the latest: 1 backup",
				NextTransition: nov(22, 0, 55), OnDemandSince: nov(22, 0, 30), Requests: []string{"Backup manual"}},
		},
		"a Backup created while the window was open and still waiting when it closed does not reopen it": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Store: asked, ClosedSince: nov(21, 11, 30)},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"a window closing now closes first, whatever waits": {
			window: nightlyWindow,
			now:    nov(21, 5, 0),
			facts:  WindowFacts{Store: asked},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"a Backup created after the window closed opens it": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Store: asked, ClosedSince: nov(21, 5, 0)},
			want: WindowStatus{State: WindowOnDemand, Reason: "opened on demand at 2026-11-21 12:00 UTC while the object store is busy, until 2026-11-21 13:00 UTC at the latest: 1 backup",
				NextTransition: nov(21, 13, 0), OnDemandSince: nov(21, 12, 0), Requests: []string{"Backup manual"}},
		},
		"without onDemand a Backup asked for while closed leaves the window closed": {
			window: nightlyWindow + "  onDemand: {enabled: false}\n",
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Store: asked},
			want:   WindowStatus{State: WindowClosed, Reason: closedUntilTomorrow, NextTransition: nov(22, 0, 55)},
		},
		"a close override keeps a Backup asked for from opening the window": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Store: asked, Override: &Override{Until: nov(21, 14, 0), Reason: "bucket migration"}},
			want:   WindowStatus{State: WindowClosed, Reason: "closed by hand until 2026-11-21 14:00 UTC (bucket migration)", NextTransition: nov(21, 14, 0)},
		},
		"a release opens the window with no end, whatever the schedule": {
			window: nightlyWindow,
			now:    nov(21, 12, 0),
			facts:  WindowFacts{Fenced: true, Override: &Override{Released: true, Reason: "uninstall"}},
			want:   WindowStatus{State: WindowReleased, Reason: "released by hand (uninstall): no fence until `backupguard window resume`"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			window := compileWindowConfig(t, tc.window)
			if diff := cmp.Diff(tc.want, window.StateAt(tc.now, tc.facts)); diff != "" {
				t.Errorf("StateAt(%s) (-want +got):\n%s", tc.now.Format(time.RFC3339), diff)
			}
		})
	}
}

func TestWindowLongerThanItsPeriodIsAlwaysOpen(t *testing.T) {
	window := compileWindowConfig(t, alwaysOpenWindow)
	start := nov(21, 0, 0)
	for now := start; now.Before(start.Add(48 * time.Hour)); now = now.Add(7 * time.Minute) {
		if got := window.StateAt(now, WindowFacts{Fenced: true}); got.State != WindowOpen {
			t.Errorf("StateAt(%s) = %+v, want state %q", now.Format(time.RFC3339), got, WindowOpen)
		}
	}
}

func TestWindowStateIsOpen(t *testing.T) {
	got := map[WindowState]bool{}
	for _, state := range []WindowState{WindowClosed, WindowOpen, WindowExtended, WindowOverridden} {
		got[state] = state.IsOpen()
	}
	want := map[WindowState]bool{WindowClosed: false, WindowOpen: true, WindowExtended: true, WindowOverridden: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IsOpen (-want +got):\n%s", diff)
	}
}

func TestWindowFirstRunOutside(t *testing.T) {
	cases := map[string]struct {
		window string
		cron   string
		want   time.Time
	}{
		"a daily backup at 02:00 is inside":                                      {window: nightlyWindow, cron: "0 2 * * *"},
		"a daily backup at 01:00, exactly the lead after the opening, is inside": {window: nightlyWindow, cron: "0 1 * * *"},
		"a daily backup at 03:59, the last minute, is inside":                    {window: nightlyWindow, cron: "59 3 * * *"},
		"a backup at the opening is inside the lead":                             {window: nightlyWindow, cron: "55 0 * * *", want: nov(22, 0, 55)},
		"a backup four minutes after the opening is inside the lead":             {window: nightlyWindow, cron: "59 0 * * *", want: nov(22, 0, 59)},
		"a backup at the end is outside, since the end is exclusive":             {window: nightlyWindow, cron: "0 4 * * *", want: nov(22, 4, 0)},
		"a backup in the extension period is outside":                            {window: nightlyWindow, cron: "0 5 * * *", want: nov(22, 5, 0)},
		"half-hourly backups from 01:00 to 03:30 are inside":                     {window: nightlyWindow, cron: "*/30 1-3 * * *"},
		"a weekly backup inside is inside":                                       {window: nightlyWindow, cron: "0 2 * * 0"},
		"a monthly backup inside is inside":                                      {window: nightlyWindow, cron: "0 2 1 * *"},
		"a run exactly now is not counted; the next one, tomorrow, is outside":   {window: nightlyWindow, cron: "0 12 * * *", want: nov(22, 12, 0)},
		"one outside hour of two is found":                                       {window: nightlyWindow, cron: "0 2,13 * * *", want: nov(21, 13, 0)},
		"@daily fires at midnight, outside":                                      {window: nightlyWindow, cron: "@daily", want: nov(22, 0, 0)},
		"a Saturday backup in a Saturday window is inside":                       {window: weeklyWindow, cron: "0 2 * * 6"},
		"a daily backup in a Saturday window is outside on Sunday":               {window: weeklyWindow, cron: "0 2 * * *", want: nov(22, 2, 0)},
		"a Saturday backup inside the lead is outside on the next Saturday":      {window: weeklyWindow, cron: "4 1 * * 6", want: nov(28, 1, 4)},
		"every minute is inside a window that never closes":                      {window: alwaysOpenWindow, cron: "* * * * *"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			window := compileWindowConfig(t, tc.window)
			if diff := cmp.Diff(tc.want, window.FirstRunOutside(mustParseCron(t, tc.cron), testNow, time.UTC)); diff != "" {
				t.Errorf("FirstRunOutside(%q) (-want +got):\n%s", tc.cron, diff)
			}
		})
	}
}

// TestWindowFirstRunOutsideInTheCronZone checks schedules that fire in a local zone (k3s on a host set to
// Europe/Berlin, where kube-controller-manager runs Longhorn's CronJobs in local time) against a window
// that opens in UTC.
func TestWindowFirstRunOutsideInTheCronZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	window := compileWindowConfig(t, nightlyWindow)
	cases := map[string]struct {
		cron string
		want time.Time
	}{
		"03:00 in Berlin is 02:00 UTC in winter and 01:00 in summer, inside all year": {cron: "0 3 * * *"},
		"05:00 in Berlin is 04:00 UTC, the end, outside":                              {cron: "0 5 * * *", want: nov(22, 4, 0)},
		"01:00 in Berlin is midnight UTC, before opening, outside":                    {cron: "0 1 * * *", want: nov(22, 0, 0)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, window.FirstRunOutside(mustParseCron(t, tc.cron), testNow, berlin)); diff != "" {
				t.Errorf("FirstRunOutside(%q) (-want +got):\n%s", tc.cron, diff)
			}
		})
	}
	t.Run("02:00 in Berlin is inside in winter, but summer time moves it out of the window", func(t *testing.T) {
		// 02:00 Berlin is 01:00 UTC in winter (the lead after the opening) and 00:00 UTC in summer time,
		// which starts on 2027-03-28; that day 02:00 does not exist, so the first run outside is the next.
		want := time.Date(2027, time.March, 29, 0, 0, 0, 0, time.UTC)
		if diff := cmp.Diff(want, window.FirstRunOutside(mustParseCron(t, "0 2 * * *"), testNow, berlin)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestNextRunsInTheCronZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{nov(22, 1, 0), nov(23, 1, 0)}
	if diff := cmp.Diff(want, NextRuns(mustParseCron(t, "0 2 * * *"), testNow, 2, berlin)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWindowValidateScheduleInWindow(t *testing.T) {
	// outside is the message for a nightly-window schedule whose first fire time outside it is when.
	outside := func(when string) string {
		return "runs at " + when + ` UTC, outside the backup window (opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening): ` +
			"the backup target is unreachable then, so the backup would fail"
	}
	path := field.NewPath("spec", "cron")
	cases := map[string]struct {
		window string
		cron   string
		now    time.Time
		want   field.ErrorList
	}{
		"a daily backup at 02:00 is allowed": {window: nightlyWindow, cron: "0 2 * * *"},
		"a daily backup at 01:00 is allowed": {window: nightlyWindow, cron: "0 1 * * *"},
		"a backup at the opening is denied, for the target is not synced yet": {
			window: nightlyWindow, cron: "55 0 * * *",
			want: field.ErrorList{field.Invalid(path, "55 0 * * *", outside("2026-11-22 00:55"))},
		},
		"a backup inside the lead is denied": {
			window: nightlyWindow, cron: "59 0 * * *",
			want: field.ErrorList{field.Invalid(path, "59 0 * * *", outside("2026-11-22 00:59"))},
		},
		"a backup at the end is denied": {
			window: nightlyWindow, cron: "0 4 * * *",
			want: field.ErrorList{field.Invalid(path, "0 4 * * *", outside("2026-11-22 04:00"))},
		},
		"a backup an hour after the end is denied": {
			window: nightlyWindow, cron: "0 5 * * *",
			want: field.ErrorList{field.Invalid(path, "0 5 * * *", outside("2026-11-22 05:00"))},
		},
		"half-hourly backups inside are allowed": {window: nightlyWindow, cron: "*/30 1-3 * * *"},
		"a weekly backup inside is allowed":      {window: nightlyWindow, cron: "0 2 * * 0"},
		"a monthly backup inside is allowed":     {window: nightlyWindow, cron: "0 2 1 * *"},
		"a backup at noon is denied, naming the next noon after now": {
			window: nightlyWindow, cron: "0 12 * * *",
			want: field.ErrorList{field.Invalid(path, "0 12 * * *", outside("2026-11-22 12:00"))},
		},
		"now in another time zone is the same instant": {
			window: nightlyWindow, cron: "0 12 * * *", now: testNow.In(time.FixedZone("UTC+14", 14*60*60)),
			want: field.ErrorList{field.Invalid(path, "0 12 * * *", outside("2026-11-22 12:00"))},
		},
		"@daily is denied, for midnight is outside": {
			window: nightlyWindow, cron: "@daily",
			want: field.ErrorList{field.Invalid(path, "@daily", outside("2026-11-22 00:00"))},
		},
		"@every is denied with its own message": {
			window: nightlyWindow, cron: "@every 1h",
			want: field.ErrorList{field.Invalid(path, "@every 1h",
				`@every cannot be kept inside the backup window (opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening): use a cron that fires inside it`)},
		},
		"an invalid cron is left to the cron rule":          {window: nightlyWindow, cron: "0 25 * * *"},
		"a time zone prefix is left to the cron rule":       {window: nightlyWindow, cron: "CRON_TZ=Europe/Berlin 0 2 * * *"},
		"an empty schedule is left to the cron rule":        {window: nightlyWindow, cron: ""},
		"a Saturday backup in a Saturday window is allowed": {window: weeklyWindow, cron: "0 2 * * 6"},
		"a daily backup in a Saturday window is denied from Sunday": {
			window: weeklyWindow, cron: "0 2 * * *",
			want: field.ErrorList{field.Invalid(path, "0 2 * * *",
				`runs at 2026-11-22 02:00 UTC, outside the backup window (opens at "0 1 * * 6" UTC for 4h0m0s, backups from 5m0s after opening): `+
					"the backup target is unreachable then, so the backup would fail")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			window := compileWindowConfig(t, tc.window)
			now := tc.now
			if now.IsZero() {
				now = testNow
			}
			// The second call is answered from the memo and must agree with the first.
			for _, call := range []string{"first", "repeated"} {
				if diff := cmp.Diff(tc.want, window.ValidateScheduleInWindow(path, tc.cron, now, time.UTC)); diff != "" {
					t.Errorf("%s ValidateScheduleInWindow(%q) (-want +got):\n%s", call, tc.cron, diff)
				}
			}
		})
	}
}

func TestValidateRecurringJobInWindow(t *testing.T) {
	outsideAtNoon := `runs at 2026-11-22 12:00 UTC, outside the backup window (opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening): ` +
		"the backup target is unreachable then, so the backup would fail"
	const pollingDefault = "BackupTarget default polls every 5m0s: periodic polling still lists the bucket; backupguard syncs it at every opening, so set spec.pollInterval: 0s"
	cases := map[string]struct {
		job      *longhorn.RecurringJob
		noWindow bool
		polling  map[string]string
		want     field.ErrorList
		warnings []string
	}{
		"a backup inside the window is allowed": {
			job: makeRecurringJob("daily").Obj(),
		},
		"a backup outside the window is denied": {
			job:  makeRecurringJob("daily").Cron("0 12 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 12 * * *", outsideAtNoon)},
		},
		"a forced backup outside the window is denied": {
			job:  makeRecurringJob("daily").Task(longhorn.TaskBackupForceCreate).Cron("0 12 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 12 * * *", outsideAtNoon)},
		},
		"a system backup outside the window is denied": {
			job:  makeRecurringJob("system").Task(longhorn.TaskSystemBackup).Cron("0 12 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 12 * * *", outsideAtNoon)},
		},
		"a snapshot outside the window is allowed, for it does not reach the backup target": {
			job: makeRecurringJob("snap").Task(longhorn.TaskSnapshot).Cron("0 12 * * *").Obj(),
		},
		"without a window a backup at any time is allowed": {
			job:      makeRecurringJob("daily").Cron("0 12 * * *").Obj(),
			noWindow: true,
		},
		"the window error comes after the other cron checks and before later fields": {
			job: makeRecurringJob("daily").Namespace("default").Cron("0 12 * * *").Concurrency(-1).Obj(),
			want: field.ErrorList{
				field.Invalid(field.NewPath("metadata", "namespace"), "default",
					`RecurringJobs must be in the Longhorn namespace "longhorn-system": Longhorn ignores them anywhere else`),
				field.Invalid(cronPath, "0 12 * * *", outsideAtNoon),
				field.Invalid(specPath.Child("concurrency"), -1, "must not be negative; 0 means Longhorn's default of 10"),
			},
		},
		"an invalid cron on a backup is reported once, by the cron rule": {
			job:  makeRecurringJob("daily").Cron("0 25 * * *").Obj(),
			want: field.ErrorList{field.Invalid(cronPath, "0 25 * * *", "not a valid schedule: End of range (25) above maximum (23): 25")},
		},
		"a polling backup target is warned about on a backup": {
			job:      makeRecurringJob("daily").Obj(),
			polling:  map[string]string{"default": "5m0s"},
			warnings: []string{pollingDefault},
		},
		"a polling backup target is warned about on a denied backup too": {
			job:      makeRecurringJob("daily").Cron("0 12 * * *").Obj(),
			polling:  map[string]string{"default": "5m0s"},
			want:     field.ErrorList{field.Invalid(cronPath, "0 12 * * *", outsideAtNoon)},
			warnings: []string{pollingDefault},
		},
		"polling backup targets are warned about in name order": {
			job:     makeRecurringJob("daily").Obj(),
			polling: map[string]string{"offsite": "1h0m0s", "default": "5m0s"},
			warnings: []string{
				pollingDefault,
				"BackupTarget offsite polls every 1h0m0s: periodic polling still lists the bucket; backupguard syncs it at every opening, so set spec.pollInterval: 0s",
			},
		},
		"a polling backup target is not warned about on a snapshot": {
			job:     makeRecurringJob("snap").Task(longhorn.TaskSnapshot).Obj(),
			polling: map[string]string{"default": "5m0s"},
		},
		"a polling backup target is not warned about without a window": {
			job:      makeRecurringJob("daily").Obj(),
			noWindow: true,
			polling:  map[string]string{"default": "5m0s"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := defaultEnvironment(tc.job)
			if !tc.noWindow {
				env.Window = compileWindowConfig(t, nightlyWindow)
			}
			env.PollingBackupTargets = tc.polling
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

// benchmarkWindowConfig is the nightly window as a struct, so compiling it needs no YAML.
func benchmarkWindowConfig() *WindowConfig {
	return &WindowConfig{
		Opens:        "55 0 * * *",
		Duration:     metav1.Duration{Duration: 3*time.Hour + 5*time.Minute},
		Lead:         &metav1.Duration{Duration: 5 * time.Minute},
		MaxExtension: &metav1.Duration{Duration: time.Hour},
	}
}

// BenchmarkValidateScheduleInWindowCold checks a schedule inside the window, the slowest verdict (a
// year of openings is walked), against a freshly compiled window whose memo is empty; the time
// includes compiling the window.
func BenchmarkValidateScheduleInWindowCold(b *testing.B) {
	config := benchmarkWindowConfig()
	path := field.NewPath("spec", "cron")
	b.ReportAllocs()
	for b.Loop() {
		window, errs := CompileWindow(config, field.NewPath("window"))
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		if errs := window.ValidateScheduleInWindow(path, "0 2 * * *", testNow, time.UTC); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkValidateScheduleInWindowRepeated checks the same schedule at the same instant against one
// window, as admission does for the same RecurringJob over and over.
func BenchmarkValidateScheduleInWindowRepeated(b *testing.B) {
	window, errs := CompileWindow(benchmarkWindowConfig(), field.NewPath("window"))
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	path := field.NewPath("spec", "cron")
	b.ReportAllocs()
	for b.Loop() {
		if errs := window.ValidateScheduleInWindow(path, "0 2 * * *", testNow, time.UTC); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// uploading is count Backups in progress.
func uploading(count int) StoreFacts {
	var facts StoreFacts
	for i := range count {
		facts.Backups = append(facts.Backups, longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("backup-%d", i)}, Status: longhorn.BackupStatus{State: "InProgress"}})
	}
	return facts
}

func TestPollingInterval(t *testing.T) {
	cases := map[string]struct{ pollInterval, want string }{
		"absent: Longhorn starts no poll timer":  {pollInterval: "", want: ""},
		"0s: no poll timer":                      {pollInterval: "0s", want: ""},
		"0m0s, as kubectl may show it, is 0 too": {pollInterval: "0m0s", want: ""},
		"five minutes polls":                     {pollInterval: "5m0s", want: "5m0s"},
		"an unparseable value is shown as it is": {pollInterval: "often", want: "often"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := PollingInterval(tc.pollInterval); got != tc.want {
				t.Errorf("PollingInterval(%q) = %q, want %q", tc.pollInterval, got, tc.want)
			}
		})
	}
}
