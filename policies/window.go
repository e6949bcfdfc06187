package policies

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// WindowConfig is the S3 window: Longhorn's pods may reach the object store only inside it, because
// Longhorn otherwise lists the backup bucket all day (Longhorn issue #1547) and object stores bill
// per call.
type WindowConfig struct {
	// Opens is a five-field cron in UTC, e.g. "55 0 * * *".
	Opens string `json:"opens"`
	// Duration is how long each opening lasts, e.g. 3h5m.
	Duration metav1.Duration `json:"duration"`
	// Lead is the least time between an opening and the first backup in it (default 5m): the backup
	// target must be synced and marked available first.
	Lead *metav1.Duration `json:"lead,omitempty"`
	// Targets are the pods to fence, one NetworkPolicy each. Default: the Longhorn manager
	// (app=longhorn-manager) and the instance managers (longhorn.io/component=instance-manager).
	Targets []WindowTarget `json:"targets,omitempty"`
	// AllowedCIDRs stay reachable while closed, e.g. in-cluster ranges that are not pods.
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`
	// BackupTargets are the BackupTargets to sync at each opening, until they report it (default: all).
	BackupTargets []string `json:"backupTargets,omitempty"`
	// CloseWhenIdle keeps the window open past its end while the object store is busy (StoreFacts.Work:
	// backups, deletions, system backups, restores, recurring-job pods; default true), up to MaxExtension.
	CloseWhenIdle *bool `json:"closeWhenIdle,omitempty"`
	// MaxExtension is the longest the window stays open past its end (default 2h).
	MaxExtension *metav1.Duration `json:"maxExtension,omitempty"`
	// NetworkPolicyFlavor is auto (default), kubernetes or cilium: with cilium, or auto when the API
	// server serves CiliumNetworkPolicies, each target also gets one (see WindowCiliumNetworkPolicies).
	NetworkPolicyFlavor string `json:"networkPolicyFlavor,omitempty"`
	// OnDemand opens the closed window for a Backup or SystemBackup asked for while it is closed.
	OnDemand *OnDemandConfig `json:"onDemand,omitempty"`
}

// OnDemandConfig is the window opening on demand: a manual backup, a CSI VolumeSnapshot of a Longhorn
// class or a SystemBackup created while the window is closed opens it, until the store work is done or
// MaxDuration has passed.
type OnDemandConfig struct {
	// Enabled is true by default.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxDuration is the longest an on-demand opening lasts (default 1h).
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`
}

// WindowTarget is one group of pods to fence.
type WindowTarget struct {
	// Name names the NetworkPolicy: backupguard-egress-<name>.
	Name        string                `json:"name"`
	PodSelector *metav1.LabelSelector `json:"podSelector"`
}

// Window defaults.
const (
	DefaultWindowLead          = 5 * time.Minute
	DefaultWindowMaxExtension  = 2 * time.Hour
	DefaultOnDemandMaxDuration = time.Hour
)

// DefaultWindowTargets are the two kinds of Longhorn pods that talk to the object store: the manager
// lists, inspects and deletes backups; the instance managers upload and restore block data.
func DefaultWindowTargets() []WindowTarget {
	return []WindowTarget{
		{Name: "longhorn-manager", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "longhorn-manager"}}},
		{Name: "instance-manager", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"longhorn.io/component": "instance-manager"}}},
	}
}

// Window is the S3 window compiled; nil means no window is configured.
type Window struct {
	opens         cron.Schedule
	opensText     string
	duration      time.Duration
	lead          time.Duration
	Targets       []WindowTarget
	AllowedCIDRs  []netip.Prefix
	BackupTargets []string
	closeWhenIdle bool
	maxExtension  time.Duration
	// onDemand is the longest on-demand opening; 0 when the window never opens on demand.
	onDemand time.Duration
	// networkPolicyFlavor is empty for auto, so the zero Window has the default.
	networkPolicyFlavor NetworkPolicyFlavor

	// checked memoizes RecurringJob schedule checks by schedule and minute: admission sees the same
	// schedules over and over, and a verdict cannot change within the minute it was made in.
	checkedMu sync.Mutex
	checked   map[string]time.Time
}

// maxMemoized bounds the memo; it is emptied when full.
const maxMemoized = 4096

// zoneReference is the year whose daylight-saving offsets time-zone messages about the window's own
// cron quote; configuration is compiled without a clock.
var zoneReference = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// CompileWindow checks the window section; nil config gives a nil Window.
func CompileWindow(config *WindowConfig, path *field.Path) (*Window, field.ErrorList) {
	if config == nil {
		return nil, nil
	}
	var errs field.ErrorList
	window := &Window{opensText: config.Opens, duration: config.Duration.Duration, lead: DefaultWindowLead,
		closeWhenIdle: true, maxExtension: DefaultWindowMaxExtension, onDemand: DefaultOnDemandMaxDuration, BackupTargets: config.BackupTargets}
	if strings.HasPrefix(strings.TrimSpace(config.Opens), "@every") {
		errs = append(errs, field.Invalid(path.Child("opens"), config.Opens, "must be a five-field cron, not @every"))
	} else if schedule, cronErrs := ValidateCron(path.Child("opens"), config.Opens, zoneReference, time.UTC); len(cronErrs) > 0 {
		errs = append(errs, cronErrs...)
	} else if schedule.Next(zoneReference).IsZero() {
		// robfig/cron gives up after five years without a match, e.g. for the 30th of February.
		errs = append(errs, field.Invalid(path.Child("opens"), config.Opens, "never fires, so the window would never open"))
	} else {
		window.opens = schedule
	}
	if window.duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("duration"), config.Duration.Duration.String(), "must be above 0, e.g. 3h5m"))
	}
	if config.Lead != nil {
		window.lead = config.Lead.Duration
	}
	if window.duration > 0 && (window.lead < 0 || window.lead >= window.duration) {
		errs = append(errs, field.Invalid(path.Child("lead"), window.lead.String(), fmt.Sprintf("must be 0 or more and shorter than the duration (%s), or no backup could ever run", window.duration)))
	}
	if config.CloseWhenIdle != nil {
		window.closeWhenIdle = *config.CloseWhenIdle
	}
	if config.MaxExtension != nil {
		window.maxExtension = config.MaxExtension.Duration
		if window.maxExtension < 0 {
			errs = append(errs, field.Invalid(path.Child("maxExtension"), config.MaxExtension.Duration.String(), "must not be negative"))
		}
	}
	if onDemand := config.OnDemand; onDemand != nil {
		if onDemand.MaxDuration != nil {
			window.onDemand = onDemand.MaxDuration.Duration
			if window.onDemand <= 0 {
				errs = append(errs, field.Invalid(path.Child("onDemand", "maxDuration"), onDemand.MaxDuration.Duration.String(), "must be above 0; set enabled: false to never open on demand"))
			}
		}
		if onDemand.Enabled != nil && !*onDemand.Enabled {
			window.onDemand = 0
		}
	}
	var flavorErrs field.ErrorList
	window.networkPolicyFlavor, flavorErrs = compileNetworkPolicyFlavor(config.NetworkPolicyFlavor, path.Child("networkPolicyFlavor"))
	errs = append(errs, flavorErrs...)
	window.Targets = config.Targets
	if len(window.Targets) == 0 {
		window.Targets = DefaultWindowTargets()
	}
	seen := map[string]bool{}
	for i, target := range window.Targets {
		targetPath := path.Child("targets").Index(i)
		for _, msg := range validation.IsDNS1123Label(target.Name) {
			errs = append(errs, field.Invalid(targetPath.Child("name"), target.Name, msg))
		}
		if seen[target.Name] {
			errs = append(errs, field.Duplicate(targetPath.Child("name"), target.Name))
		}
		seen[target.Name] = true
		if target.PodSelector == nil {
			errs = append(errs, field.Required(targetPath.Child("podSelector"), "the pods to fence"))
			continue
		}
		selector, selectorErrs := compileSelector(target.PodSelector, targetPath.Child("podSelector"))
		errs = append(errs, selectorErrs...)
		if selector != nil && selector.Empty() {
			errs = append(errs, field.Invalid(targetPath.Child("podSelector"), "{}", "must select some pods, not every pod in the Longhorn namespace"))
		}
	}
	for i, cidr := range config.AllowedCIDRs {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			errs = append(errs, field.Invalid(path.Child("allowedCIDRs").Index(i), cidr, "must be a CIDR such as 10.0.0.0/8"))
			continue
		}
		window.AllowedCIDRs = append(window.AllowedCIDRs, prefix.Masked())
	}
	return window, errs
}

// WindowState is whether Longhorn may reach the object store.
type WindowState string

// The window states.
const (
	WindowClosed     WindowState = "closed"
	WindowOpen       WindowState = "open"
	WindowExtended   WindowState = "extended"
	WindowOverridden WindowState = "overridden"
	WindowOnDemand   WindowState = "on-demand"
	WindowReleased   WindowState = "released"
)

// IsOpen tells whether the fences are down in this state.
func (s WindowState) IsOpen() bool { return s != WindowClosed && s != "" }

// WindowFacts is the cluster state the window depends on, gathered once per decision.
type WindowFacts struct {
	// Override is the manual override, nil when there is none.
	Override *Override
	// Fenced says the NetworkPolicies are in place now: once the window has closed after its end it
	// stays closed, even if a backup starts later in the extension period.
	Fenced bool
	// Store is the work with the object store.
	Store StoreFacts
	// OnDemandSince is when the latest on-demand opening began (zero when none): it bounds that opening.
	OnDemandSince time.Time
	// ClosedSince is when the window last closed (zero when unknown): only a Backup or SystemBackup
	// created after it was asked for while closed. One created while the window was open and still
	// waiting when it closed (e.g. past maxExtension) does not reopen it.
	ClosedSince time.Time
}

// WindowStatus is the window at one instant.
type WindowStatus struct {
	State  WindowState
	Reason string
	// NextTransition is when the state may next change (zero when never).
	NextTransition time.Time
	// OnDemandSince is the on-demand opening to remember (carried over when none is open).
	OnDemandSince time.Time
	// Requests are the Backups and SystemBackups that open the window on demand now, "Kind name".
	Requests []string
}

// StateAt decides the window at instant now. In order: a release, then an override, wins; then the
// schedule; then an extension while the store is busy; then an opening on demand.
func (w *Window) StateAt(now time.Time, facts WindowFacts) WindowStatus {
	now = now.UTC()
	status := w.stateAt(now, facts)
	if status.OnDemandSince.IsZero() {
		status.OnDemandSince = facts.OnDemandSince
	}
	return status
}

func (w *Window) stateAt(now time.Time, facts WindowFacts) WindowStatus {
	if override := facts.Override; override != nil && override.Released {
		return WindowStatus{State: WindowReleased, Reason: "released by hand" + reasonSuffix(override.Reason) + ": no fence until `backupguard window resume`"}
	}
	if override := facts.Override; override != nil && now.Before(override.Until) {
		if override.Open {
			return WindowStatus{State: WindowOverridden, Reason: fmt.Sprintf("opened by hand until %s%s", formatUTC(override.Until), reasonSuffix(override.Reason)), NextTransition: override.Until}
		}
		return WindowStatus{State: WindowClosed, Reason: fmt.Sprintf("closed by hand until %s%s", formatUTC(override.Until), reasonSuffix(override.Reason)), NextTransition: override.Until}
	}
	opened := w.lastOpening(now)
	end := opened.Add(w.duration)
	next := w.opens.Next(now)
	work := facts.Store.Work()
	switch {
	case !opened.IsZero() && now.Before(end):
		return WindowStatus{State: WindowOpen, Reason: fmt.Sprintf("inside the window that opened at %s", formatUTC(opened)), NextTransition: end}
	case !opened.IsZero() && w.closeWhenIdle && now.Before(end.Add(w.maxExtension)) && work.Total() > 0 && !facts.Fenced:
		return WindowStatus{State: WindowExtended, Reason: fmt.Sprintf("the window ended at %s, but the object store is busy: %s", formatUTC(end), work),
			NextTransition: earliest(end.Add(w.maxExtension), next)}
	}
	if w.onDemand > 0 {
		// An opening on demand lasts while the store is busy, up to onDemand, and once closed stays
		// closed: only a request made after that opens the window again.
		if since := facts.OnDemandSince; !since.IsZero() && now.Before(since.Add(w.onDemand)) && work.Total() > 0 && !facts.Fenced {
			return WindowStatus{State: WindowOnDemand, Reason: onDemandReason(since, since.Add(w.onDemand), work), NextTransition: earliest(since.Add(w.onDemand), next)}
		}
		// Only a closed, fenced window opens on demand, for a request made after it closed (and after
		// the last on-demand opening began, which a request may outlive): a window that is closing now
		// closes first, so a Backup asked for while it was open and still waiting does not reopen it.
		asked := facts.ClosedSince
		if facts.OnDemandSince.After(asked) {
			asked = facts.OnDemandSince
		}
		if requests := facts.Store.Requests(asked); facts.Fenced && len(requests) > 0 {
			return WindowStatus{State: WindowOnDemand, Reason: onDemandReason(now, now.Add(w.onDemand), work), NextTransition: earliest(now.Add(w.onDemand), next),
				OnDemandSince: now, Requests: requests}
		}
	}
	return WindowStatus{State: WindowClosed, Reason: fmt.Sprintf("outside the window; it next opens at %s", formatUTC(next)), NextTransition: next}
}

func onDemandReason(since, limit time.Time, work StoreWork) string {
	return fmt.Sprintf("opened on demand at %s while the object store is busy, until %s at the latest: %s", formatUTC(since), formatUTC(limit), work)
}

func earliest(a, b time.Time) time.Time {
	if !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// lastOpening is the latest opening at or before now whose window (with its longest extension) could
// still matter, or zero.
func (w *Window) lastOpening(now time.Time) time.Time {
	// Openings are found forwards from a point one window (plus extension) back.
	from := now.Add(-w.duration - w.maxExtension - time.Minute)
	var last time.Time
	for opening := w.opens.Next(from); !opening.IsZero() && !opening.After(now); opening = w.opens.Next(opening) {
		last = opening
	}
	return last
}

// Describe names the window in UTC for messages.
func (w *Window) Describe() string {
	return fmt.Sprintf("opens at %q UTC for %s, backups from %s after opening", w.opensText, w.duration, w.lead)
}

// windowHorizon is how far ahead a schedule is checked: a year catches monthly and day-of-week
// patterns.
const windowHorizon = 366 * 24 * time.Hour

// FirstRunOutside returns the first fire time of schedule after now that does not fall inside a
// window at least lead after it opened; zero when there is none within a year. It needs two cron steps
// per window, not one per fire time: once a fire time is inside a window, every fire time until that
// window ends is too. The schedule fires in fireZone (Longhorn's CronJobs run in kube-controller-manager's
// zone); the window itself is backupguard's and opens in UTC.
func (w *Window) FirstRunOutside(schedule cron.Schedule, now time.Time, fireZone *time.Location) time.Time {
	now = now.In(fireZone)
	horizon := now.Add(windowHorizon)
	// Runs strictly after now, like the next runs `validate` shows; later, from a window's end on.
	from := now.Add(time.Nanosecond)
	for {
		fire := schedule.Next(from.Add(-time.Nanosecond))
		if fire.IsZero() || !fire.Before(horizon) {
			return time.Time{}
		}
		// Of the openings whose window still runs at fire, the earliest has been open longest.
		opening := w.opens.Next(fire.Add(-w.duration).UTC())
		if opening.IsZero() || opening.After(fire.Add(-w.lead)) {
			return fire.UTC()
		}
		from = opening.Add(w.duration).In(fireZone)
	}
}

// ValidateScheduleInWindow denies a backup-type RecurringJob schedule that fires outside the window; the
// schedule fires in fireZone.
func (w *Window) ValidateScheduleInWindow(path *field.Path, expression string, now time.Time, fireZone *time.Location) field.ErrorList {
	schedule, errs := ValidateCron(path, expression, now, fireZone)
	if len(errs) > 0 {
		return nil // reported by the cron rule itself
	}
	if strings.HasPrefix(strings.TrimSpace(expression), "@every") {
		return field.ErrorList{field.Invalid(path, expression, fmt.Sprintf("@every cannot be kept inside the backup window (%s): use a cron that fires inside it", w.Describe()))}
	}
	outside := w.firstRunOutsideMemoized(expression, schedule, now, fireZone)
	if outside.IsZero() {
		return nil
	}
	return field.ErrorList{field.Invalid(path, expression, fmt.Sprintf(
		"runs at %s, outside the backup window (%s): the backup target is unreachable then, so the backup would fail", formatUTC(outside), w.Describe()))}
}

func (w *Window) firstRunOutsideMemoized(expression string, schedule cron.Schedule, now time.Time, fireZone *time.Location) time.Time {
	key := expression + "@" + now.UTC().Truncate(time.Minute).Format(time.RFC3339) + "@" + fireZone.String()
	w.checkedMu.Lock()
	outside, ok := w.checked[key]
	w.checkedMu.Unlock()
	if ok {
		return outside
	}
	outside = w.FirstRunOutside(schedule, now, fireZone)
	w.checkedMu.Lock()
	if w.checked == nil || len(w.checked) >= maxMemoized {
		w.checked = map[string]time.Time{}
	}
	w.checked[key] = outside
	w.checkedMu.Unlock()
	return outside
}

// isBackupTask tells whether a task talks to the backup target.
func isBackupTask(task longhorn.Task) bool {
	return task == longhorn.TaskBackup || task == longhorn.TaskBackupForceCreate || task == longhorn.TaskSystemBackup
}

// Selector compiles a target's pod selector (valid once CompileWindow passed).
func (t WindowTarget) Selector() labels.Selector {
	selector, _ := metav1.LabelSelectorAsSelector(t.PodSelector)
	return selector
}

func formatUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// PollingInterval tells how often a BackupTarget polls the store: "" when it does not (pollInterval
// absent or 0s).
func PollingInterval(pollInterval string) string {
	// Absent is a zero duration: Longhorn starts no poll timer for it, as for "0s"
	// (longhorn-manager controller/backup_target_controller.go).
	if pollInterval == "" {
		return ""
	}
	if interval, err := time.ParseDuration(pollInterval); err == nil && interval == 0 {
		return ""
	}
	return pollInterval
}

// Opening is one window: when it opens and when its scheduled time ends.
type Opening struct {
	Opens, Closes time.Time
}

// NextOpenings lists the next count windows that open after now, in UTC.
func (w *Window) NextOpenings(now time.Time, count int) []Opening {
	openings := make([]Opening, 0, count)
	next := now.UTC()
	for range count {
		next = w.opens.Next(next)
		if next.IsZero() {
			break
		}
		openings = append(openings, Opening{Opens: next, Closes: next.Add(w.duration)})
	}
	return openings
}
