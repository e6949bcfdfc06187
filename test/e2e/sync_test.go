package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
)

func volumeLabels(t *testing.T, name string) map[string]string {
	t.Helper()
	volume := &longhorn.Volume{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: longhornNamespace, Name: name}, volume); err != nil {
		t.Fatal(err)
	}
	return volume.Labels
}

// createStaticVolume makes a Longhorn Volume with labels and its PV (Longhorn's CSI driver, the Volume
// as its handle) claimed by pvc, and gives the Volume the status.kubernetesStatus Longhorn writes for a
// bound volume; with lastPVCRefAt set, the status of a Released one.
func createStaticVolume(ctx context.Context, name string, pvc *corev1.PersistentVolumeClaim, labels map[string]string, lastPVCRefAt string) (*longhorn.Volume, error) {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: name}},
			ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
		},
	}
	if err := kube.Create(ctx, pv); err != nil {
		return nil, err
	}
	volume := newVolume(name, labels)
	if err := kube.Create(ctx, volume); err != nil {
		return nil, err
	}
	pvStatus := "Bound"
	if lastPVCRefAt != "" {
		pvStatus = "Released"
	}
	volume.Status.KubernetesStatus = longhorn.KubernetesStatus{PVName: name, PVStatus: pvStatus, Namespace: pvc.Namespace, PVCName: pvc.Name, LastPVCRefAt: lastPVCRefAt}
	return volume, kube.Status().Update(ctx, volume)
}

func eventuallyLabels(t *testing.T, what string, want map[string]string, get func() map[string]string) {
	t.Helper()
	eventually(t, what, func() (bool, string) {
		got := get()
		return cmp.Equal(want, got), cmp.Diff(want, got)
	})
}

// TestSyncLabelsWhatWasCreatedWhileServeWasDown stops serve: PVC creation still succeeds (the PVC
// webhook fails open), and once serve is back the sync labels the PVC and its Volume.
func TestSyncLabelsWhatWasCreatedWhileServeWasDown(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	guard.Stop()
	result := testCluster.RunKubectl(pvcYAML(namespace, "early", "longhorn", nil, nil), "create", "-f", "-", "-o", "jsonpath={.metadata.labels}")
	if result.ExitCode != 0 || result.Stdout != "" {
		restartBackupguard(t)
		t.Fatalf("creating a PVC while backupguard is down: want success without labels, got %+v", result)
	}
	pvc := getPVC(t, namespace, "early")
	volumeName := "pvc-" + string(pvc.UID)
	// A static Volume too, not named after its PVC: linked through its PV (bound to the PVC: the PVC
	// names it, it claims the PVC) and status.kubernetesStatus.
	staticPVC := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "static", Namespace: namespace}, Spec: pvcSpec("longhorn")}
	staticPVC.Spec.VolumeName = "static-volume-" + namespace
	if err := kube.Create(ctx, staticPVC); err != nil {
		restartBackupguard(t)
		t.Fatal(err)
	}
	if err := kube.Create(ctx, newVolume(volumeName, nil)); err != nil {
		restartBackupguard(t)
		t.Fatal(err)
	}
	staticVolume, err := createStaticVolume(ctx, "static-volume-"+namespace, staticPVC, nil, "")
	if err != nil {
		restartBackupguard(t)
		t.Fatal(err)
	}
	restartBackupguard(t)

	eventuallyLabels(t, "the PVC to be labelled by the sync", dailyLabels, func() map[string]string { return getPVC(t, namespace, "early").Labels })
	if diff := cmp.Diff(dailyManaged, getPVC(t, namespace, "early").Annotations[managedKey]); diff != "" {
		t.Errorf("managed-labels annotation (-want +got):\n%s", diff)
	}
	eventuallyLabels(t, "the Volume to be labelled by the sync", dailyVolumeLabels, func() map[string]string { return volumeLabels(t, volumeName) })
	eventuallyLabels(t, "the static Volume to be labelled by the sync", dailyVolumeLabels, func() map[string]string { return volumeLabels(t, staticVolume.Name) })
}

// TestNamespaceLabelChangeRelabelsItsPVCs labels a namespace after its PVC exists.
func TestNamespaceLabelChangeRelabelsItsPVCs(t *testing.T) {
	namespace := newNamespace(t, nil)
	assertKubectl(t, testCluster.RunKubectl(pvcYAML(namespace, "data", "longhorn", nil, nil), "create", "-f", "-", "-o", "jsonpath={.metadata.labels}"), cluster.KubectlResult{})
	labelNamespace(t, namespace, "backup", "daily")
	eventuallyLabels(t, "the PVC to follow its namespace's labels", dailyLabels, func() map[string]string { return getPVC(t, namespace, "data").Labels })
}

// TestRemovedRuleRemovesOnlyTheLabelsBackupguardAdded changes the config under the running server: the
// removed rule's job label goes, a hand-set label stays.
func TestRemovedRuleRemovesOnlyTheLabelsBackupguardAdded(t *testing.T) {
	t.Cleanup(func() { writeConfig(t, baseConfig) })
	namespace := newNamespace(t, nil)
	writeConfig(t, baseConfig+"    # an extra rule, removed again below\n")
	withExtraRule := baseConfig[:len(baseConfig)-len("longhorn:\n  namespace: longhorn-system\n")] +
		"    - name: extra\n      match:\n        namespaces: [" + namespace + "]\n      jobs: [extra]\n" +
		"longhorn:\n  namespace: longhorn-system\n"
	applied := reloadCount(t, "applied")
	writeConfig(t, withExtraRule)
	eventually(t, "the config with the extra rule to apply", func() (bool, string) {
		got := reloadCount(t, "applied")
		return got != applied, "applied=" + got
	})
	handSet := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled", "team": "storage"}
	manifest := pvcYAML(namespace, "data", "longhorn", handSet, nil)
	eventually(t, "the extra rule to label new PVCs", func() (bool, string) {
		result := testCluster.RunKubectl(manifest, "create", "--dry-run=server", "-f", "-", "-o", "jsonpath={.metadata.labels.recurring-job\\.longhorn\\.io/extra}")
		return result.Stdout == "enabled", result.Stdout + result.Stderr
	})
	assertKubectl(t, testCluster.RunKubectl(manifest, "create", "-f", "-", "-o", "name"), cluster.KubectlResult{
		Stdout: "persistentvolumeclaim/data\n",
		Stderr: `Warning: rule "extra" names recurring job "extra", but no RecurringJob has that name: nothing will run for it` + "\n",
	})
	want := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled", "team": "storage", "recurring-job.longhorn.io/extra": "enabled", sourceLabel: "enabled"}
	if diff := cmp.Diff(want, getPVC(t, namespace, "data").Labels); diff != "" {
		t.Fatalf("labels with the extra rule (-want +got):\n%s", diff)
	}

	// The source label stays, so that Longhorn keeps mirroring the PVC and the Volume loses the job too.
	writeConfig(t, baseConfig)
	withSource := map[string]string{"recurring-job.longhorn.io/by-hand": "enabled", "team": "storage", sourceLabel: "enabled"}
	eventuallyLabels(t, "the extra rule's labels to go", withSource, func() map[string]string { return getPVC(t, namespace, "data").Labels })
	if diff := cmp.Diff(sourceLabel, getPVC(t, namespace, "data").Annotations[managedKey]); diff != "" {
		t.Errorf("managed-labels annotation (-want +got):\n%s", diff)
	}
}

// TestServerSideApplyShowsNoDrift: the mutation is deterministic, so re-applying the same manifest (what
// Flux does on every reconcile) writes nothing and kubectl diff shows nothing. The API server itself
// rewrites a PVC once on its second server-side apply even where no webhook acts, so the same manifest
// in kube-system (excluded from backupguard) is the baseline backupguard must not add writes to.
func TestServerSideApplyShowsNoDrift(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	labels := map[string]string{"app": "web"}
	applyThrice := func(namespace string) []string {
		manifest := pvcYAML(namespace, "ssa-"+strings.ToLower(t.Name()[len(t.Name())-5:]), "longhorn", labels, nil)
		var versions []string
		for range 3 {
			result := testCluster.RunKubectl(manifest, "apply", "--server-side", "-f", "-", "-o", "jsonpath={.metadata.resourceVersion}")
			if result.ExitCode != 0 {
				t.Fatalf("kubectl apply --server-side: %+v", result)
			}
			versions = append(versions, result.Stdout)
		}
		assertKubectl(t, testCluster.RunKubectl(manifest, "diff", "--server-side", "-f", "-"), cluster.KubectlResult{})
		return versions
	}
	baseline := applyThrice("kube-system")
	guarded := applyThrice(namespace)
	if guarded[2] != guarded[1] {
		t.Errorf("the third identical apply wrote the PVC: resourceVersions %v", guarded)
	}
	if (baseline[1] == baseline[0]) != (guarded[1] == guarded[0]) {
		t.Errorf("backupguard changed whether the second apply writes: baseline %v, with backupguard %v", baseline, guarded)
	}
	pvc := getPVC(t, namespace, "ssa-"+strings.ToLower(t.Name()[len(t.Name())-5:]))
	want := map[string]string{"app": "web", jobLabel: "enabled", groupLabel: "enabled", defaultGroup: "enabled", sourceLabel: "enabled"}
	if diff := cmp.Diff(want, pvc.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

// metricValue reads one sample from backupguard's /metrics, "0" when absent.
func metricValue(t testing.TB, sample string) string {
	t.Helper()
	return metricAt(t, guard.MetricsURL, sample)
}

// metricAt reads one sample from the /metrics at url, "0" when absent.
func metricAt(t testing.TB, url, sample string) string {
	t.Helper()
	response, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	scanner := bufio.NewScanner(response.Body)
	for scanner.Scan() {
		if value, found := strings.CutPrefix(scanner.Text(), sample+" "); found {
			return value
		}
	}
	return "0"
}

// TestDryRunSyncOnlyLogs starts serve with --sync=dry-run over an unlabelled PVC: the sync counts and
// logs the change it would make and writes nothing; back in normal mode the PVC is labelled.
func TestDryRunSyncOnlyLogs(t *testing.T) {
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	guard.Stop()
	result := testCluster.RunKubectl(pvcYAML(namespace, "untouched", "longhorn", nil, nil), "create", "-f", "-", "-o", "name")
	var err error
	guard, err = testCluster.StartBackupguard(context.Background(), binary, configPath, "--sync=dry-run")
	if err != nil {
		restartBackupguard(t)
		t.Fatal(err)
	}
	if result.ExitCode != 0 {
		t.Fatalf("kubectl create: %+v", result)
	}
	eventually(t, "the dry run to find the PVC", func() (bool, string) {
		for _, line := range logLines("dry run: would patch labels") {
			if line["namespace"] == namespace && line["name"] == "untouched" {
				return true, ""
			}
		}
		return false, cluster.LastLines(guard.Log(), 5)
	})
	if value := metricValue(t, `backupguard_label_sync_changes_total{kind="PersistentVolumeClaim",result="would-patch"}`); value == "0" {
		t.Errorf("would-patch counter is %s, want at least 1", value)
	}
	if labels := getPVC(t, namespace, "untouched").Labels; len(labels) != 0 {
		t.Errorf("a dry run wrote labels: %v", labels)
	}
	guard.Stop()
	restartBackupguard(t)
	eventuallyLabels(t, "the PVC to be labelled once the sync is on", dailyLabels, func() map[string]string { return getPVC(t, namespace, "untouched").Labels })
}

// staleFirstRead is the label sync's cache as it is when another writer's write has not reached it
// yet: the first read of key returns snapshot, taken before that write; every other read is the API
// server's current state, through reads. Writes go through the embedded client; answers records what
// the API server answered each patch.
type staleFirstRead struct {
	client.Client
	reads    client.Reader
	key      client.ObjectKey
	snapshot client.Object
	answers  []string
	errs     []error
}

func (c *staleFirstRead) Get(ctx context.Context, key client.ObjectKey, object client.Object, opts ...client.GetOption) error {
	if c.snapshot != nil && key == c.key && reflect.TypeOf(object) == reflect.TypeOf(c.snapshot) {
		reflect.ValueOf(object).Elem().Set(reflect.ValueOf(c.snapshot.DeepCopyObject()).Elem())
		c.snapshot = nil
		return nil
	}
	return c.reads.Get(ctx, key, object, opts...)
}

// List reads the API server's current state. The API server knows no field index of serve's cache, so
// a RecurringJob list by lookup.RecurringJobProvides is answered by listing the namespace and keeping
// what the index function gives that value, exactly as the cache's index would.
func (c *staleFirstRead) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	jobs, isJobs := list.(*longhorn.RecurringJobList)
	options := (&client.ListOptions{}).ApplyOptions(opts)
	if !isJobs || options.FieldSelector == nil {
		return c.reads.List(ctx, list, opts...)
	}
	value, indexed := options.FieldSelector.RequiresExactMatch(lookup.RecurringJobProvides)
	if !indexed {
		return c.reads.List(ctx, list, opts...)
	}
	all := &longhorn.RecurringJobList{}
	if err := c.reads.List(ctx, all, client.InNamespace(options.Namespace)); err != nil {
		return err
	}
	for _, job := range all.Items {
		if slices.Contains(lookup.RecurringJobProvidesValues(&job), value) {
			jobs.Items = append(jobs.Items, job)
		}
	}
	return nil
}

func (c *staleFirstRead) Patch(ctx context.Context, object client.Object, patch client.Patch, opts ...client.PatchOption) error {
	err := c.Client.Patch(ctx, object, patch, opts...)
	c.errs = append(c.errs, err)
	var status apierrors.APIStatus
	switch {
	case err == nil:
		c.answers = append(c.answers, "ok")
	case errors.As(err, &status):
		c.answers = append(c.answers, fmt.Sprintf("%d %s", status.Status().Code, status.Status().Reason))
	default:
		c.answers = append(c.answers, err.Error())
	}
	return err
}

// TestSyncKeepsALabelWrittenBetweenItsReadAndItsPatch runs the label sync's reconcile on a copy of the
// object taken before another writer labelled it, as a cache that lags behind serves it. The sync's
// patch must fail on the API server and the sync must decide again from the server's copy, so that
// both writers' labels end on the object; before, a patch made from an object without labels replaced
// the whole map. serve is stopped meanwhile, so that only the two of them write; the sync writes and
// re-reads as the shipped ServiceAccount, so the RBAC must allow that.
func TestSyncKeepsALabelWrittenBetweenItsReadAndItsPatch(t *testing.T) {
	ctx := context.Background()
	namespace := newNamespace(t, nil)
	config, err := policies.ParseConfig([]byte(fmt.Sprintf(`apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: this-test
      match: {namespaces: [%s]}
      jobs: [e2e-daily]
longhorn:
  namespace: %s
`, namespace, longhornNamespace)), "test")
	if err != nil {
		t.Fatal(err)
	}
	asServiceAccount := rest.CopyConfig(testCluster.Config)
	asServiceAccount.Impersonate = rest.ImpersonationConfig{UserName: cluster.ServiceAccountUser, Groups: cluster.ServiceAccountGroups}
	serviceAccount, err := client.New(asServiceAccount, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	guard.Stop()
	t.Cleanup(func() { restartBackupguard(t) })

	// A source PVC and its static Volume, linked as Longhorn links a bound one.
	sourcePVC := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "source", Namespace: namespace, Labels: map[string]string{jobLabel: "enabled", sourceLabel: "enabled"}},
		Spec:       pvcSpec("longhorn"),
	}
	if err := kube.Create(ctx, sourcePVC); err != nil {
		t.Fatal(err)
	}
	volume := newVolume("static-"+namespace, nil)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: volume.Name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: namespace, Name: sourcePVC.Name, UID: sourcePVC.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: volume.Name}},
		},
	}
	if err := kube.Create(ctx, pv); err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, volume); err != nil {
		t.Fatal(err)
	}
	volume.Status.KubernetesStatus = longhorn.KubernetesStatus{Namespace: namespace, PVCName: sourcePVC.Name, PVName: pv.Name}
	if err := kube.Status().Update(ctx, volume); err != nil {
		t.Fatal(err)
	}
	for name, labels := range map[string]map[string]string{"bare": nil, "labelled": {"app": "web"}} {
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}, Spec: pvcSpec("longhorn")}
		if err := kube.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name       string
		object     client.Object
		reconcile  func(*controllers.LabelSync) reconcile.Func
		otherWrite map[string]string
		want       map[string]string
	}{
		{
			name:       "a PVC without labels, whose labels the sync would have added as a whole map",
			object:     &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: namespace}},
			reconcile:  func(s *controllers.LabelSync) reconcile.Func { return s.ReconcilePVC },
			otherWrite: map[string]string{"team": "storage"},
			want:       map[string]string{"team": "storage", jobLabel: "enabled", sourceLabel: "enabled", defaultGroup: "enabled"},
		},
		{
			name:       "a PVC whose job label a person set meanwhile, which the sync would have overwritten",
			object:     &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "labelled", Namespace: namespace}},
			reconcile:  func(s *controllers.LabelSync) reconcile.Func { return s.ReconcilePVC },
			otherWrite: map[string]string{jobLabel: "disabled"},
			want:       map[string]string{"app": "web", jobLabel: "disabled", sourceLabel: "enabled", defaultGroup: "enabled"},
		},
		{
			name:       "a Volume without labels, whose labels the sync would have added as a whole map",
			object:     &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: volume.Name, Namespace: longhornNamespace}},
			reconcile:  func(s *controllers.LabelSync) reconcile.Func { return s.ReconcileVolume },
			otherWrite: map[string]string{"team": "storage"},
			want:       map[string]string{"team": "storage", jobLabel: "enabled"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := client.ObjectKeyFromObject(tc.object)
			snapshot := tc.object.DeepCopyObject().(client.Object)
			if err := kube.Get(ctx, key, snapshot); err != nil {
				t.Fatal(err)
			}
			otherWrite, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": tc.otherWrite}})
			if err != nil {
				t.Fatal(err)
			}
			if err := kube.Patch(ctx, tc.object.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, otherWrite)); err != nil {
				t.Fatal(err)
			}
			stale := &staleFirstRead{Client: serviceAccount, reads: kube, key: key, snapshot: snapshot}
			sync := &controllers.LabelSync{
				Client:    stale,
				APIReader: serviceAccount,
				Config:    func() *policies.Config { return config },
				Mode:      controllers.SyncOn,
				Writes:    rate.NewLimiter(rate.Inf, 1),
				Log:       testr.New(t),
			}
			_, err = tc.reconcile(sync)(ctx, reconcile.Request{NamespacedName: key})
			t.Logf("the API server's answers to the sync's patches: %v", stale.errs)
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			// The API server refuses the patch made from the stale copy; the one made from its own copy
			// passes.
			if diff := cmp.Diff([]string{"422 Invalid", "ok"}, stale.answers); diff != "" {
				t.Errorf("the API server's answers to the sync's patches (-want +got):\n%s", diff)
			}
			got := tc.object.DeepCopyObject().(client.Object)
			if err := kube.Get(ctx, key, got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.GetLabels()); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
		})
	}
}
