package policies

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/backupguard/backupguard/longhorn"
)

func backupIn(name, state string) longhorn.Backup {
	return longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(nov(21, 11, 0))}, Status: longhorn.BackupStatus{State: state}}
}

func TestStoreWork(t *testing.T) {
	deletedBackup := backupIn("old", "Completed")
	deletedBackup.DeletionTimestamp = ptr.To(metav1.NewTime(nov(21, 11, 30)))
	deletedSystemBackup := longhorn.SystemBackup{ObjectMeta: metav1.ObjectMeta{Name: "sb-old", DeletionTimestamp: ptr.To(metav1.NewTime(nov(21, 11, 30)))}, Status: longhorn.SystemBackupStatus{State: "Ready"}}
	cases := map[string]struct {
		facts StoreFacts
		want  StoreWork
		text  string
	}{
		"nothing at all is idle": {want: StoreWork{}, text: "nothing"},
		"Backups not started, pending, uploading, deleting or being deleted are busy; finished ones are not": {
			facts: StoreFacts{Backups: []longhorn.Backup{backupIn("new", ""), backupIn("pending", "Pending"), backupIn("uploading", "InProgress"),
				backupIn("deleting", "Deleting"), deletedBackup, backupIn("done", "Completed"), backupIn("failed", "Error"), backupIn("lost", "Unknown")}},
			want: StoreWork{Backups: 5},
			text: "5 backups",
		},
		"every SystemBackup step but Ready and Error is busy, and one being deleted": {
			facts: StoreFacts{SystemBackups: []longhorn.SystemBackup{
				{Status: longhorn.SystemBackupStatus{State: ""}}, {Status: longhorn.SystemBackupStatus{State: "Generating"}},
				{Status: longhorn.SystemBackupStatus{State: "CreatingVolumeBackups"}}, {Status: longhorn.SystemBackupStatus{State: "CreatingBackingImageBackups"}},
				{Status: longhorn.SystemBackupStatus{State: "Uploading"}}, {Status: longhorn.SystemBackupStatus{State: "Syncing"}},
				{Status: longhorn.SystemBackupStatus{State: "Deleting"}}, deletedSystemBackup,
				{Status: longhorn.SystemBackupStatus{State: "Ready"}}, {Status: longhorn.SystemBackupStatus{State: "Error"}},
			}},
			want: StoreWork{SystemBackups: 8},
			text: "8 system backups",
		},
		"a BackupBackingImage in progress is busy, a completed one is not": {
			facts: StoreFacts{BackupBackingImages: []longhorn.BackupBackingImage{{Status: longhorn.BackupStatus{State: "InProgress"}}, {Status: longhorn.BackupStatus{State: "Completed"}}}},
			want:  StoreWork{BackupBackingImages: 1},
			text:  "1 backing-image backup",
		},
		"restoring volumes and DR volumes are busy; a restored volume and a plain one are not": {
			facts: StoreFacts{Volumes: []longhorn.Volume{
				{Status: longhorn.VolumeStatus{RestoreRequired: true, RestoreInitiated: true}},
				{Spec: longhorn.VolumeSpec{FromBackup: "s3://bucket@us-east-1/?backup=b&volume=v"}},
				{Spec: longhorn.VolumeSpec{FromBackup: "s3://bucket@us-east-1/?backup=b&volume=v"}, Status: longhorn.VolumeStatus{RestoreInitiated: true}},
				{Spec: longhorn.VolumeSpec{FromBackup: "s3://bucket@us-east-1/?backup=b&volume=v", Standby: true}, Status: longhorn.VolumeStatus{RestoreRequired: true, RestoreInitiated: true, IsStandby: true}},
				{Status: longhorn.VolumeStatus{IsStandby: true}},
				{},
			}},
			want: StoreWork{Restores: 2, DRVolumes: 2},
			text: "2 restoring volumes, 2 DR volumes",
		},
		"a running recurring-job pod of a backup job is busy; finished pods and snapshot jobs are not; an unknown job counts": {
			facts: StoreFacts{
				RecurringJobs: []longhorn.RecurringJob{
					{ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup}},
					{ObjectMeta: metav1.ObjectMeta{Name: "system"}, Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskSystemBackup}},
					{ObjectMeta: metav1.ObjectMeta{Name: "snap"}, Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskSnapshot}},
				},
				RecurringJobPods: []RecurringJobPod{
					{Name: "nightly-1", RecurringJob: "nightly", Phase: corev1.PodRunning},
					{Name: "nightly-0", RecurringJob: "nightly", Phase: corev1.PodSucceeded},
					{Name: "system-1", RecurringJob: "system", Phase: corev1.PodPending},
					{Name: "system-0", RecurringJob: "system", Phase: corev1.PodFailed},
					{Name: "snap-1", RecurringJob: "snap", Phase: corev1.PodRunning},
					{Name: "gone-1", RecurringJob: "gone", Phase: corev1.PodRunning},
				},
			},
			want: StoreWork{RecurringJobPods: 3},
			text: "3 recurring-job pods",
		},
		"each kind is named once, in order": {
			facts: StoreFacts{
				Backups:          []longhorn.Backup{backupIn("a", "InProgress"), backupIn("b", "")},
				SystemBackups:    []longhorn.SystemBackup{{Status: longhorn.SystemBackupStatus{State: "Uploading"}}},
				RecurringJobPods: []RecurringJobPod{{Name: "x", RecurringJob: "x", Phase: corev1.PodRunning}},
			},
			want: StoreWork{Backups: 2, SystemBackups: 1, RecurringJobPods: 1},
			text: "2 backups, 1 system backup, 1 recurring-job pod",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := tc.facts.Work()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Work (-want +got):\n%s", diff)
			}
			if got.String() != tc.text {
				t.Errorf("String = %q, want %q", got.String(), tc.text)
			}
		})
	}
}

func TestStoreRequests(t *testing.T) {
	later := backupIn("later", "")
	later.CreationTimestamp = metav1.NewTime(nov(21, 12, 30))
	being := backupIn("being-deleted", "")
	being.DeletionTimestamp = ptr.To(metav1.NewTime(nov(21, 11, 30)))
	facts := StoreFacts{
		Backups: []longhorn.Backup{backupIn("manual", ""), backupIn("snapshot-csi", "Pending"), backupIn("running", "InProgress"), being, later},
		SystemBackups: []longhorn.SystemBackup{
			{ObjectMeta: metav1.ObjectMeta{Name: "asked", CreationTimestamp: metav1.NewTime(nov(21, 11, 0))}},
			{ObjectMeta: metav1.ObjectMeta{Name: "generating", CreationTimestamp: metav1.NewTime(nov(21, 11, 0))}, Status: longhorn.SystemBackupStatus{State: "Generating"}},
		},
	}
	if diff := cmp.Diff([]string{"Backup later", "Backup manual", "Backup snapshot-csi", "SystemBackup asked"}, facts.Requests(time.Time{})); diff != "" {
		t.Errorf("Requests with no earlier opening (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Backup later"}, facts.Requests(nov(21, 12, 0))); diff != "" {
		t.Errorf("Requests after an opening at 12:00 (-want +got):\n%s", diff)
	}
}

func backupTarget(name string, requested, synced time.Time, available bool) longhorn.BackupTarget {
	return longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   longhorn.BackupTargetSpec{SyncRequestedAt: metav1.NewTime(requested)},
		Status: longhorn.BackupTargetStatus{LastSyncedAt: metav1.NewTime(synced), Available: available}}
}

func TestWindowSyncsDue(t *testing.T) {
	opened := nov(21, 0, 55)
	second := time.Second
	cases := map[string]struct {
		window  string
		targets []longhorn.BackupTarget
		now     time.Time
		want    SyncPlan
	}{
		"at the opening every target not asked since is due": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", nov(20, 0, 55), nov(20, 0, 55).Add(second), true), backupTarget("offsite", time.Time{}, time.Time{}, false)},
			now:     opened,
			want:    SyncPlan{Due: []string{"default", "offsite"}, Recheck: opened.Add(30 * second)},
		},
		"only the configured targets are asked": {
			window:  nightlyWindow + "  backupTargets: [offsite]\n",
			targets: []longhorn.BackupTarget{backupTarget("default", time.Time{}, time.Time{}, false), backupTarget("offsite", time.Time{}, time.Time{}, false)},
			now:     opened,
			want:    SyncPlan{Due: []string{"offsite"}, Recheck: opened.Add(30 * second)},
		},
		"a target that synced after the request and is available is done": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened, opened.Add(2*second), true)},
			now:     opened.Add(time.Minute),
			want:    SyncPlan{},
		},
		"a sync in the same second as the request counts, as Longhorn counts it": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened, opened, true)},
			now:     opened.Add(time.Minute),
			want:    SyncPlan{},
		},
		"a target not synced yet is asked again 30 s after the first request": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened, nov(20, 0, 55), true)},
			now:     opened.Add(10 * second),
			want:    SyncPlan{Recheck: opened.Add(30 * second)},
		},
		"and then it is due": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened, nov(20, 0, 55), true)},
			now:     opened.Add(30 * second),
			want:    SyncPlan{Due: []string{"default"}, Recheck: opened.Add(60 * second)},
		},
		"a sync that left the target unavailable is asked again, the backoff doubling": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened.Add(2*time.Minute), opened.Add(2*time.Minute+second), false)},
			now:     opened.Add(3 * time.Minute),
			want:    SyncPlan{Recheck: opened.Add(4 * time.Minute)},
		},
		"the backoff stops growing at 5 minutes": {
			window:  nightlyWindow,
			targets: []longhorn.BackupTarget{backupTarget("default", opened.Add(time.Hour), opened.Add(time.Hour+second), false)},
			now:     opened.Add(time.Hour + time.Minute),
			want:    SyncPlan{Recheck: opened.Add(time.Hour + 5*time.Minute)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			window := compileWindowConfig(t, tc.window)
			if diff := cmp.Diff(tc.want, window.SyncsDue(tc.targets, opened, tc.now)); diff != "" {
				t.Errorf("SyncsDue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWindowOpeningOverdue(t *testing.T) {
	cases := map[string]struct {
		now, lastOpened time.Time
		override        *Override
		want            bool
	}{
		"opened at its opening: not overdue":                     {now: nov(21, 2, 0), lastOpened: nov(21, 0, 55)},
		"still closed within the grace: not yet":                 {now: nov(21, 1, 4), lastOpened: nov(20, 0, 55)},
		"still closed past the grace: overdue":                   {now: nov(21, 1, 5), lastOpened: nov(20, 0, 55), want: true},
		"a missed opening stays overdue after its window ended":  {now: nov(21, 12, 0), lastOpened: nov(20, 0, 55), want: true},
		"a fresh install is overdue only inside a missed window": {now: nov(21, 2, 0), want: true},
		"a fresh install outside the window is not overdue":      {now: nov(21, 12, 0)},
		"a close override is a choice":                           {now: nov(21, 2, 0), lastOpened: nov(20, 0, 55), override: &Override{Until: nov(21, 3, 0)}},
		"an expired close override is not":                       {now: nov(21, 3, 0), lastOpened: nov(20, 0, 55), override: &Override{Until: nov(21, 3, 0)}, want: true},
		"a release is a choice":                                  {now: nov(21, 2, 0), lastOpened: nov(20, 0, 55), override: &Override{Released: true}},
	}
	window := compileWindowConfig(t, nightlyWindow)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := window.OpeningOverdue(tc.now, tc.lastOpened, tc.override); got != tc.want {
				t.Errorf("OpeningOverdue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOverrideReadAndWrite(t *testing.T) {
	cases := map[string]struct {
		override *Override
		data     map[string]string
	}{
		"none":    {},
		"open":    {override: &Override{Open: true, Until: nov(21, 14, 0), Reason: "restore"}, data: map[string]string{"override": "open", "until": "2026-11-21T14:00:00Z", "reason": "restore"}},
		"close":   {override: &Override{Until: nov(21, 14, 0)}, data: map[string]string{"override": "close", "until": "2026-11-21T14:00:00Z", "reason": ""}},
		"release": {override: &Override{Released: true, Reason: "uninstall"}, data: map[string]string{"override": "release", "reason": "uninstall"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data := OverrideData(tc.override)
			if diff := cmp.Diff(tc.data, data); diff != "" {
				t.Errorf("OverrideData (-want +got):\n%s", diff)
			}
			read, err := ParseOverride(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.override, read); diff != "" {
				t.Errorf("ParseOverride(OverrideData) (-want +got):\n%s", diff)
			}
		})
	}
	broken := map[string]map[string]string{
		`override "toggle": must be open, close or release`:                                                        {"override": "toggle"},
		`override until "soon": parsing time "soon" as "2006-01-02T15:04:05Z07:00": cannot parse "soon" as "2006"`: {"override": "open", "until": "soon"},
	}
	for want, data := range broken {
		override, err := ParseOverride(data)
		if override != nil || err == nil || err.Error() != want {
			t.Errorf("ParseOverride(%v) = %v, %v; want nil and %q", data, override, err, want)
		}
	}
}

func TestWindowFencedAndAPIServerEndpoints(t *testing.T) {
	managed := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "backupguard-egress-x", Labels: map[string]string{ManagedByLabel: ManagedByValue}}}
	other := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}
	if WindowFenced([]networkingv1.NetworkPolicy{other}) || !WindowFenced([]networkingv1.NetworkPolicy{other, managed}) {
		t.Error("fenced means: a NetworkPolicy backupguard manages is there")
	}
	slice := discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](6443)}, {}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.168.1.10", "not-an-ip"}}}}
	service := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Port: 443}}}}
	got, err := APIServerEndpoints([]discoveryv1.EndpointSlice{slice}, service)
	want := []APIServerEndpoint{{Address: netip.MustParseAddr("192.168.1.10"), Port: 6443}, {Address: netip.MustParseAddr("10.96.0.1"), Port: 443}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" || err != nil {
		t.Errorf("APIServerEndpoints = %v (-want +got):\n%s", err, diff)
	}
	_, err = APIServerEndpoints(nil, nil)
	if want := errors.New("no kube-apiserver address found in default/kubernetes: refusing to fence Longhorn off from it"); err == nil || err.Error() != want.Error() {
		t.Errorf("without any address: %v, want %v", err, want)
	}
}
