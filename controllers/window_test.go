package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup/lookuptest"
	"github.com/backupguard/backupguard/policies"
)

const (
	testLonghorn = "longhorn-system"
	testOwn      = "backupguard-system"
)

// staticPods is a recurring-job pod lister over a fixed list.
type staticPods []policies.RecurringJobPod

func (p *staticPods) In(string) ([]policies.RecurringJobPod, error) { return *p, nil }

// windowFixture is a WindowController on a fake client and a fake clock, with a nightly window
// (00:55 to 04:00 UTC, extended up to 05:00), one BackupTarget and the kube-apiserver's addresses.
type windowFixture struct {
	t          *testing.T
	kube       client.Client
	clock      *clocktesting.FakeClock
	events     *events.FakeRecorder
	pods       staticPods
	controller *WindowController
}

func newWindowFixture(t *testing.T, now time.Time, objects ...client.Object) *windowFixture {
	t.Helper()
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nwindow:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  maxExtension: 1h\n"), "window.yaml")
	if err != nil {
		t.Fatal(err)
	}
	apiserver := []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Port: 443}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.168.1.10"}}}, Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](6443)}}},
		&longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "default"}, Spec: longhorn.BackupTargetSpec{PollInterval: "0s"}},
	}
	f := &windowFixture{t: t, clock: clocktesting.NewFakeClock(now), events: events.NewFakeRecorder(100)}
	// The deduced type converter: client-go's fails every NetworkPolicy apply in the fake client
	// ("expected objects with types from the same schema"); the e2e suite applies to a real API server.
	f.kube = lookuptest.FakeClientBuilder(t).WithTypeConverters(managedfields.NewDeducedTypeConverter()).WithObjects(append(apiserver, objects...)...).
		WithStatusSubresource(&longhorn.BackupTarget{}, &longhorn.Backup{}).Build()
	f.controller = &WindowController{Client: f.kube, Config: func() *policies.Config { return config }, Clock: f.clock, Namespace: testOwn,
		Recorder: f.events, Log: testr.New(t), Resync: time.Hour, Pods: &f.pods}
	return f
}

// reconcile checks once at the fake clock's time and returns how soon the controller would look again.
func (f *windowFixture) reconcile() time.Duration {
	f.t.Helper()
	return f.controller.Reconcile(context.Background())
}

func (f *windowFixture) policyNames() []string {
	f.t.Helper()
	list := &networkingv1.NetworkPolicyList{}
	if err := f.kube.List(context.Background(), list, client.InNamespace(testLonghorn)); err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, policy := range list.Items {
		names = append(names, policy.Name)
	}
	slices.Sort(names)
	return names
}

func (f *windowFixture) state() *corev1.ConfigMap {
	f.t.Helper()
	state := &corev1.ConfigMap{}
	if err := f.kube.Get(context.Background(), client.ObjectKey{Namespace: testOwn, Name: WindowConfigMap}, state); err != nil {
		f.t.Fatal(err)
	}
	return state
}

func (f *windowFixture) target() *longhorn.BackupTarget {
	f.t.Helper()
	target := &longhorn.BackupTarget{}
	if err := f.kube.Get(context.Background(), client.ObjectKey{Namespace: testLonghorn, Name: "default"}, target); err != nil {
		f.t.Fatal(err)
	}
	return target
}

// drainEvents returns the Events recorded since the last call.
func (f *windowFixture) drainEvents() []string {
	var got []string
	for {
		select {
		case event := <-f.events.Events:
			got = append(got, event)
		default:
			return got
		}
	}
}

var fenced = []string{"backupguard-egress-instance-manager", "backupguard-egress-longhorn-manager"}

func utc(day, hour, minute, second int) time.Time {
	return time.Date(2026, time.November, day, hour, minute, second, 0, time.UTC)
}

func TestWindowControllerFencesAndPublishes(t *testing.T) {
	f := newWindowFixture(t, utc(21, 12, 0, 0))
	if wait := f.reconcile(); wait != time.Hour {
		t.Errorf("wait = %s, want the resync (the next opening is further)", wait)
	}
	if diff := cmp.Diff(fenced, f.policyNames()); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	want := map[string]string{
		ClosedAtAnnotation:      "2026-11-21T12:00:00Z",
		StateAnnotation:         "closed",
		ReasonAnnotation:        "outside the window; it next opens at 2026-11-22 00:55 UTC",
		NextTransitionAnnoation: "2026-11-22T00:55:00Z",
	}
	if diff := cmp.Diff(want, f.state().Annotations); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Normal WindowClosed outside the window; it next opens at 2026-11-22 00:55 UTC"}, f.drainEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A second check changes nothing and records nothing.
	before := f.state().ResourceVersion
	f.reconcile()
	if f.state().ResourceVersion != before || len(f.drainEvents()) != 0 {
		t.Error("an unchanged window was published again")
	}
}

func TestWindowControllerRefusesToFenceWithoutTheAPIServer(t *testing.T) {
	f := newWindowFixture(t, utc(21, 12, 0, 0))
	for _, object := range []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"}},
	} {
		if err := f.kube.Delete(context.Background(), object); err != nil {
			t.Fatal(err)
		}
	}
	if wait := f.reconcile(); wait != retryAfterError {
		t.Errorf("wait = %s, want a retry after %s", wait, retryAfterError)
	}
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("fenced without knowing where the kube-apiserver is: %v", names)
	}
}

func TestWindowControllerRetriesSyncUntilReported(t *testing.T) {
	opening := utc(22, 0, 55, 0)
	f := newWindowFixture(t, opening)
	if wait := f.reconcile(); wait != 30*time.Second {
		t.Errorf("wait = %s, want the first sync retry in 30s", wait)
	}
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("policies while open: %v", names)
	}
	if got := f.target().Spec.SyncRequestedAt.Time; !got.Equal(opening) {
		t.Errorf("syncRequestedAt = %s, want the opening", got)
	}
	if got := f.state().Annotations[OpenedAtAnnotation]; got != "2026-11-22T00:55:00Z" {
		t.Errorf("opened-at = %q", got)
	}
	// Longhorn has not synced 30 s later: asked again.
	f.clock.SetTime(opening.Add(30 * time.Second))
	f.reconcile()
	if got := f.target().Spec.SyncRequestedAt.Time; !got.Equal(opening.Add(30 * time.Second)) {
		t.Errorf("syncRequestedAt = %s, want a second request", got)
	}
	// Longhorn syncs and reports the target available: no more requests.
	target := f.target()
	target.Status.LastSyncedAt = metav1.NewTime(opening.Add(31 * time.Second))
	target.Status.Available = true
	if err := f.kube.Status().Update(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	f.clock.SetTime(opening.Add(10 * time.Minute))
	if wait := f.reconcile(); wait != time.Hour {
		t.Errorf("wait = %s, want the resync once synced", wait)
	}
	if got, want := testutil.ToFloat64(backupTargetLastSynced.WithLabelValues("default")), float64(opening.Add(31*time.Second).Unix()); got != want {
		t.Errorf("backupguard_backup_target_last_synced_timestamp_seconds = %v, want %v", got, want)
	}
	if got := f.target().Spec.SyncRequestedAt.Time; !got.Equal(opening.Add(30 * time.Second)) {
		t.Errorf("syncRequestedAt = %s, want no new request once synced", got)
	}
	if diff := cmp.Diff([]string{
		"Normal WindowOpen inside the window that opened at 2026-11-22 00:55 UTC",
		"Normal BackupTargetAvailable BackupTarget default is available: backups can run",
	}, f.drainEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestWindowControllerOpensOnDemand(t *testing.T) {
	f := newWindowFixture(t, utc(21, 12, 0, 0))
	f.reconcile()
	f.drainEvents()
	f.clock.SetTime(utc(21, 12, 10, 0))
	backup := &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "manual", CreationTimestamp: metav1.NewTime(utc(21, 12, 9, 0))}}
	if err := f.kube.Create(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("policies while open on demand: %v", names)
	}
	if got := f.target().Spec.SyncRequestedAt.Time; !got.Equal(utc(21, 12, 10, 0)) {
		t.Errorf("syncRequestedAt = %s, want a request at the on-demand opening", got)
	}
	reason := "opened on demand at 2026-11-21 12:10 UTC while the object store is busy, until 2026-11-21 13:10 UTC at the latest: 1 backup"
	if diff := cmp.Diff([]string{"Normal WindowOnDemand " + reason, "Normal WindowOpenedOnDemand for Backup manual: " + reason}, f.drainEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A recurring-job pod still working keeps it open after the Backup completed.
	backup.Status.State = "Completed"
	if err := f.kube.Status().Update(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	f.pods = staticPods{{Name: "nightly-1", RecurringJob: "nightly", Phase: corev1.PodRunning}}
	f.clock.SetTime(utc(21, 12, 20, 0))
	f.reconcile()
	if got := f.state().Annotations[ReasonAnnotation]; got != "opened on demand at 2026-11-21 12:10 UTC while the object store is busy, until 2026-11-21 13:10 UTC at the latest: 1 recurring-job pod" {
		t.Errorf("reason = %q", got)
	}
	// Idle: closed, and the completed Backup does not open it again.
	f.pods = nil
	f.reconcile()
	f.reconcile()
	if diff := cmp.Diff(fenced, f.policyNames()); diff != "" {
		t.Errorf("policies once idle (-want +got):\n%s", diff)
	}
	if got := f.state().Annotations[StateAnnotation]; got != "closed" {
		t.Errorf("state = %q, want closed", got)
	}
}

func TestWindowControllerRelease(t *testing.T) {
	f := newWindowFixture(t, utc(21, 12, 0, 0))
	f.reconcile()
	state := f.state()
	state.Data = policies.OverrideData(&policies.Override{Released: true, Reason: "uninstall"})
	if err := f.kube.Update(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("policies after a release: %v", names)
	}
	f.clock.SetTime(utc(22, 12, 0, 0))
	// A release has no end: only the retried sync request (Longhorn is not running here) wakes it.
	if wait := f.reconcile(); wait != 5*time.Minute {
		t.Errorf("wait = %s, want the longest sync retry", wait)
	}
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("policies a day after a release: %v", names)
	}
	if got := f.state().Annotations[StateAnnotation]; got != "released" {
		t.Errorf("state = %q, want released", got)
	}
	if testutil.ToFloat64(windowOpeningOverdue) != 0 {
		t.Error("a release is reported as an overdue opening")
	}
}

func TestWindowControllerDeadMansSwitch(t *testing.T) {
	// The last recorded opening is two days old; at noon the night's opening was missed.
	f := newWindowFixture(t, utc(21, 12, 0, 0), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testOwn, Name: WindowConfigMap,
		Annotations: map[string]string{StateAnnotation: "closed", OpenedAtAnnotation: "2026-11-20T00:55:00Z"}}})
	f.reconcile()
	if got := testutil.ToFloat64(windowOpeningOverdue); got != 1 {
		t.Errorf("overdue = %v, want 1", got)
	}
	if got := testutil.ToFloat64(windowLastOpened); got != float64(utc(20, 0, 55, 0).Unix()) {
		t.Errorf("last opened = %v", got)
	}
	// The next opening happens: no longer overdue.
	f.clock.SetTime(utc(22, 0, 55, 0))
	f.reconcile()
	if got := testutil.ToFloat64(windowOpeningOverdue); got != 0 {
		t.Errorf("overdue = %v after opening, want 0", got)
	}
	if got := testutil.ToFloat64(windowLastOpened); got != float64(utc(22, 0, 55, 0).Unix()) {
		t.Errorf("last opened = %v, want the opening", got)
	}
}

func TestWindowControllerRecordsAnOpeningMissingFromAnOpenWindow(t *testing.T) {
	// Published "open" by a version that did not record openings, at 02:00 inside the window.
	f := newWindowFixture(t, utc(21, 2, 0, 0), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testOwn, Name: WindowConfigMap,
		Labels: map[string]string{policies.ManagedByLabel: policies.ManagedByValue}, Annotations: map[string]string{StateAnnotation: "open"}}})
	f.reconcile()
	if got := f.state().Annotations[OpenedAtAnnotation]; got != "2026-11-21T02:00:00Z" {
		t.Errorf("opened-at = %q, want now", got)
	}
	if got := testutil.ToFloat64(windowOpeningOverdue); got != 0 {
		t.Errorf("overdue = %v for an open window, want 0", got)
	}
}

func TestWindowControllerIgnoresABrokenOverride(t *testing.T) {
	// Inside the window, a broken override neither closes nor keeps anything: the schedule decides.
	f := newWindowFixture(t, utc(21, 2, 0, 0), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testOwn, Name: WindowConfigMap},
		Data: map[string]string{policies.OverrideKey: "close", policies.OverrideUntilKey: "tomorrow"}})
	f.reconcile()
	if names := f.policyNames(); len(names) != 0 {
		t.Errorf("policies inside the window with a broken close override: %v", names)
	}
	if got := f.state().Annotations[StateAnnotation]; got != "open" {
		t.Errorf("state = %q, want open", got)
	}
}

func TestWindowControllerDoesNotReopenForABackupLeftWaitingAtTheClose(t *testing.T) {
	f := newWindowFixture(t, utc(22, 3, 0, 0), &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: testLonghorn, Name: "stuck",
		CreationTimestamp: metav1.NewTime(utc(22, 3, 30, 0))}, Status: longhorn.BackupStatus{State: "Pending"}})
	f.reconcile()
	f.clock.SetTime(utc(22, 4, 30, 0))
	f.reconcile()
	if got := f.state().Annotations[StateAnnotation]; got != "extended" {
		t.Errorf("state at 04:30 = %q, want extended", got)
	}
	// The extension is used up at 05:00: closed, and the Backup asked for while open does not reopen it.
	f.clock.SetTime(utc(22, 5, 0, 0))
	f.reconcile()
	f.clock.SetTime(utc(22, 5, 1, 0))
	f.reconcile()
	if got := f.state().Annotations[StateAnnotation]; got != "closed" {
		t.Errorf("state after the extension = %q, want closed", got)
	}
	if diff := cmp.Diff(fenced, f.policyNames()); diff != "" {
		t.Errorf("policies after the extension (-want +got):\n%s", diff)
	}
}

// TestWindowGaugesAreExportedOnlyByTheLeader: before the window controller has checked the window, the
// gauges are described but not collected, so a follower's /metrics has no window state to contradict
// the leader's; after, they are collected whole.
func TestWindowGaugesAreExportedOnlyByTheLeader(t *testing.T) {
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_window_open", Help: "h"})
	gauges := &leaderOnly{collectors: []prometheus.Collector{open}}
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(gauges)
	if err := testutil.GatherAndCompare(registry, strings.NewReader("")); err != nil {
		t.Errorf("before leading: %v", err)
	}
	gauges.lead()
	want := "# HELP test_window_open h\n# TYPE test_window_open gauge\ntest_window_open 0\n"
	if err := testutil.GatherAndCompare(registry, strings.NewReader(want)); err != nil {
		t.Errorf("after leading: %v", err)
	}
}
