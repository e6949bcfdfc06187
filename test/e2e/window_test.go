package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
)

// windowWorld is a Longhorn namespace and a backupguard namespace of their own, so the window
// controllers of a test never meet another's objects.
type windowWorld struct {
	t                    *testing.T
	longhorn, own        string
	configMu             sync.Mutex // the controller reads config while a test may replace it
	config               *policies.Config
	leaseDuration        time.Duration
	leaderElectionWanted bool
}

func newWindowWorld(t *testing.T, opens string) *windowWorld {
	w := &windowWorld{t: t, longhorn: newNamespace(t, nil), own: newNamespace(t, nil)}
	text := fmt.Sprintf("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespace: %s\nwindow:\n  opens: %q\n  duration: 3h5m\n  maxExtension: 1h\n", w.longhorn, opens)
	config, err := policies.ParseConfig([]byte(text), "window.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w.config = config
	w.grantShippedRoles()
	target := &longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: w.longhorn}, Spec: longhorn.BackupTargetSpec{PollInterval: "0s"}}
	if err := kube.Create(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	return w
}

// grantShippedRoles gives the ServiceAccount the shipped Roles in this world's namespaces, as an
// operator with another Longhorn namespace would: the longhorn-system Role in the world's Longhorn
// namespace, the backupguard-system Role in its own.
func (w *windowWorld) grantShippedRoles() {
	w.t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "manifests", "base", "rbac.yaml"))
	if err != nil {
		w.t.Fatal(err)
	}
	moved := map[string]string{"longhorn-system": w.longhorn, "backupguard-system": w.own}
	var documents []string
	for document := range strings.SplitSeq(string(data), "\n---\n") {
		if !strings.Contains(document, "kind: Role\n") && !strings.Contains(document, "kind: RoleBinding\n") {
			continue
		}
		for from, to := range moved {
			if strings.Contains(document, "  namespace: "+from+"\n  labels:") {
				// Only the object's own namespace moves; the subject stays backupguard-system's ServiceAccount.
				documents = append(documents, strings.Replace(document, "  namespace: "+from+"\n  labels:", "  namespace: "+to+"\n  labels:", 1))
			}
		}
	}
	if len(documents) != 4 {
		w.t.Fatalf("want the two Roles and two RoleBindings to move, found %d", len(documents))
	}
	if result := testCluster.RunKubectl(strings.Join(documents, "\n---\n"), "apply", "-f", "-"); result.ExitCode != 0 {
		w.t.Fatalf("granting the shipped Roles: %s", result.Stderr)
	}
}

// start runs a WindowController in a manager of its own, as serve does, on the given clock; the
// returned function stops it.
func (w *windowWorld) start(clock *clocktesting.FakeClock, leaderElection bool) func() {
	w.t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	lease, renew := 2*time.Second, 1500*time.Millisecond
	retry := 200 * time.Millisecond
	// As the shipped ServiceAccount, so the RBAC check sees what the window needs.
	config := rest.CopyConfig(testCluster.Config)
	config.Impersonate = rest.ImpersonationConfig{UserName: cluster.ServiceAccountUser, Groups: cluster.ServiceAccountGroups}
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		Cache:                         lookup.CacheOptions(w.longhorn, w.own),
		LeaderElection:                leaderElection,
		LeaderElectionID:              "backupguard-window-e2e",
		LeaderElectionNamespace:       w.own,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &lease,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	controller := &controllers.WindowController{
		Client: mgr.GetClient(), Config: w.currentConfig, Clock: clock, Namespace: w.own,
		Recorder: mgr.GetEventRecorder("backupguard"), Log: testr.New(w.t), Resync: time.Hour,
	}
	if err := controller.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	w.t.Cleanup(stop)
	return sync.OnceFunc(stop)
}

// setTime moves the fake clock once the controller sleeps on it: moved earlier, the controller would
// measure its next sleep from the new time and oversleep.
func setTime(t *testing.T, clock *clocktesting.FakeClock, to time.Time) {
	t.Helper()
	eventually(t, "the controller to wait on the clock", func() (bool, string) { return clock.HasWaiters(), "no waiter" })
	clock.SetTime(to)
}

func (w *windowWorld) policies() []networkingv1.NetworkPolicy {
	list := &networkingv1.NetworkPolicyList{}
	if err := kube.List(context.Background(), list, client.InNamespace(w.longhorn)); err != nil {
		w.t.Fatal(err)
	}
	return list.Items
}

func (w *windowWorld) policyNames() []string {
	var names []string
	for _, policy := range w.policies() {
		names = append(names, policy.Name)
	}
	slices.Sort(names)
	return names
}

var fencedNames = []string{"backupguard-egress-instance-manager", "backupguard-egress-longhorn-manager"}

func (w *windowWorld) eventuallyFenced(what string, fenced bool) {
	w.t.Helper()
	var want []string
	if fenced {
		want = fencedNames
	}
	eventually(w.t, what, func() (bool, string) {
		got := w.policyNames()
		return cmp.Equal(want, got), fmt.Sprintf("policies %v", got)
	})
}

func (w *windowWorld) state() map[string]string {
	state := &corev1.ConfigMap{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: w.own, Name: controllers.WindowConfigMap}, state); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		w.t.Fatal(err)
	}
	return state.Annotations
}

func (w *windowWorld) eventuallyState(state policies.WindowState) {
	w.t.Helper()
	eventually(w.t, "the published state to be "+string(state), func() (bool, string) {
		got := w.state()[controllers.StateAnnotation]
		return got == string(state), "state " + got
	})
}

func (w *windowWorld) eventReasons() []string {
	list := &eventsv1.EventList{}
	if err := kube.List(context.Background(), list, client.InNamespace(w.own)); err != nil {
		w.t.Fatal(err)
	}
	var reasons []string
	for _, event := range list.Items {
		reasons = append(reasons, event.Reason)
	}
	slices.Sort(reasons)
	return slices.Compact(reasons)
}

// expectedEgress is what a closed window must still allow: every pod, DNS, and each address and port
// the kube-apiserver is reached at, read here from the cluster independently of the controller.
func expectedEgress(t *testing.T) []networkingv1.NetworkPolicyEgressRule {
	t.Helper()
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	dns := intstr.FromInt32(53)
	rules := []networkingv1.NetworkPolicyEgressRule{
		{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}},
		{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
	}
	type endpoint struct {
		address string
		port    int32
	}
	var endpoints []endpoint
	slicesList := &discoveryv1.EndpointSliceList{}
	if err := kube.List(context.Background(), slicesList, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	for _, slice := range slicesList.Items {
		for _, port := range slice.Ports {
			for _, ep := range slice.Endpoints {
				for _, address := range ep.Addresses {
					endpoints = append(endpoints, endpoint{address, *port.Port})
				}
			}
		}
	}
	service := &corev1.Service{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "kubernetes"}, service); err != nil {
		t.Fatal(err)
	}
	endpoints = append(endpoints, endpoint{service.Spec.ClusterIP, service.Spec.Ports[0].Port})
	if len(endpoints) < 2 {
		t.Fatalf("the test apiserver publishes no endpoint slice for default/kubernetes: %v", endpoints)
	}
	slices.SortFunc(endpoints, func(a, b endpoint) int {
		return netip.MustParseAddr(a.address).Compare(netip.MustParseAddr(b.address))
	})
	for _, e := range endpoints {
		port := intstr.FromInt32(e.port)
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: e.address + "/32"}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		})
	}
	return rules
}

// TestWindowFollowsTheClock walks one window with a fake clock against real objects: closed, open,
// extended while a backup runs, closed; a deleted or edited policy is restored; a restart mid-window
// converges at once.
func TestWindowFollowsTheClock(t *testing.T) {
	ctx := context.Background()
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	stop := w.start(clock, false)

	// Closed: both policies, allowing only pods, DNS and the kube-apiserver.
	w.eventuallyFenced("the fences to go up", true)
	w.eventuallyState(policies.WindowClosed)
	for _, policy := range w.policies() {
		if diff := cmp.Diff(expectedEgress(t), policy.Spec.Egress); diff != "" {
			t.Errorf("%s egress (-want +got):\n%s", policy.Name, diff)
		}
		if diff := cmp.Diff(map[string]string{"app.kubernetes.io/managed-by": "backupguard", "backupguard.io/window-target": strings.TrimPrefix(policy.Name, "backupguard-egress-")}, policy.Labels); diff != "" {
			t.Errorf("%s labels (-want +got):\n%s", policy.Name, diff)
		}
	}
	manager := &networkingv1.NetworkPolicy{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: w.longhorn, Name: "backupguard-egress-longhorn-manager"}, manager); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(metav1.LabelSelector{MatchLabels: map[string]string{"app": "longhorn-manager"}}, manager.Spec.PodSelector); diff != "" {
		t.Errorf("pod selector (-want +got):\n%s", diff)
	}

	// Someone deletes a policy, or opens it up: restored.
	if err := kube.Delete(ctx, manager); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the deleted policy to be restored", true)
	if err := kube.Get(ctx, client.ObjectKey{Namespace: w.longhorn, Name: "backupguard-egress-longhorn-manager"}, manager); err != nil {
		t.Fatal(err)
	}
	manager.Spec.Egress = append(manager.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
	if err := kube.Update(ctx, manager); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited policy to be restored", func() (bool, string) {
		restored := &networkingv1.NetworkPolicy{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(manager), restored); err != nil {
			return false, err.Error()
		}
		return cmp.Equal(expectedEgress(t), restored.Spec.Egress), cmp.Diff(expectedEgress(t), restored.Spec.Egress)
	})

	// 00:55: open, and the BackupTarget is asked to sync.
	opening := time.Date(2026, 11, 22, 0, 55, 0, 0, time.UTC)
	setTime(t, clock, opening)
	w.eventuallyFenced("the fences to come down", false)
	w.eventuallyState(policies.WindowOpen)
	target := &longhorn.BackupTarget{}
	eventually(t, "a BackupTarget sync to be requested", func() (bool, string) {
		if err := kube.Get(ctx, client.ObjectKey{Namespace: w.longhorn, Name: "default"}, target); err != nil {
			return false, err.Error()
		}
		return target.Spec.SyncRequestedAt.Time.Equal(opening), target.Spec.SyncRequestedAt.String()
	})
	target.Status.Available = true
	if err := kube.Status().Update(ctx, target); err != nil {
		t.Fatal(err)
	}

	// 04:00 with a backup still running: extended; once it completes: closed.
	backup := &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: "backup-1", Namespace: w.longhorn}}
	if err := kube.Create(ctx, backup); err != nil {
		t.Fatal(err)
	}
	backup.Status.State = "InProgress"
	if err := kube.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	setTime(t, clock, time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC))
	w.eventuallyState(policies.WindowExtended)
	if names := w.policyNames(); len(names) != 0 {
		t.Errorf("policies while extended: %v", names)
	}
	backup.Status.State = "Completed"
	if err := kube.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the fences to go up once the backup completed", true)
	w.eventuallyState(policies.WindowClosed)

	eventually(t, "the transitions and the target's availability to be recorded as Events", func() (bool, string) {
		got := w.eventReasons()
		want := []string{"BackupTargetAvailable", "WindowClosed", "WindowExtended", "WindowOpen"}
		return cmp.Equal(want, got), cmp.Diff(want, got)
	})

	// A restart in the middle of the next window: the new controller opens it at once and syncs.
	stop()
	midWindow := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	w.start(clocktesting.NewFakeClock(midWindow), false)
	w.eventuallyFenced("the fences to come down after a restart mid-window", false)
	w.eventuallyState(policies.WindowOpen)
	eventually(t, "a sync for the new opening", func() (bool, string) {
		if err := kube.Get(ctx, client.ObjectKey{Namespace: w.longhorn, Name: "default"}, target); err != nil {
			return false, err.Error()
		}
		return target.Spec.SyncRequestedAt.Time.Equal(midWindow), target.Spec.SyncRequestedAt.String()
	})
}

// TestWindowLeaderElection runs two controllers on one lease: when the leader stops, the other takes
// over and keeps the window right.
func TestWindowLeaderElection(t *testing.T) {
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	stopFirst := w.start(clock, true)
	w.eventuallyFenced("the first controller to lead and fence", true)
	// A clock of its own, so that waiting for its sleep is not fooled by the stopped leader's.
	second := clocktesting.NewFakeClock(clock.Now())
	w.start(second, true)
	stopFirst()
	// Only a leader restores a deleted policy.
	if err := kube.Delete(context.Background(), &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.longhorn, Name: fencedNames[0]}}); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the second controller to take over and restore the policy", true)
	setTime(t, second, time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC))
	w.eventuallyFenced("the new leader to open the window", false)
}

// TestWindowOverride opens the window by hand with the CLI outside its schedule, and lets the override
// expire. The CLI stamps the override with the wall clock, so the fake clock starts there.
func TestWindowOverride(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Minute)
	opensAt := now.Add(8 * time.Hour)
	w := newWindowWorld(t, fmt.Sprintf("%d %d * * *", opensAt.Minute(), opensAt.Hour()))
	clock := clocktesting.NewFakeClock(now)
	w.start(clock, false)
	w.eventuallyFenced("the fences to go up", true)

	command := exec.Command(binary, "window", "open", "--for", "2h", "--reason", "manual backup", "--namespace", w.own, "--kubeconfig", testCluster.Kubeconfig)
	out, err := command.CombinedOutput()
	if err != nil {
		t.Fatalf("backupguard window open: %v\n%s", err, out)
	}
	w.eventuallyFenced("the override to open the window", false)
	w.eventuallyState(policies.WindowOverridden)

	status := exec.Command(binary, "window", "status", "--namespace", w.own, "--kubeconfig", testCluster.Kubeconfig)
	statusOut, err := status.CombinedOutput()
	if err != nil {
		t.Fatalf("backupguard window status: %v\n%s", err, statusOut)
	}
	state := &corev1.ConfigMap{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: w.own, Name: controllers.WindowConfigMap}, state); err != nil {
		t.Fatal(err)
	}
	until, err := time.Parse(time.RFC3339, state.Data[policies.OverrideUntilKey])
	if err != nil {
		t.Fatalf("override until %q: %v", state.Data[policies.OverrideUntilKey], err)
	}
	wantStatus := "state:           overridden\n" +
		"reason:          opened by hand until " + until.Format("2006-01-02 15:04 UTC") + " (manual backup)\n" +
		"next transition: " + until.Format(time.RFC3339) + "\n" +
		"last opened:     " + now.Format(time.RFC3339) + "\n" +
		"override:        open until " + until.Format(time.RFC3339) + " (manual backup)\n"
	if diff := cmp.Diff(wantStatus, string(statusOut)); diff != "" {
		t.Errorf("window status (-want +got):\n%s", diff)
	}

	setTime(t, clock, now.Add(2*time.Hour+time.Minute))
	w.eventuallyFenced("the override to expire", true)
	w.eventuallyState(policies.WindowClosed)
}

// TestRecurringJobsOutsideTheWindowAreDenied gives the running serve a window and applies jobs.
func TestRecurringJobsOutsideTheWindowAreDenied(t *testing.T) {
	t.Cleanup(func() { writeConfig(t, baseConfig) })
	applied := reloadCount(t, "applied")
	writeConfig(t, baseConfig+"window:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n")
	eventually(t, "the config with a window to apply", func() (bool, string) {
		got := reloadCount(t, "applied")
		return got != applied, "applied=" + got
	})
	inside := recurringJobYAML(longhornNamespace, "in-window", "  task: backup\n  cron: \"0 2 * * *\"\n  retain: 7\n")
	result := testCluster.RunKubectl(inside, "apply", "--dry-run=server", "-f", "-")
	if result.ExitCode != 0 {
		t.Errorf("a backup inside the window was refused: %+v", result)
	}
	outside := recurringJobYAML(longhornNamespace, "at-noon", "  task: backup\n  cron: \"0 12 * * *\"\n  retain: 7\n")
	result = testCluster.RunKubectl(outside, "apply", "--dry-run=server", "-f", "-")
	next := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	if !next.After(time.Now()) {
		next = next.Add(24 * time.Hour)
	}
	want := fmt.Sprintf(`The RecurringJob "at-noon" is invalid: spec.cron: Invalid value: "0 12 * * *": runs at %s, outside the backup window (opens at "55 0 * * *" UTC for 3h5m0s, backups from 5m0s after opening): the backup target is unreachable then, so the backup would fail`,
		next.Format("2006-01-02 15:04 UTC"))
	if diff := cmp.Diff(cluster.KubectlResult{Stderr: detachedWarning + want + "\n", ExitCode: 1}, result); diff != "" {
		t.Errorf("kubectl (-want +got):\n%s", diff)
	}
}

// TestWindowBusyMeansBusy ends a window while a SystemBackup uploads and a recurring-job pod still runs
// (between two volumes it may have no Backup at all): extended, the reason naming both, until both end.
func TestWindowBusyMeansBusy(t *testing.T) {
	ctx := context.Background()
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))
	w.start(clock, false)
	w.eventuallyState(policies.WindowOpen)

	systemBackup := &longhorn.SystemBackup{ObjectMeta: metav1.ObjectMeta{Name: "system-1", Namespace: w.longhorn}}
	if err := kube.Create(ctx, systemBackup); err != nil {
		t.Fatal(err)
	}
	systemBackup.Status.State = "Uploading"
	if err := kube.Status().Update(ctx, systemBackup); err != nil {
		t.Fatal(err)
	}
	// No kubelet runs here: the pod stays Pending, which is not finished.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly-29123456-abcde", Namespace: w.longhorn, Labels: map[string]string{longhorn.RecurringJobPodLabel: "nightly"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nightly", Image: "longhornio/longhorn-manager:v1.12.1"}}},
	}
	if err := kube.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	setTime(t, clock, time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC))
	w.eventuallyState(policies.WindowExtended)
	if got, want := w.state()[controllers.ReasonAnnotation], "the window ended at 2026-11-22 04:00 UTC, but the object store is busy: 1 system backup, 1 recurring-job pod"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if names := w.policyNames(); len(names) != 0 {
		t.Errorf("policies while extended: %v", names)
	}

	systemBackup.Status.State = "Ready"
	if err := kube.Status().Update(ctx, systemBackup); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reason to name only the pod", func() (bool, string) {
		got := w.state()[controllers.ReasonAnnotation]
		return got == "the window ended at 2026-11-22 04:00 UTC, but the object store is busy: 1 recurring-job pod", got
	})
	pod.Status.Phase = corev1.PodSucceeded
	if err := kube.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the fences to go up once the pod finished", true)
	w.eventuallyState(policies.WindowClosed)
}

// TestWindowOpensOnDemand creates a Backup while the window is closed, as a manual backup or a CSI
// VolumeSnapshot does: the window opens, a sync is requested, an Event names the Backup, and the window
// closes once the Backup completed.
func TestWindowOpensOnDemand(t *testing.T) {
	ctx := context.Background()
	w := newWindowWorld(t, "55 0 * * *")
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := clocktesting.NewFakeClock(now)
	w.start(clock, false)
	w.eventuallyFenced("the fences to go up", true)

	backup := &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: "manual-1", Namespace: w.longhorn}}
	if err := kube.Create(ctx, backup); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the window to open on demand", false)
	w.eventuallyState(policies.WindowOnDemand)
	if got, want := w.state()[controllers.ReasonAnnotation], "opened on demand at 2026-11-21 12:00 UTC while the object store is busy, until 2026-11-21 13:00 UTC at the latest: 1 backup"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	eventually(t, "a BackupTarget sync to be requested", func() (bool, string) {
		target := &longhorn.BackupTarget{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: w.longhorn, Name: "default"}, target); err != nil {
			return false, err.Error()
		}
		return target.Spec.SyncRequestedAt.Time.Equal(now), target.Spec.SyncRequestedAt.String()
	})
	eventually(t, "an Event naming the Backup", func() (bool, string) {
		list := &eventsv1.EventList{}
		if err := kube.List(ctx, list, client.InNamespace(w.own)); err != nil {
			return false, err.Error()
		}
		for _, event := range list.Items {
			if event.Reason == "WindowOpenedOnDemand" {
				return event.Note == "for Backup manual-1: opened on demand at 2026-11-21 12:00 UTC while the object store is busy, until 2026-11-21 13:00 UTC at the latest: 1 backup", event.Note
			}
		}
		return false, "no WindowOpenedOnDemand Event"
	})

	backup.Status.State = "Completed"
	if err := kube.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	w.eventuallyFenced("the fences to go up once the Backup completed", true)
	w.eventuallyState(policies.WindowClosed)
}

// TestWindowRelease releases the window with the real binary, as before an uninstall: the policies are
// gone when the command returns, and the controller does not put them back, even past an opening and
// its end; resume puts them back.
func TestWindowRelease(t *testing.T) {
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	w.start(clock, false)
	w.eventuallyFenced("the fences to go up", true)

	out, err := exec.Command(binary, "window", "release", "--reason", "uninstall", "--namespace", w.own, "--longhorn-namespace", w.longhorn, "--kubeconfig", testCluster.Kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("backupguard window release: %v\n%s", err, out)
	}
	want := "window released: no NetworkPolicy of the window remains in " + w.longhorn + "; backupguard keeps Longhorn unfenced until `backupguard window resume`\n"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if names := w.policyNames(); len(names) != 0 {
		t.Errorf("policies right after release: %v", names)
	}
	w.eventuallyState(policies.WindowReleased)
	// Past the next opening and its end: the controller decided at that instant, and fenced nothing.
	for _, at := range []time.Time{time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} {
		setTime(t, clock, at)
		eventually(t, "the controller to decide at "+at.Format(time.RFC3339), func() (bool, string) { return clock.HasWaiters(), "still deciding" })
		if names := w.policyNames(); len(names) != 0 {
			t.Fatalf("the controller re-fenced a released window at %s: %v", at.Format(time.RFC3339), names)
		}
		if got := w.state()[controllers.StateAnnotation]; got != string(policies.WindowReleased) {
			t.Errorf("state at %s = %q, want released", at.Format(time.RFC3339), got)
		}
	}

	out, err = exec.Command(binary, "window", "resume", "--namespace", w.own, "--kubeconfig", testCluster.Kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("backupguard window resume: %v\n%s", err, out)
	}
	w.eventuallyFenced("resume to put the fences back", true)
	w.eventuallyState(policies.WindowClosed)
}

// TestWindowReleaseWhileBackupguardIsDown releases a fenced window with no controller running, as when
// backupguard is broken: the command removes the policies itself, and a controller started afterwards
// honours the release.
func TestWindowReleaseWhileBackupguardIsDown(t *testing.T) {
	w := newWindowWorld(t, "55 0 * * *")
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	stop := w.start(clock, false)
	w.eventuallyFenced("the fences to go up", true)
	stop()

	out, err := exec.Command(binary, "window", "release", "--namespace", w.own, "--longhorn-namespace", w.longhorn, "--kubeconfig", testCluster.Kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("backupguard window release: %v\n%s", err, out)
	}
	if names := w.policyNames(); len(names) != 0 {
		t.Errorf("policies after a release with backupguard down: %v", names)
	}
	restarted := clocktesting.NewFakeClock(clock.Now())
	w.start(restarted, false)
	w.eventuallyState(policies.WindowReleased)
	eventually(t, "the restarted controller to have decided", func() (bool, string) { return restarted.HasWaiters(), "still deciding" })
	if names := w.policyNames(); len(names) != 0 {
		t.Errorf("the restarted controller re-fenced a released window: %v", names)
	}
}
