package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

// The labels the rule of labelConfig decides for every PVC of a namespace labelled backup=daily, and
// for its Volume (the PVC's recurring labels, without the source label). The default group stays
// because the Volume had no recurring label of its own (labels.keepDefaultGroup's default).
var (
	decidedPVCLabels = map[string]string{
		"recurring-job.longhorn.io/faults-daily":          "enabled",
		"recurring-job-group.longhorn.io/faults-critical": "enabled",
		"recurring-job-group.longhorn.io/default":         "enabled",
		"recurring-job.longhorn.io/source":                "enabled",
	}
	decidedVolumeLabels = map[string]string{
		"recurring-job.longhorn.io/faults-daily":          "enabled",
		"recurring-job-group.longhorn.io/faults-critical": "enabled",
		"recurring-job-group.longhorn.io/default":         "enabled",
	}
)

func labelConfig(longhornNS string) string {
	return fmt.Sprintf(`apiVersion: backupguard.io/v1alpha1
kind: Config
labels:
  rules:
    - name: daily
      match:
        namespaceSelector:
          matchLabels: {backup: daily}
      jobs: [faults-daily]
      groups: [faults-critical]
longhorn:
  namespace: %s
`, longhornNS)
}

func newPVC(namespace, name string) *corev1.PersistentVolumeClaim {
	class := "longhorn"
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// labelsByName lists the labels of every object of a kind in a namespace, by name.
func labelsByName(t *testing.T, list client.ObjectList, namespace string) map[string]map[string]string {
	t.Helper()
	if err := kube.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]string{}
	switch list := list.(type) {
	case *corev1.PersistentVolumeClaimList:
		for _, item := range list.Items {
			labels[item.Name] = item.Labels
		}
	case *longhorn.VolumeList:
		for _, item := range list.Items {
			labels[item.Name] = item.Labels
		}
	}
	return labels
}

func mergePatchLabels(ctx context.Context, object client.Object, labels map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return err
	}
	return kube.Patch(ctx, object, client.RawPatch(types.MergePatchType, patch))
}

// TestLeaderDiesMidLabelSync gives the sync 300 PVCs and their 300 Volumes to label at a limited rate,
// SIGKILLs the leader once a quarter of the writes are done, while another writer adds labels of its
// own to some PVCs and Volumes; the new leader must finish, and every object must end with exactly the
// decided labels plus the other writer's, none lost.
func TestLeaderDiesMidLabelSync(t *testing.T) {
	const (
		count          = 300
		writesPerSec   = 30
		otherWriterGap = 50 * time.Millisecond
	)
	// The sync writes once per object (600 patches); the new leader needs the Lease (leaseDuration, plus
	// up to 2.2 retry periods, see TestLeaderDiesMidWindowTransition) and then at most all of them again at the limited rate; the slack is for two
	// shared cores.
	bound := leaseDuration + 3*retryPeriod + 2*count/writesPerSec*time.Second + 15*time.Second
	ctx := context.Background()
	longhornNS, own := newNamespace(t, "lh", nil), newNamespace(t, "own", nil)
	pvcNS := newNamespace(t, "pvcs", map[string]string{"backup": "daily"})

	// Created while no replica serves admission (the PVC and Volume webhooks fail open), so that every
	// one is left to the sync.
	names := make([]string, count)
	volumeOf := map[string]string{}
	var mu sync.Mutex
	err := inParallel(8, count, func(i int) error {
		pvc := newPVC(pvcNS, fmt.Sprintf("data-%03d", i))
		if err := kube.Create(ctx, pvc); err != nil {
			return err
		}
		volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID), Namespace: longhornNS}}
		mu.Lock()
		names[i], volumeOf[pvc.Name] = pvc.Name, volume.Name
		mu.Unlock()
		return kube.Create(ctx, volume)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, labels := range labelsByName(t, &corev1.PersistentVolumeClaimList{}, pvcNS) {
		if len(labels) != 0 {
			t.Fatalf("PVC %s was labelled at creation: %v", name, labels)
		}
	}

	configPath := writeConfig(t, labelConfig(longhornNS))
	args := append(leaderArgs(own), "--sync-writes-per-second", fmt.Sprint(writesPerSec))
	leader := startReplica(t, configPath, cluster.Replica{WebhookPort: freePort(t)}, args...)
	var holder string
	within(t, time.Minute, "the first replica to take the Lease", func() (bool, string) {
		holder = leaseHolder(own)
		return holder != "", "no holder"
	})
	follower := startReplica(t, configPath, cluster.Replica{WebhookPort: freePort(t)}, args...)

	labelled := func() int {
		done := 0
		for _, labels := range labelsByName(t, &corev1.PersistentVolumeClaimList{}, pvcNS) {
			if labels["recurring-job.longhorn.io/source"] == "enabled" {
				done++
			}
		}
		for _, labels := range labelsByName(t, &longhorn.VolumeList{}, longhornNS) {
			if labels["recurring-job.longhorn.io/faults-daily"] == "enabled" {
				done++
			}
		}
		return done
	}
	within(t, time.Minute, "the leader to label a quarter of the objects", func() (bool, string) {
		done := labelled()
		return done >= count/2, fmt.Sprintf("%d of %d labelled", done, 2*count)
	})

	// The other writer labels every tenth PVC and Volume, before, across and after the kill.
	otherLabels := map[string]map[string]string{}
	for i := 0; i < count; i += 10 {
		otherLabels[names[i]] = map[string]string{"example.com/owner": fmt.Sprintf("team-%d", i)}
	}
	otherWriter := make(chan error, 1)
	go func() {
		for i := 0; i < count; i += 10 {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: names[i], Namespace: pvcNS}}
			volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: volumeOf[names[i]], Namespace: longhornNS}}
			for _, object := range []client.Object{pvc, volume} {
				if err := mergePatchLabels(ctx, object, otherLabels[names[i]]); err != nil {
					otherWriter <- fmt.Errorf("the other writer labelling %s: %w", object.GetName(), err)
					return
				}
			}
			time.Sleep(otherWriterGap)
		}
		otherWriter <- nil
	}()

	time.Sleep(otherWriterGap * 5)
	atKill := labelled()
	killed := time.Now()
	leader.Kill()
	takeover := within(t, bound, "another replica to take the Lease", func() (bool, string) {
		now := leaseHolder(own)
		return now != "" && now != holder, "holder " + now
	})
	if err := <-otherWriter; err != nil {
		t.Fatal(err)
	}

	wantPVCs, wantVolumes := map[string]map[string]string{}, map[string]map[string]string{}
	for _, name := range names {
		wantPVCs[name] = maps.Clone(decidedPVCLabels)
		wantVolumes[volumeOf[name]] = maps.Clone(decidedVolumeLabels)
		maps.Copy(wantPVCs[name], otherLabels[name])
		maps.Copy(wantVolumes[volumeOf[name]], otherLabels[name])
	}
	var gotPVCs, gotVolumes map[string]map[string]string
	within(t, bound, "every PVC and Volume to have exactly the decided and the other writer's labels", func() (bool, string) {
		gotPVCs = labelsByName(t, &corev1.PersistentVolumeClaimList{}, pvcNS)
		gotVolumes = labelsByName(t, &longhorn.VolumeList{}, longhornNS)
		return cmp.Equal(wantPVCs, gotPVCs) && cmp.Equal(wantVolumes, gotVolumes),
			fmt.Sprintf("PVCs:\n%s\nVolumes:\n%s", cmp.Diff(wantPVCs, gotPVCs), cmp.Diff(wantVolumes, gotVolumes))
	})
	since := time.Since(killed)
	t.Logf("%d of %d label writes were done when the leader was SIGKILLed; the Lease changed hands %v later; every object was right %v after the kill (bound %v, %d writes/s)",
		atKill, 2*count, takeover.Round(time.Millisecond), since.Round(time.Millisecond), bound, writesPerSec)
	t.Logf("the new leader's sync: %v", metricSamples(t, follower.MetricsURL, "backupguard_label_sync_changes_total"))
}

// inParallel runs do(0..count-1) on workers goroutines and joins their errors.
func inParallel(workers, count int, do func(int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// metricSamples reads the samples of one metric from a replica's /metrics.
func metricSamples(t *testing.T, url, name string) []string {
	t.Helper()
	response, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	var samples []string
	for scanner := bufio.NewScanner(response.Body); scanner.Scan(); {
		if strings.HasPrefix(scanner.Text(), name) {
			samples = append(samples, strings.TrimPrefix(scanner.Text(), name))
		}
	}
	return samples
}
