package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// admissionLatency is what creating one kind through the kube-apiserver took, without and with
// backupguard's webhooks registered.
type admissionLatency struct {
	Kind        string
	Concurrency int
	Requests    int
	Without     Latency
	With        Latency
}

// webhookCalls is the kube-apiserver's own account of its calls to one webhook
// (apiserver_admission_webhook_admission_duration_seconds: the whole call, from building the
// AdmissionReview to applying the answer), while creates ran Concurrency at a time.
type webhookCalls struct {
	Name                       string
	Concurrency                int
	Calls, Under5ms, Under25ms float64
}

// webhookOfKind is the webhook that admits creates of kind.
var webhookOfKind = map[string]string{"PersistentVolumeClaim": "pvcs.backupguard.io", "RecurringJob": "recurringjobs.backupguard.io"}

const e2eNamespaces = 10

// measureAdmissionLatency creates PVCs (in namespaces a label rule selects) and RecurringJobs through
// the API server, the same number at the same concurrency with and without the webhook configurations,
// in alternating rounds so that a slow drift of etcd or the machine falls on both sides. It runs once
// per concurrency: one at a time shows the latency a webhook call adds, more at a time what it adds on
// a machine the API server and etcd already keep busy. serve runs with its label sync off meanwhile:
// the PVCs created without the webhooks would otherwise be patched by it during the next rounds.
func (b *benchCluster) measureAdmissionLatency(ctx context.Context, result *results) error {
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	for _, object := range []client.Object{mutating, validating} {
		if err := b.kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, object); err != nil {
			return fmt.Errorf("reading the installed webhook configuration: %w", err)
		}
	}
	if err := b.restartServe(ctx, "--sync=off"); err != nil {
		return err
	}
	for n := range e2eNamespaces {
		if err := b.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-e2e-%02d", n), Labels: map[string]string{"backup": "daily"}}}); err != nil {
			return err
		}
	}
	for _, concurrency := range b.opts.E2EConcurrencies {
		before, err := b.webhookCalls(ctx)
		if err != nil {
			return err
		}
		samples := map[string]map[bool][]time.Duration{"PersistentVolumeClaim": {}, "RecurringJob": {}}
		rounds := b.opts.E2ERounds
		for round := range rounds {
			for _, registered := range []bool{round%2 == 1, round%2 == 0} {
				if err := b.setWebhooks(ctx, registered, mutating, validating); err != nil {
					return err
				}
				prefix := fmt.Sprintf("%s-c%d-r%d", map[bool]string{true: "with", false: "without"}[registered], concurrency, round)
				pvcs, err := b.timeCreates(ctx, concurrency, b.opts.E2EPVCs/rounds, func(n int) client.Object {
					return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%04d", prefix, n),
						Namespace: fmt.Sprintf("bench-e2e-%02d", n%e2eNamespaces), Labels: map[string]string{"app": "postgres"}}, Spec: pvcSpec("longhorn")}
				})
				if err != nil {
					return err
				}
				jobs, err := b.timeCreates(ctx, concurrency, b.opts.E2ERecurringJobs/rounds, func(n int) client.Object {
					return benchRecurringJob(fmt.Sprintf("%s-%04d", prefix, n))
				})
				if err != nil {
					return err
				}
				samples["PersistentVolumeClaim"][registered] = append(samples["PersistentVolumeClaim"][registered], pvcs...)
				samples["RecurringJob"][registered] = append(samples["RecurringJob"][registered], jobs...)
			}
		}
		for _, kind := range []string{"PersistentVolumeClaim", "RecurringJob"} {
			result.Admission = append(result.Admission, admissionLatency{Kind: kind, Concurrency: concurrency, Requests: len(samples[kind][true]),
				Without: summarise(samples[kind][false]), With: summarise(samples[kind][true])})
		}
		after, err := b.webhookCalls(ctx)
		if err != nil {
			return err
		}
		for _, name := range []string{webhookOfKind["PersistentVolumeClaim"], webhookOfKind["RecurringJob"]} {
			result.WebhookCalls = append(result.WebhookCalls, webhookCalls{Name: name, Concurrency: concurrency,
				Calls: after[name].Calls - before[name].Calls, Under5ms: after[name].Under5ms - before[name].Under5ms,
				Under25ms: after[name].Under25ms - before[name].Under25ms})
		}
	}
	return b.setWebhooks(ctx, true, mutating, validating)
}

// timeCreates creates count objects, concurrency at a time, and returns how long each create took.
func (b *benchCluster) timeCreates(ctx context.Context, concurrency, count int, object func(int) client.Object) ([]time.Duration, error) {
	latencies := make([]time.Duration, count)
	err := parallel(ctx, concurrency, count, func(n int) error {
		created := object(n)
		start := time.Now()
		err := b.kube.Create(ctx, created)
		latencies[n] = time.Since(start)
		return err
	})
	return latencies, err
}

// setWebhooks registers or removes backupguard's webhook configurations and waits until the API server
// acts on the change: a dry-run RecurringJob with CRON_TZ is denied exactly when they are registered,
// and a dry-run PVC in a selected namespace comes back labelled exactly then.
func (b *benchCluster) setWebhooks(ctx context.Context, registered bool, mutating *admissionregistrationv1.MutatingWebhookConfiguration,
	validating *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	for _, object := range []client.Object{mutating, validating} {
		current := object.DeepCopyObject().(client.Object)
		var err error
		if registered {
			current.SetResourceVersion("")
			current.SetUID("")
			current.SetCreationTimestamp(metav1.Time{})
			current.SetManagedFields(nil)
			err = client.IgnoreAlreadyExists(b.kube.Create(ctx, current))
		} else {
			err = client.IgnoreNotFound(b.kube.Delete(ctx, current))
		}
		if err != nil {
			return fmt.Errorf("setting the webhook configurations to registered=%v: %w", registered, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		job := benchRecurringJob("probe")
		job.Spec.Cron = "CRON_TZ=Europe/Berlin 0 2 * * *"
		jobErr := b.kube.Create(ctx, job, client.DryRunAll)
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "bench-e2e-00"}, Spec: pvcSpec("longhorn")}
		pvcErr := b.kube.Create(ctx, pvc, client.DryRunAll)
		if pvcErr != nil {
			return fmt.Errorf("dry-run PVC: %w", pvcErr)
		}
		validatingActive := apierrors.IsInvalid(jobErr) || apierrors.IsForbidden(jobErr)
		if jobErr != nil && !validatingActive {
			return fmt.Errorf("dry-run RecurringJob: %w", jobErr)
		}
		mutatingActive := len(pvc.Labels) > 0
		if validatingActive == registered && mutatingActive == registered {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not act on registered=%v within 30s (validating active: %v, mutating active: %v)", registered, validatingActive, mutatingActive)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// webhookCalls reads the API server's histogram of its calls to backupguard's webhooks so far, by
// webhook name.
func (b *benchCluster) webhookCalls(ctx context.Context) (map[string]webhookCalls, error) {
	clientset, err := kubernetes.NewForConfig(b.config)
	if err != nil {
		return nil, err
	}
	raw, err := clientset.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	byName := map[string]webhookCalls{}
	for _, line := range strings.Split(string(raw), "\n") {
		labels, found := strings.CutPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_bucket{")
		if !found {
			continue
		}
		name := labelValue(labels, "name")
		if !strings.HasSuffix(name, ".backupguard.io") {
			continue
		}
		var value float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &value); err != nil {
			return nil, fmt.Errorf("API server metric line %q: %w", line, err)
		}
		calls := byName[name]
		calls.Name = name
		switch labelValue(labels, "le") {
		case "+Inf":
			calls.Calls += value
		case "0.005":
			calls.Under5ms += value
		case "0.025":
			calls.Under25ms += value
		}
		byName[name] = calls
	}
	return byName, nil
}

// labelValue is the value of label name in a Prometheus label list such as `a="x",name="y",le="z"}`.
func labelValue(labels, name string) string {
	start := -1
	if strings.HasPrefix(labels, name+`="`) {
		start = len(name) + 2
	} else if at := strings.Index(labels, ","+name+`="`); at >= 0 {
		start = at + len(name) + 3
	}
	if start < 0 {
		return ""
	}
	value, _, _ := strings.Cut(labels[start:], `"`)
	return value
}

// validateMeasurement is `backupguard validate` over a generated tree of documents.
type validateMeasurement struct {
	Documents int
	Runs      []time.Duration
	Median    time.Duration
}

// measureValidate times the real binary over ValidateDocuments documents: RecurringJobs and the PVCs,
// with their Namespaces, that the label rules select.
func (b *benchCluster) measureValidate(ctx context.Context, result *results) error {
	path := filepath.Join(b.cluster.Dir, "validate-documents.yaml")
	if err := os.WriteFile(path, validateDocuments(b.opts.ValidateDocuments), 0o600); err != nil {
		return err
	}
	measured := validateMeasurement{Documents: b.opts.ValidateDocuments}
	for range b.opts.ValidateRuns {
		command := exec.CommandContext(ctx, b.binary, "validate", "--config", b.configPath, "-o", "json", path)
		var stdout, stderr bytes.Buffer
		command.Stdout, command.Stderr = &stdout, &stderr
		start := time.Now()
		err := command.Run()
		measured.Runs = append(measured.Runs, time.Since(start))
		if err != nil {
			return fmt.Errorf("backupguard validate %s: %w\n%s", path, err, stderr.String())
		}
	}
	sorted := slices.Clone(measured.Runs)
	slices.Sort(sorted)
	measured.Median = sorted[len(sorted)/2]
	result.Validate = measured
	return nil
}

// validateDocuments is count YAML documents: a quarter RecurringJobs, the rest PVCs in Namespaces of
// 50 PVCs each (a Namespace document counts as one of them).
func validateDocuments(count int) []byte {
	var out bytes.Buffer
	for n := range count {
		if n > 0 {
			out.WriteString("---\n")
		}
		namespace := fmt.Sprintf("team-%03d", n/200)
		switch {
		case n%200 == 0:
			fmt.Fprintf(&out, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    backup: daily\n", namespace)
		case n%4 == 0:
			fmt.Fprintf(&out, "apiVersion: longhorn.io/v1beta2\nkind: RecurringJob\nmetadata:\n  name: job-%05d\n  namespace: longhorn-system\n"+
				"spec:\n  task: backup\n  cron: \"30 3 * * *\"\n  retain: 7\n  concurrency: 2\n  groups: [bench]\n", n)
		default:
			fmt.Fprintf(&out, "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data-%05d\n  namespace: %s\n  labels:\n    app: postgres\n"+
				"spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: longhorn\n  resources:\n    requests:\n      storage: 1Gi\n", n, namespace)
		}
	}
	return out.Bytes()
}
