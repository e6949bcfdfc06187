package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/webhook"
)

// The scale the label issue names: 10,000 PVCs in 1,000 namespaces, and 10,000 Volumes.
const (
	scaleNamespaces   = 1000
	scalePVCsPerSpace = 10
)

var (
	scaleOnce sync.Once
	scaleErr  error
	scalePVCs []*corev1.PersistentVolumeClaim
)

// populateScale creates the objects once, through the webhooks (so they are labelled as they would be
// in a cluster where backupguard runs), with eight writers in parallel.
func populateScale(b *testing.B) {
	b.Helper()
	scaleOnce.Do(func() {
		ctx := context.Background()
		work := make(chan int)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range work {
					name := fmt.Sprintf("scale-%04d", n)
					labels := map[string]string{}
					if n%2 == 0 {
						labels["backup"] = "daily"
					}
					if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
						mu.Lock()
						scaleErr = err
						mu.Unlock()
						return
					}
					for i := range scalePVCsPerSpace {
						pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + strconv.Itoa(i), Namespace: name}, Spec: pvcSpec("longhorn")}
						if i%3 == 0 {
							pvc.Labels = map[string]string{"app": "postgres"}
						}
						if err := kube.Create(ctx, pvc); err != nil {
							mu.Lock()
							scaleErr = err
							mu.Unlock()
							return
						}
						if err := kube.Create(ctx, newVolume("pvc-"+string(pvc.UID), nil)); err != nil {
							mu.Lock()
							scaleErr = err
							mu.Unlock()
							return
						}
						mu.Lock()
						scalePVCs = append(scalePVCs, pvc)
						mu.Unlock()
					}
				}
			}()
		}
		for n := range scaleNamespaces {
			work <- n
		}
		close(work)
		wg.Wait()
	})
	if scaleErr != nil {
		b.Fatal(scaleErr)
	}
}

// syncedCache is a controller-runtime cache like serve's, synced with everything in the cluster.
func syncedCache(b *testing.B) cache.Cache {
	b.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	options := lookup.CacheOptions(longhornNamespace, "backupguard-system")
	options.Scheme = scheme
	informers, err := cache.New(testCluster.Config, options)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if err := lookup.AddIndexes(ctx, informers); err != nil {
		b.Fatal(err)
	}
	for _, object := range []client.Object{&corev1.PersistentVolumeClaim{}, &corev1.Namespace{}, &corev1.PersistentVolume{}, &longhorn.Volume{}, &longhorn.RecurringJob{}, &storagev1.StorageClass{}, &corev1.Pod{}, &corev1.Node{}} {
		if _, err := informers.GetInformer(ctx, object); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
	return informers
}

func scaleConfig(b *testing.B) func() *policies.Config {
	config, err := policies.ParseConfig([]byte(baseConfig), "config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return func() *policies.Config { return config }
}

func reviewRequest(b *testing.B, kind metav1.GroupVersionKind, namespace string, object any) admission.Request {
	raw, err := json.Marshal(object)
	if err != nil {
		b.Fatal(err)
	}
	request := admission.Request{}
	request.Kind, request.Namespace, request.Operation = kind, namespace, "UPDATE"
	request.Object.Raw = raw
	return request
}

// BenchmarkPVCLabelDecision is one PVC webhook decision, lookups through the cache included, with
// 10,000 PVCs, 1,000 namespaces and 10,000 Volumes cached.
func BenchmarkPVCLabelDecision(b *testing.B) {
	populateScale(b)
	labeler := &webhook.PVCLabeler{Reader: syncedCache(b), Config: scaleConfig(b)}
	pvc := scalePVCs[len(scalePVCs)/2].DeepCopy()
	request := reviewRequest(b, metav1.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"}, pvc.Namespace, pvc)
	b.ReportAllocs()
	for b.Loop() {
		if response := labeler.Handle(context.Background(), request); !response.Allowed {
			b.Fatal(response.Result)
		}
	}
}

// BenchmarkVolumeLabelDecision is one Volume webhook decision, the PVC found through the uid index.
func BenchmarkVolumeLabelDecision(b *testing.B) {
	populateScale(b)
	labeler := &webhook.VolumeLabeler{Reader: syncedCache(b)}
	pvc := scalePVCs[len(scalePVCs)/3]
	volume := newVolume("pvc-"+string(pvc.UID), nil)
	volume.APIVersion, volume.Kind = "longhorn.io/v1beta2", "Volume"
	request := reviewRequest(b, metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "Volume"}, longhornNamespace, volume)
	b.ReportAllocs()
	for b.Loop() {
		if response := labeler.Handle(context.Background(), request); !response.Allowed || len(response.Patches) == 0 {
			b.Fatalf("want a labelling patch, got %+v", response)
		}
	}
}

// BenchmarkSyncOfCorrectObjectsWritesNothing restarts serve over 10,000 already-labelled PVCs and
// Volumes, waits until the sync has checked every one, and fails if it wrote anything.
func BenchmarkSyncOfCorrectObjectsWritesNothing(b *testing.B) {
	populateScale(b)
	// Precondition: everything is labelled as the policies want, checked through a synced cache.
	informers := syncedCache(b)
	config := scaleConfig(b)()
	eventually(b, "every PVC and Volume to be labelled", func() (bool, string) {
		return allLabelled(b, informers, config)
	})
	for b.Loop() {
		guard.Stop()
		var err error
		if guard, err = testCluster.StartBackupguard(context.Background(), binary, configPath); err != nil {
			b.Fatal(err)
		}
		total := scaleNamespaces * scalePVCsPerSpace
		eventually(b, "the sync to check every PVC and Volume", func() (bool, string) {
			pvcs, _ := strconv.Atoi(metricValue(b, `controller_runtime_reconcile_total{controller="pvc-labels",result="success"}`))
			volumes, _ := strconv.Atoi(metricValue(b, `controller_runtime_reconcile_total{controller="volume-labels",result="success"}`))
			return pvcs >= total && volumes >= total, fmt.Sprintf("%d PVCs and %d Volumes checked", pvcs, volumes)
		})
		for _, kind := range []string{"PersistentVolumeClaim", "Volume"} {
			if written := metricValue(b, fmt.Sprintf(`backupguard_label_sync_changes_total{kind=%q,result="patched"}`, kind)); written != "0" {
				b.Fatalf("the sync patched %s %ss that were already correct", written, kind)
			}
		}
	}
	b.ReportMetric(0, "writes")
}

// allLabelled tells whether every scale PVC and its Volume already carry what the policies want.
func allLabelled(b *testing.B, reader client.Reader, config *policies.Config) (bool, string) {
	ctx := context.Background()
	for _, cached := range scalePVCs {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := reader.Get(ctx, client.ObjectKeyFromObject(cached), pvc); err != nil {
			return false, err.Error()
		}
		env, err := lookup.PVCEnvironment(ctx, reader, pvc.Namespace, pvc, longhornNamespace, false)
		if err != nil {
			return false, err.Error()
		}
		if decision := policies.DecidePVCLabels(pvc, env, config.LabelRules()); len(decision.Patch) > 0 {
			return false, fmt.Sprintf("PVC %s/%s still needs %v", pvc.Namespace, pvc.Name, decision.Patch)
		}
		volume := &longhorn.Volume{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: longhornNamespace, Name: "pvc-" + string(pvc.UID)}, volume); err != nil {
			return false, err.Error()
		}
		if decision := policies.DecideVolumeLabels(volume, pvc); len(decision.Patch) > 0 {
			return false, fmt.Sprintf("Volume %s still needs %v", volume.Name, decision.Patch)
		}
	}
	return true, ""
}

// The scale the placement issue names: 50,000 Pods and 2,000 Nodes, over the 10,000 PVCs above.
const (
	scaleNodes       = 2000
	scalePodsPerPVC  = 5
	placementClaims  = 3
	placementWriters = 8
)

var placementOnce sync.Once

// populatePlacementScale adds the Nodes and the Running Pods that mount the scale PVCs; the pods of a
// namespace all run on one node, so a Job over three of its PVCs can be placed.
func populatePlacementScale(b *testing.B) {
	b.Helper()
	populateScale(b)
	placementOnce.Do(func() {
		ctx := context.Background()
		run := func(count int, create func(int) error) {
			work := make(chan int)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range placementWriters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range work {
						if err := create(n); err != nil {
							mu.Lock()
							scaleErr = err
							mu.Unlock()
						}
					}
				}()
			}
			for n := range count {
				work <- n
			}
			close(work)
			wg.Wait()
		}
		run(scaleNodes, func(n int) error {
			name := fmt.Sprintf("scale-node-%04d", n)
			return kube.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
				Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "dedicated", Value: fmt.Sprint(n % 7), Effect: corev1.TaintEffectNoSchedule}}}})
		})
		run(len(scalePVCs)*scalePodsPerPVC, func(n int) error {
			pvc := scalePVCs[n/scalePodsPerPVC]
			var namespaceNumber int
			fmt.Sscanf(pvc.Namespace, "scale-%d", &namespaceNumber)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", pvc.Name, n%scalePodsPerPVC), Namespace: pvc.Namespace},
				Spec: corev1.PodSpec{
					NodeName:   fmt.Sprintf("scale-node-%04d", namespaceNumber%scaleNodes),
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
					Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name, ReadOnly: n%scalePodsPerPVC != 0}}}},
				},
			}
			if err := kube.Create(ctx, pod); err != nil {
				return err
			}
			pod.Status.Phase = corev1.PodRunning
			return kube.Status().Update(ctx, pod)
		})
		// The scale PVCs were created Pending; placement needs them Bound.
		run(len(scalePVCs), func(n int) error {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := kube.Get(ctx, client.ObjectKeyFromObject(scalePVCs[n]), pvc); err != nil {
				return err
			}
			pvc.Status.Phase = corev1.ClaimBound
			return kube.Status().Update(ctx, pvc)
		})
	})
	if scaleErr != nil {
		b.Fatal(scaleErr)
	}
}

// BenchmarkJobPlacement resolves and patches a backup Job with three ReadWriteOnce PVCs, lookups through
// the cache's indexes included.
func BenchmarkJobPlacement(b *testing.B) {
	populatePlacementScale(b)
	placer := &webhook.JobPlacer{Reader: syncedCache(b), Config: scaleConfig(b)}
	namespace := scalePVCs[len(scalePVCs)/2].Namespace
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: namespace, Labels: map[string]string{"backupguard.io/backup-job": "true"}}}
	for i := range placementClaims {
		job.Spec.Template.Spec.Volumes = append(job.Spec.Template.Spec.Volumes, corev1.Volume{Name: fmt.Sprint(i),
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + strconv.Itoa(i)}}})
	}
	request := reviewRequest(b, metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, namespace, job)
	request.Operation = "CREATE"
	b.ReportAllocs()
	for b.Loop() {
		if response := placer.Handle(context.Background(), request); !response.Allowed || len(response.Patches) != 2 {
			b.Fatalf("want an affinity and a toleration patch, got %+v", response)
		}
	}
}
