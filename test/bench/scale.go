package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
)

// scaleSize is how much the cluster holds while serve is measured.
type scaleSize struct {
	Namespaces, PVCsPerNamespace, PodsPerPVC, Nodes int
	// BackupsPerVolume are the Backups each Volume has, one a day; each Volume also has its BackupVolume.
	BackupsPerVolume int
}

// fullScale is what the issues name: 10,000 PVCs in 1,000 Namespaces, 10,000 Volumes, 50,000 Pods and
// 2,000 Nodes; and the Backups of the Volumes: three days of a daily job.
var fullScale = scaleSize{Namespaces: 1000, PVCsPerNamespace: 10, PodsPerPVC: 5, Nodes: 2000, BackupsPerVolume: 3}

func (s scaleSize) PVCs() int    { return s.Namespaces * s.PVCsPerNamespace }
func (s scaleSize) Pods() int    { return s.PVCs() * s.PodsPerPVC }
func (s scaleSize) Backups() int { return s.PVCs() * s.BackupsPerVolume }

func (s scaleSize) String() string {
	return fmt.Sprintf("%d PVCs, %d Pods, %d Volumes, %d Backups and %d BackupVolumes, %d Nodes, %d Namespaces",
		s.PVCs(), s.Pods(), s.PVCs(), s.Backups(), s.PVCs(), s.Nodes, s.Namespaces)
}

// scaleNamespace names the n-th scale namespace; even ones carry the label the config's rule selects.
func scaleNamespace(n int) string { return fmt.Sprintf("scale-%04d", n) }

func scaleNode(n int) string { return fmt.Sprintf("scale-node-%04d", n) }

// populate creates the scale objects through the API server, with serve's webhooks in the path, so
// they are labelled as in a cluster where backupguard runs. Each namespace's pods run on one node, so a
// backup Job over its PVCs can be placed. Each Volume has the Backups of a daily job up to now, as
// Longhorn leaves them (see scaleBackups). It returns the PVCs as created.
func populate(ctx context.Context, kube client.Client, size scaleSize, writers int, now time.Time, progress io.Writer) ([]*corev1.PersistentVolumeClaim, error) {
	start := time.Now()
	step := func(what string, count int, create func(int) error) error {
		if err := parallel(ctx, writers, count, create); err != nil {
			return fmt.Errorf("creating %s: %w", what, err)
		}
		fmt.Fprintf(progress, "bench: %d %s created (%s so far)\n", count, what, time.Since(start).Round(time.Second))
		return nil
	}
	if err := step("Nodes", size.Nodes, func(n int) error {
		return kube.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: scaleNode(n), Labels: map[string]string{corev1.LabelHostname: scaleNode(n)}},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "dedicated", Value: strconv.Itoa(n % 7), Effect: corev1.TaintEffectNoSchedule}}}})
	}); err != nil {
		return nil, err
	}
	if err := step("Namespaces", size.Namespaces, func(n int) error {
		labels := map[string]string{}
		if n%2 == 0 {
			labels["backup"] = "daily"
		}
		return kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scaleNamespace(n), Labels: labels}})
	}); err != nil {
		return nil, err
	}
	pvcs := make([]*corev1.PersistentVolumeClaim, size.PVCs())
	if err := step("PVCs (Bound) and their Volumes", size.PVCs(), func(n int) error {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data-" + strconv.Itoa(n%size.PVCsPerNamespace), Namespace: scaleNamespace(n / size.PVCsPerNamespace)},
			Spec:       pvcSpec("longhorn"),
		}
		if n%3 == 0 {
			pvc.Labels = map[string]string{"app": "postgres"}
		}
		if err := kube.Create(ctx, pvc); err != nil {
			return err
		}
		if err := kube.Create(ctx, &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID), Namespace: longhornNamespace}}); err != nil {
			return err
		}
		// Placement only considers Bound claims.
		pvc.Status.Phase = corev1.ClaimBound
		if err := kube.Status().Update(ctx, pvc); err != nil {
			return err
		}
		pvcs[n] = pvc
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step(fmt.Sprintf("BackupVolumes with %d Backups each", size.BackupsPerVolume), size.PVCs(), func(n int) error {
		for _, object := range scaleBackups(n, "pvc-"+string(pvcs[n].UID), size.BackupsPerVolume, now) {
			status := object.Object["status"]
			if err := kube.Create(ctx, object); err != nil {
				return err
			}
			// Status is a subresource: a create leaves it out.
			object.Object["status"] = status
			if err := kube.Status().Update(ctx, object); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("Running Pods", size.Pods(), func(n int) error {
		pvc := pvcs[n/size.PodsPerPVC]
		namespaceNumber := n / size.PodsPerPVC / size.PVCsPerNamespace
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", pvc.Name, n%size.PodsPerPVC), Namespace: pvc.Namespace},
			Spec: corev1.PodSpec{
				NodeName:   scaleNode(namespaceNumber % size.Nodes),
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: pvc.Name, ReadOnly: n%size.PodsPerPVC != 0}}}},
			},
		}
		if err := kube.Create(ctx, pod); err != nil {
			return err
		}
		pod.Status.Phase = corev1.PodRunning
		return kube.Status().Update(ctx, pod)
	}); err != nil {
		return nil, err
	}
	return pvcs, nil
}

// parallel calls do for 0..count-1 from writers goroutines and returns the first error.
func parallel(ctx context.Context, writers, count int, do func(int) error) error {
	work := make(chan int)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := do(n); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for n := range count {
		if ctx.Err() != nil {
			break
		}
		work <- n
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func pvcSpec(storageClass string) corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: &storageClass,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
}
