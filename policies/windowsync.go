package policies

import (
	"slices"
	"time"

	"github.com/backupguard/backupguard/longhorn"
)

// SyncTargets are the BackupTargets the window asks to sync: those named in backupTargets, or all.
func (w *Window) SyncTargets(targets []longhorn.BackupTarget) []longhorn.BackupTarget {
	if len(w.BackupTargets) == 0 {
		return targets
	}
	var selected []longhorn.BackupTarget
	for _, target := range targets {
		if slices.Contains(w.BackupTargets, target.Name) {
			selected = append(selected, target)
		}
	}
	return selected
}

// Sync retries back off from syncRetryMin to syncRetryMax: Longhorn itself retries a failed sync on
// its ~30 s resync, so asking more often only adds writes.
const (
	syncRetryMin = 30 * time.Second
	syncRetryMax = 5 * time.Minute
)

// SyncPlan is which BackupTargets to ask for a sync now, and when to look again.
type SyncPlan struct {
	// Due names the targets whose spec.syncRequestedAt to set now.
	Due []string
	// Recheck is when the next retry falls due (zero when none is waiting).
	Recheck time.Time
}

// SyncsDue decides, while the window is open since openedAt, which BackupTargets to ask for a sync. A
// target is done once Longhorn reports a sync after this opening's request and available: Longhorn syncs
// while spec.syncRequestedAt is after status.lastSyncedAt and then sets lastSyncedAt
// (longhorn-manager controller/backup_target_controller.go, isBackupTargetSyncRequired), and a sync
// that could not reach the store leaves it unavailable. Otherwise it is asked when not yet asked since
// the opening, and asked again after a backoff that doubles with the time already spent (30 s to 5 min),
// derived from the timestamps alone so that a restart or a new leader keeps the pace.
func (w *Window) SyncsDue(targets []longhorn.BackupTarget, openedAt, now time.Time) SyncPlan {
	var plan SyncPlan
	openedAt = openedAt.Truncate(time.Second)
	backoff := func(requested time.Time) time.Duration {
		return min(max(requested.Sub(openedAt), syncRetryMin), syncRetryMax)
	}
	recheck := func(at time.Time) {
		if plan.Recheck.IsZero() || at.Before(plan.Recheck) {
			plan.Recheck = at
		}
	}
	for _, target := range w.SyncTargets(targets) {
		requested, synced := target.Spec.SyncRequestedAt.Time, target.Status.LastSyncedAt.Time
		switch {
		case requested.IsZero() || requested.Before(openedAt):
		case !synced.IsZero() && !requested.After(synced) && target.Status.Available:
			continue
		case now.Before(requested.Add(backoff(requested))):
			recheck(requested.Add(backoff(requested)))
			continue
		}
		plan.Due = append(plan.Due, target.Name)
		recheck(now.Add(backoff(now)))
	}
	slices.Sort(plan.Due)
	return plan
}

// OpeningOverdueGrace is how long past a scheduled opening the window may still be closed before the
// dead man's switch says so: the controller opens within seconds; a few minutes cover a leader change.
const OpeningOverdueGrace = 10 * time.Minute

// OpeningOverdue tells whether the window has stayed closed past a scheduled opening plus the grace:
// a scheduled opening came after lastOpened (the latest opening the controller recorded) and at least
// the grace ago. It stays true until the window opens. Without any recorded opening (a fresh install),
// only an opening whose window still runs counts. A close or release override is a person's choice,
// not a failure.
func (w *Window) OpeningOverdue(now, lastOpened time.Time, override *Override) bool {
	if override != nil && (override.Released || (!override.Open && now.Before(override.Until))) {
		return false
	}
	from := lastOpened
	if from.IsZero() {
		from = now.Add(-w.duration - OpeningOverdueGrace)
	}
	due := w.opens.Next(from)
	return !due.IsZero() && !due.After(now.Add(-OpeningOverdueGrace))
}
