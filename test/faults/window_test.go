package faults

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
)

// policy is what the window decides of a NetworkPolicy: its labels and its spec.
type policy struct {
	Labels map[string]string
	Spec   networkingv1.NetworkPolicySpec
}

func windowPolicies(t *testing.T, namespace string) map[string]policy {
	t.Helper()
	list := &networkingv1.NetworkPolicyList{}
	if err := kube.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	set := map[string]policy{}
	for _, item := range list.Items {
		set[item.Name] = policy{Labels: item.Labels, Spec: item.Spec}
	}
	return set
}

func windowAnnotations(t *testing.T, namespace string) map[string]string {
	t.Helper()
	state := &corev1.ConfigMap{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: controllers.WindowConfigMap}, state); err != nil {
		return nil
	}
	return state.Annotations
}

func freePort(t *testing.T) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

// runWindowCommand runs the real `backupguard window ...` against the test's namespace.
func runWindowCommand(t *testing.T, own string, args ...string) {
	t.Helper()
	args = append(append([]string{"window"}, args...), "--namespace", own, "--kubeconfig", testCluster.Kubeconfig)
	if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
		t.Fatalf("backupguard %v: %v\n%s", args, err, out)
	}
}

// TestLeaderDiesMidWindowTransition stops the leader between its first and second NetworkPolicy write of
// a transition (its API connection holds the second write, so the moment is exact, not raced), by
// SIGKILL (the Lease must expire) and by SIGTERM (the Lease is released), and checks that the other
// replica takes the Lease and puts the window exactly where a calm run puts it: the same policies,
// whole, and the ConfigMap's state, whole.
func TestLeaderDiesMidWindowTransition(t *testing.T) {
	// SIGKILL: client-go's LeaderElector takes an unreleased Lease only once it has seen no renewal for
	// leaseDuration (tryAcquireOrRenew: isLeaseValid), and tries every retryPeriod stretched by up to
	// JitterFactor 1.2 (acquire: wait.JitterUntilWithContext), i.e. every 1 to 2.2 retry periods; the new
	// leader's window controller checks at once when it starts. SIGTERM: serve drains for its
	// --shutdown-delay (drainDelay, still leading), then releases the Lease on its way out
	// (LeaderElectionReleaseOnCancel; client-go's release writes an empty holder), so the other replica
	// acquires it at its next try. The slack is for two shared cores.
	const slack = 5 * time.Second
	killBound := leaseDuration + 3*retryPeriod + slack
	termBound := drainDelay + 3*retryPeriod + slack
	cases := []struct {
		name    string
		opening bool
		stop    func(*cluster.Backupguard)
		bound   time.Duration
	}{
		{name: "SIGKILL while opening", opening: true, stop: (*cluster.Backupguard).Kill, bound: killBound},
		{name: "SIGKILL while closing", opening: false, stop: (*cluster.Backupguard).Kill, bound: killBound},
		{name: "SIGTERM while opening", opening: true, stop: func(b *cluster.Backupguard) { b.Terminate() }, bound: termBound},
		{name: "SIGTERM while closing", opening: false, stop: func(b *cluster.Backupguard) { b.Terminate() }, bound: termBound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			longhornNS, own := newNamespace(t, "lh", nil), newNamespace(t, "own", nil)
			// The scheduled window is 12 hours away: only the overrides below move it.
			opens := time.Now().UTC().Add(12 * time.Hour)
			configPath := writeConfig(t, fmt.Sprintf("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespace: %s\nwindow:\n  opens: \"%d %d * * *\"\n  duration: 1h\n",
				longhornNS, opens.Minute(), opens.Hour()))
			target := &longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: longhornNS}, Spec: longhorn.BackupTargetSpec{PollInterval: "0s"}}
			if err := kube.Create(ctx, target); err != nil {
				t.Fatal(err)
			}
			args := append(leaderArgs(own), "--sync=off", "--shutdown-delay", drainDelay.String())
			gate := newAPIGate(t)
			leader := startReplica(t, configPath, cluster.Replica{WebhookPort: freePort(t), Kubeconfig: gate.kubeconfig}, args...)
			var holder string
			within(t, time.Minute, "the first replica to take the Lease", func() (bool, string) {
				holder = leaseHolder(own)
				return holder != "", "no holder"
			})
			within(t, time.Minute, "the first leader to fence the closed window", func() (bool, string) {
				got := windowAnnotations(t, own)[controllers.StateAnnotation]
				return len(windowPolicies(t, longhornNS)) == 2 && got == string(policies.WindowClosed), fmt.Sprintf("state %q, %d policies", got, len(windowPolicies(t, longhornNS)))
			})
			// The fences of a calm run, which the transition to closed must restore exactly.
			fenced := windowPolicies(t, longhornNS)
			if names := slices.Sorted(maps.Keys(fenced)); !cmp.Equal(names, []string{"backupguard-egress-instance-manager", "backupguard-egress-longhorn-manager"}) {
				t.Fatalf("fenced by %v", names)
			}
			if !tc.opening {
				runWindowCommand(t, own, "open", "--for", "1h")
				within(t, time.Minute, "the first leader to open the window", func() (bool, string) {
					got := windowAnnotations(t, own)[controllers.StateAnnotation]
					return len(windowPolicies(t, longhornNS)) == 0 && got == string(policies.WindowOverridden), "state " + got
				})
			}
			before := windowAnnotations(t, own)
			follower := startReplica(t, configPath, cluster.Replica{WebhookPort: freePort(t)}, args...)

			// Opening deletes the policies, closing applies them (PATCH); matching only the transition's
			// method keeps a steady-state re-apply of a closed window from being taken for it.
			method := http.MethodPatch
			if tc.opening {
				method = http.MethodDelete
			}
			gate.holdAfter(1, writesTo(method, "networkpolicies"))
			triggered := time.Now().UTC().Truncate(time.Second)
			if tc.opening {
				runWindowCommand(t, own, "open", "--for", "1h", "--reason", "fault test")
			} else {
				runWindowCommand(t, own, "close", "--for", "1h", "--reason", "fault test")
			}
			select {
			case held := <-gate.holding:
				t.Logf("the leader wrote %v, then was stopped while sending %s", gate.passedRequests(), held)
			case <-time.After(time.Minute):
				t.Fatal("the leader did not start the transition within a minute")
			}
			// Mid-transition: one of the two policies changed, the state not yet published.
			if got := len(windowPolicies(t, longhornNS)); got != 1 {
				t.Fatalf("mid-transition: %d policies, want exactly 1 (one write done, one held)", got)
			}
			if diff := cmp.Diff(before, windowAnnotations(t, own)); diff != "" {
				t.Fatalf("the state was published before the fences were done (-before +now):\n%s", diff)
			}

			// Only the leader exports the window's metrics: a follower has none to contradict it.
			if samples := metricSamples(t, follower.MetricsURL, "backupguard_window_"); len(samples) != 0 {
				t.Errorf("the follower exports window metrics before it leads: %v", samples)
			}
			stopped := time.Now()
			tc.stop(leader)
			exited := time.Since(stopped)
			takeover := within(t, tc.bound, "another replica to take the Lease", func() (bool, string) {
				now := leaseHolder(own)
				return now != "" && now != holder, "holder " + now
			}) + exited
			want := map[string]policy{}
			wantState := policies.WindowOverridden
			if !tc.opening {
				want, wantState = fenced, policies.WindowClosed
			}
			converged := within(t, tc.bound, "the new leader to finish the transition", func() (bool, string) {
				got := windowPolicies(t, longhornNS)
				state := windowAnnotations(t, own)[controllers.StateAnnotation]
				return cmp.Equal(want, got) && state == string(wantState), fmt.Sprintf("state %q, policies %s", state, cmp.Diff(want, got))
			}) + takeover
			t.Logf("%s: the replica exited %v after the signal, the Lease changed hands %v after it, the window was right %v after it (bound %v)",
				tc.name, exited.Round(time.Millisecond), takeover.Round(time.Millisecond), converged.Round(time.Millisecond), tc.bound)
			wantOpen := "open 0"
			if tc.opening {
				wantOpen = "open 1"
			}
			if samples := metricSamples(t, follower.MetricsURL, "backupguard_window_"); !slices.Contains(samples, wantOpen) {
				t.Errorf("the new leader's window metrics %v lack %q", samples, wantOpen)
			}
			if converged > tc.bound {
				t.Errorf("the window was right %v after the signal, past the bound %v", converged, tc.bound)
			}

			// The published state, whole: the new leader's instants fall between the trigger and now.
			state := &corev1.ConfigMap{}
			if err := kube.Get(ctx, client.ObjectKey{Namespace: own, Name: controllers.WindowConfigMap}, state); err != nil {
				t.Fatal(err)
			}
			until, err := time.Parse(time.RFC3339, state.Data[policies.OverrideUntilKey])
			if err != nil {
				t.Fatal(err)
			}
			got := state.Annotations
			wantAnnotations := map[string]string{
				controllers.StateAnnotation:         string(wantState),
				controllers.NextTransitionAnnoation: until.Format(time.RFC3339),
			}
			newInstant := controllers.OpenedAtAnnotation
			keptInstant := controllers.ClosedAtAnnotation
			if tc.opening {
				wantAnnotations[controllers.ReasonAnnotation] = "opened by hand until " + until.Format("2006-01-02 15:04 UTC") + " (fault test)"
			} else {
				wantAnnotations[controllers.ReasonAnnotation] = "closed by hand until " + until.Format("2006-01-02 15:04 UTC") + " (fault test)"
				newInstant, keptInstant = keptInstant, newInstant
			}
			wantAnnotations[keptInstant] = before[keptInstant]
			if at, err := time.Parse(time.RFC3339, got[newInstant]); err == nil && !at.Before(triggered) && !at.After(time.Now()) {
				wantAnnotations[newInstant] = got[newInstant]
			} else {
				wantAnnotations[newInstant] = "between " + triggered.Format(time.RFC3339) + " and now"
			}
			if diff := cmp.Diff(wantAnnotations, got); diff != "" {
				t.Errorf("the window ConfigMap's annotations (-want +got):\n%s", diff)
			}
			if tc.opening {
				if err := kube.Get(ctx, client.ObjectKeyFromObject(target), target); err != nil {
					t.Fatal(err)
				}
				if at := target.Spec.SyncRequestedAt.Time; at.Before(triggered) {
					t.Errorf("the opening asked for no BackupTarget sync: syncRequestedAt %v, want at or after %v", at, triggered)
				}
			}
		})
	}
}
