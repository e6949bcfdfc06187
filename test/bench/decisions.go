package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
	"github.com/backupguard/backupguard/webhook"
)

// goBenchmark is one benchmark's result, from `go test -bench` or run here with testing.Benchmark.
type goBenchmark struct {
	Package, Name string
	// NsPerOp is the median over the runs; MinNs and MaxNs bound it.
	NsPerOp, MinNs, MaxNs   float64
	BytesPerOp, AllocsPerOp int64
	Runs                    int
}

// runPolicyBenchmarks runs the pure policy and offline benchmarks with `go test -bench`, count times
// each, and returns them merged by name.
func runPolicyBenchmarks(ctx context.Context, benchtime string, count int) ([]goBenchmark, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(count)}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	args = append(args, "./policies/...", "./offline/...")
	command := exec.CommandContext(ctx, "go", args...)
	command.Dir = cluster.RepoRoot()
	var stderr bytes.Buffer
	command.Stderr = &stderr
	out, err := command.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return parseGoBench(string(out))
}

// parseGoBench reads `go test -bench -benchmem` output: "pkg:" lines, then one line per run such as
// "BenchmarkX-2  1000  5612 ns/op  1234 B/op  12 allocs/op". Runs of the same benchmark are merged.
func parseGoBench(output string) ([]goBenchmark, error) {
	var benchmarks []goBenchmark
	samples := map[string][]float64{}
	index := map[string]int{}
	pkg := ""
	scanner := bufio.NewScanner(strings.NewReader(output))
	for scanner.Scan() {
		line := scanner.Text()
		if rest, found := strings.CutPrefix(line, "pkg: "); found {
			pkg = strings.TrimSpace(rest)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if dash := strings.LastIndex(name, "-"); dash > 0 {
			name = name[:dash]
		}
		result := goBenchmark{Package: pkg, Name: strings.TrimPrefix(name, "Benchmark")}
		for i := 2; i+1 < len(fields); i += 2 {
			value, unit := fields[i], fields[i+1]
			switch unit {
			case "ns/op":
				ns, err := strconv.ParseFloat(value, 64)
				if err != nil {
					return nil, fmt.Errorf("benchmark line %q: %w", line, err)
				}
				samples[pkg+"."+name] = append(samples[pkg+"."+name], ns)
			case "B/op":
				result.BytesPerOp, _ = strconv.ParseInt(value, 10, 64)
			case "allocs/op":
				result.AllocsPerOp, _ = strconv.ParseInt(value, 10, 64)
			}
		}
		if _, seen := index[pkg+"."+name]; !seen {
			index[pkg+"."+name] = len(benchmarks)
			benchmarks = append(benchmarks, result)
		}
	}
	for key, i := range index {
		benchmarks[i].NsPerOp, benchmarks[i].MinNs, benchmarks[i].MaxNs = medianOf(samples[key])
		benchmarks[i].Runs = len(samples[key])
		if benchmarks[i].Runs == 0 {
			return nil, fmt.Errorf("benchmark %s has no ns/op", key)
		}
	}
	if len(benchmarks) == 0 {
		return nil, fmt.Errorf("no benchmark results in the output:\n%s", output)
	}
	return benchmarks, nil
}

func medianOf(values []float64) (median, low, high float64) {
	if len(values) == 0 {
		return 0, 0, 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
}

// decisionBench is one webhook decision measured in this process over a cache of the whole cluster.
type decisionBench struct {
	Name    string
	Handler admission.Handler
	Request admission.Request
	// Check says what is wrong with an answer, or nil.
	Check func(admission.Response) error
}

// runDecisionBenchmarks measures each decision count times with testing.Benchmark (b.N fixed by
// benchtime, such as "3000x").
func runDecisionBenchmarks(decisions []decisionBench, count int) ([]goBenchmark, error) {
	var results []goBenchmark
	for _, decision := range decisions {
		if err := decision.Check(decision.Handler.Handle(context.Background(), decision.Request)); err != nil {
			return nil, fmt.Errorf("%s: %w", decision.Name, err)
		}
		var nanoseconds []float64
		var last testing.BenchmarkResult
		for range count {
			last = testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					decision.Handler.Handle(context.Background(), decision.Request)
				}
			})
			nanoseconds = append(nanoseconds, float64(last.T.Nanoseconds())/float64(max(last.N, 1)))
		}
		median, low, high := medianOf(nanoseconds)
		results = append(results, goBenchmark{Package: "test/bench (real cache)", Name: decision.Name, NsPerOp: median, MinNs: low, MaxNs: high,
			BytesPerOp: last.AllocedBytesPerOp(), AllocsPerOp: last.AllocsPerOp(), Runs: count})
	}
	return results, nil
}

// syncedCache is a controller-runtime cache configured as serve's, synced with the cluster; it stops
// with ctx.
func syncedCache(ctx context.Context, config *rest.Config) (cache.Cache, *lookup.PodIndex, error) {
	options := lookup.CacheOptions(longhornNamespace, ownNamespace)
	options.Scheme = newScheme()
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, nil, err
	}
	options.HTTPClient = httpClient
	if options.Mapper, err = lookup.NewRESTMapper(config, httpClient); err != nil {
		return nil, nil, err
	}
	informers, err := cache.New(config, options)
	if err != nil {
		return nil, nil, err
	}
	if err := lookup.AddIndexes(ctx, informers); err != nil {
		return nil, nil, err
	}
	pods, err := lookup.NewPodIndex(ctx, informers)
	if err != nil {
		return nil, nil, err
	}
	for _, object := range []client.Object{&corev1.PersistentVolumeClaim{}, &corev1.Namespace{}, &corev1.PersistentVolume{}, &longhorn.Volume{},
		&longhorn.RecurringJob{}, &longhorn.Setting{}, &storagev1.StorageClass{}, &corev1.Pod{}, &corev1.Node{}, &longhorn.Backup{}, &longhorn.BackupVolume{}} {
		if _, err := informers.GetInformer(ctx, object); err != nil {
			return nil, nil, err
		}
	}
	go func() { _ = informers.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if !informers.WaitForCacheSync(syncCtx) {
		return nil, nil, fmt.Errorf("the benchmark's cache did not sync")
	}
	return informers, pods, nil
}

// decisionBenches are the four webhook decisions over reader, on objects of the populated cluster: a
// PVC in a labelled namespace, the Volume of another PVC, a valid RecurringJob, and a backup Job over
// three ReadWriteOnce PVCs of one namespace.
func decisionBenches(reader client.Reader, pods lookup.PodsByClaim, config func() *policies.Config, pvcs []*corev1.PersistentVolumeClaim, claimsPerJob int) ([]decisionBench, error) {
	pvc := newPVCIn(pvcs[len(pvcs)/2].Namespace)
	volume, err := unlabelledVolumeOf(pvcs)
	if err != nil {
		return nil, err
	}
	requests := map[string]admission.Request{}
	add := func(name string, kind metav1.GroupVersionKind, namespace, operation string, object any) {
		if err != nil {
			return
		}
		var request admission.Request
		request, err = admissionRequest(kind, namespace, operation, object)
		requests[name] = request
	}
	add("pvc", metav1.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"}, pvc.Namespace, "CREATE", pvc)
	add("volume", metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "Volume"}, longhornNamespace, "UPDATE", volume)
	add("recurringjob", metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "RecurringJob"}, longhornNamespace, "CREATE", benchRecurringJob("bench-load"))
	add("job", metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, pvc.Namespace, "CREATE", backupJob(pvc.Namespace, claimsPerJob))
	if err != nil {
		return nil, err
	}
	return []decisionBench{
		{Name: "RecurringJobDecision", Handler: &webhook.RecurringJobValidator{Reader: reader, Config: config, Clock: clock.RealClock{}}, Request: requests["recurringjob"],
			Check: func(r admission.Response) error { return wantAllowed(r, 0) }},
		{Name: "PVCLabelDecision", Handler: &webhook.PVCLabeler{Reader: lookup.Cache{Client: reader}, Config: config}, Request: requests["pvc"],
			Check: func(r admission.Response) error { return wantAllowed(r, -1) }},
		{Name: "VolumeLabelDecision", Handler: &webhook.VolumeLabeler{Reader: lookup.Cache{Client: reader}}, Request: requests["volume"],
			Check: func(r admission.Response) error { return wantAllowed(r, -1) }},
		{Name: fmt.Sprintf("JobPlacement%dPVCs", claimsPerJob), Handler: &webhook.JobPlacer{Reader: lookup.Cache{Client: reader, Pods: pods}, Config: config}, Request: requests["job"],
			Check: func(r admission.Response) error { return wantAllowed(r, 2) }},
	}, nil
}

// wantAllowed checks a response allows with patches patch operations (-1: at least one).
func wantAllowed(response admission.Response, patches int) error {
	if !response.Allowed {
		return fmt.Errorf("denied: %+v", response.Result)
	}
	if patches < 0 && len(response.Patches) == 0 {
		return errors.New("want a patch, got none")
	}
	if patches >= 0 && len(response.Patches) != patches {
		return fmt.Errorf("want %d patch operations, got %+v", patches, response.Patches)
	}
	return nil
}

func admissionRequest(kind metav1.GroupVersionKind, namespace, operation string, object any) (admission.Request, error) {
	raw, err := json.Marshal(object)
	if err != nil {
		return admission.Request{}, err
	}
	request := admission.Request{}
	request.UID = "7d0ad4f4-6d5e-4c86-9d4c-0f4f1c0b5e01"
	request.Kind, request.Namespace, request.Operation = kind, namespace, admissionv1.Operation(operation)
	request.Object.Raw = raw
	return request, nil
}

func benchRecurringJob(name string) *longhorn.RecurringJob {
	job := &longhorn.RecurringJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: longhornNamespace},
		Spec:       longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "30 3 * * *", Retain: 7, Concurrency: 2, Groups: []string{"bench"}},
	}
	job.APIVersion, job.Kind = "longhorn.io/v1beta2", "RecurringJob"
	return job
}

// backupJob is a backup Job over the first claims PVCs of namespace.
func backupJob(namespace string, claims int) *batchv1.Job {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: namespace, Labels: map[string]string{"backupguard.io/backup-job": "true"}}}
	job.APIVersion, job.Kind = "batch/v1", "Job"
	job.Spec.Template.Spec.Containers = []corev1.Container{{Name: "restic", Image: "registry.example/restic:1"}}
	job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	for i := range claims {
		job.Spec.Template.Spec.Volumes = append(job.Spec.Template.Spec.Volumes, corev1.Volume{Name: fmt.Sprint("data-", i),
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + strconv.Itoa(i)}}})
	}
	return job
}

func jsonReview(request admissionv1.AdmissionRequest) ([]byte, error) {
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &request,
	})
}

// newPVCIn is a new, unlabelled database PVC in namespace: both label rules apply when the namespace
// is one the config selects.
func newPVCIn(namespace string) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "new-data", Namespace: namespace, Labels: map[string]string{"app": "postgres"}},
		Spec: pvcSpec("longhorn")}
	pvc.APIVersion, pvc.Kind = "v1", "PersistentVolumeClaim"
	return pvc
}

// unlabelledVolumeOf is the Volume of a PVC from the middle of pvcs that the label rules select, as
// Longhorn creates it: without labels, so the webhook copies the PVC's.
func unlabelledVolumeOf(pvcs []*corev1.PersistentVolumeClaim) (*longhorn.Volume, error) {
	for _, pvc := range append(pvcs[len(pvcs)/3:], pvcs[:len(pvcs)/3]...) {
		for label := range pvc.Labels {
			if strings.HasPrefix(label, longhorn.RecurringJobLabelPrefix) || strings.HasPrefix(label, longhorn.RecurringJobGroupLabelPrefix) {
				volume := &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID), Namespace: longhornNamespace}}
				volume.APIVersion, volume.Kind = "longhorn.io/v1beta2", "Volume"
				return volume, nil
			}
		}
	}
	return nil, errors.New("no PVC of the population carries a recurring-job label: did the webhook label them?")
}
