package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
)

// longhornServiceAccount is the user Longhorn's manager writes as: restores create RecurringJobs as it.
const longhornServiceAccount = "system:serviceaccount:longhorn-system:longhorn-service-account"

// The interval violation every step below starts from: retain 3 with a full backup every 7 runs.
const intervalViolation = `spec.retain: Invalid value: 3: must be greater than parameters[full-backup-interval] (7), so that the 3 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8`

// clientAs is a client that impersonates user and collects the warnings the API server sends back.
func clientAs(t *testing.T, user string, groups ...string) (client.Client, *warningCollector) {
	t.Helper()
	config := rest.CopyConfig(testCluster.Config)
	if user != "" {
		config.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	}
	warnings := &warningCollector{}
	config.WarningHandler = warnings
	scheme := runtime.NewScheme()
	if err := longhorn.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, warnings
}

// TestRecurringJobUpdatesRatchet walks one job that breaks a rule through the writes that must still
// work, against the real API server and the shipped webhook configuration: Longhorn's own service
// account creates it (as a restore would), a label is added, its cron is changed, a new violation is
// refused, and a foreground deletion completes when the garbage collector removes its finalizer.
func TestRecurringJobUpdatesRatchet(t *testing.T) {
	ctx := context.Background()
	name := "ratchet"
	job := &longhorn.RecurringJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: longhornNamespace},
		Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 3, Concurrency: 2,
			Parameters: map[string]string{"full-backup-interval": "7"}},
	}

	admin, adminWarnings := clientAs(t, "")
	if err := admin.Create(ctx, job.DeepCopy(), client.DryRunAll); !apierrors.IsInvalid(err) {
		t.Fatalf("an administrator's create of the broken job: want Invalid, got %v", err)
	}

	longhornWriter, longhornWarnings := clientAs(t, longhornServiceAccount, "system:serviceaccounts", "system:serviceaccounts:longhorn-system")
	grantLonghornServiceAccount(t, ctx)
	if err := longhornWriter.Create(ctx, job.DeepCopy()); err != nil {
		t.Fatalf("Longhorn's own create of the broken job (a restore) must be allowed: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.Delete(context.Background(), &longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: longhornNamespace}})
	})
	wantWarnings := []string{
		"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false",
		intervalViolation + " (not refused: written by " + longhornServiceAccount + ", a trusted writer in recurringJobs.trustedWriters)",
	}
	if diff := cmp.Diff(wantWarnings, longhornWarnings.list()); diff != "" {
		t.Errorf("warnings to Longhorn's create (-want +got):\n%s", diff)
	}
	eventually(t, "an Event on the RecurringJob saying the violation was let through", func() (bool, string) {
		events := &eventsv1.EventList{}
		if err := kube.List(ctx, events, client.InNamespace(longhornNamespace)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, event := range events.Items {
			if event.Regarding.Kind == "RecurringJob" && event.Regarding.Name == name {
				seen = append(seen, event.Reason+": "+event.Note)
			}
		}
		want := "RuleViolationAllowed: CREATE by " + longhornServiceAccount + " allowed although it breaks backupguard's rules (trusted-writer): " + intervalViolation
		for _, note := range seen {
			if note == want {
				return true, ""
			}
		}
		return false, fmt.Sprintf("events: %q", seen)
	})

	stored := &longhorn.RecurringJob{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: name}, stored); err != nil {
		t.Fatal(err)
	}

	t.Run("a metadata-only update is allowed without a word", func(t *testing.T) {
		before := len(adminWarnings.list())
		labelled := stored.DeepCopy()
		labelled.Labels = map[string]string{"team": "storage"}
		if err := admin.Update(ctx, labelled); err != nil {
			t.Fatalf("adding a label: %v", err)
		}
		if got := adminWarnings.list()[before:]; len(got) != 0 {
			t.Errorf("warnings: %q, want none", got)
		}
		stored = labelled
	})

	t.Run("a spec update that keeps the old violation is allowed and repeats it as a warning", func(t *testing.T) {
		before := len(adminWarnings.list())
		changed := stored.DeepCopy()
		changed.Spec.Cron = "0 3 * * *"
		if err := admin.Update(ctx, changed); err != nil {
			t.Fatalf("changing the cron: %v", err)
		}
		want := []string{
			"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false",
			intervalViolation + " (already so before this update, so not refused)",
		}
		if diff := cmp.Diff(want, adminWarnings.list()[before:]); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
		stored = changed
	})

	t.Run("a spec update that adds a violation is refused for the new one only", func(t *testing.T) {
		changed := stored.DeepCopy()
		changed.Spec.Cron = "0 3 * * 7"
		err := admin.Update(ctx, changed)
		if !apierrors.IsInvalid(err) {
			t.Fatalf("want Invalid, got %v", err)
		}
		if diff := cmp.Diff([]string{"spec.cron"}, causeFields(err)); diff != "" {
			t.Errorf("refused fields (-want +got):\n%s", diff)
		}
	})

	t.Run("a foreground deletion completes when the garbage collector removes its finalizer", func(t *testing.T) {
		// Longhorn's UI and uninstaller delete with foreground propagation (longhorn-manager
		// datastore/longhorn.go DeleteRecurringJob); a bare API server has no garbage collector, so the
		// test removes the finalizer as the collector would, with an UPDATE.
		if err := admin.Delete(ctx, stored.DeepCopy(), client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
			t.Fatalf("foreground delete: %v", err)
		}
		terminating := &longhorn.RecurringJob{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: name}, terminating); err != nil {
			t.Fatal(err)
		}
		if terminating.DeletionTimestamp == nil || !strings.Contains(strings.Join(terminating.Finalizers, ","), metav1.FinalizerDeleteDependents) {
			t.Fatalf("want a terminating job with the %s finalizer, got deletionTimestamp %v finalizers %v", metav1.FinalizerDeleteDependents, terminating.DeletionTimestamp, terminating.Finalizers)
		}
		collector, _ := clientAs(t, "system:serviceaccount:kube-system:generic-garbage-collector", "system:serviceaccounts", "system:serviceaccounts:kube-system", "system:masters")
		terminating.Finalizers = nil
		if err := collector.Update(ctx, terminating); err != nil {
			t.Fatalf("the garbage collector's finalizer removal must be allowed: %v", err)
		}
		err := admin.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: name}, &longhorn.RecurringJob{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("the job must be gone, got %v", err)
		}
	})
}

// grantLonghornServiceAccount lets the impersonated Longhorn service account write RecurringJobs, as
// Longhorn's own ClusterRole does.
func grantLonghornServiceAccount(t *testing.T, ctx context.Context) {
	t.Helper()
	manifest := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-longhorn-recurringjobs}
rules:
  - apiGroups: [longhorn.io]
    resources: [recurringjobs]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-longhorn-recurringjobs}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-longhorn-recurringjobs}
subjects:
  - {kind: ServiceAccount, name: longhorn-service-account, namespace: longhorn-system}
`
	if result := testCluster.RunKubectl(manifest, "apply", "-f", "-"); result.ExitCode != 0 {
		t.Fatalf("granting Longhorn's service account: %s", result.Stderr)
	}
}
