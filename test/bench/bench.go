package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
	"github.com/backupguard/backupguard/test/cluster"
	"github.com/backupguard/backupguard/webhook"
)

// benchCluster is the control plane the measurements share, with serve and the no-op server running.
type benchCluster struct {
	opts             options
	progress         io.Writer
	cluster          *cluster.Cluster
	config           *rest.Config
	kube             client.Client
	binary           string
	configPath       string
	guard            *cluster.Backupguard
	noop             *exec.Cmd
	noopURL          string
	tlsConfig        *tls.Config
	apiServerVersion string
	pvcs             []*corev1.PersistentVolumeClaim
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	return scheme
}

// startBench starts the control plane (no audit log, so it does not slow every request), serve with
// the bench config, and the no-op server on the same certificate.
func startBench(ctx context.Context, opts options, progress io.Writer) (*benchCluster, error) {
	fmt.Fprintln(progress, "bench: starting kube-apiserver and etcd")
	testCluster, err := cluster.StartWith(cluster.Options{NoAudit: true})
	if err != nil {
		return nil, err
	}
	bench := &benchCluster{opts: opts, progress: progress, cluster: testCluster}
	if err := bench.start(ctx); err != nil {
		bench.Stop()
		return nil, err
	}
	return bench, nil
}

func (b *benchCluster) start(ctx context.Context) error {
	var err error
	// The measurements drive the API server as hard as it goes; client-side throttling would hide it.
	b.config = rest.CopyConfig(b.cluster.Config)
	b.config.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	if b.kube, err = client.New(b.config, client.Options{Scheme: newScheme()}); err != nil {
		return err
	}
	version, err := discovery.NewDiscoveryClientForConfigOrDie(b.config).ServerVersion()
	if err != nil {
		return err
	}
	b.apiServerVersion = version.GitVersion
	if b.binary, err = cluster.BuildBackupguard(b.cluster.Dir); err != nil {
		return err
	}
	noopBinary := filepath.Join(b.cluster.Dir, "noopserver")
	build := exec.CommandContext(ctx, "go", "build", "-o", noopBinary, "./test/bench/noopserver")
	build.Dir = cluster.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./test/bench/noopserver: %w\n%s", err, out)
	}
	for _, namespace := range []string{longhornNamespace, ownNamespace} {
		if err := b.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			return err
		}
	}
	b.configPath = filepath.Join(b.cluster.Dir, "config.yaml")
	if err := os.WriteFile(b.configPath, []byte(benchConfig), 0o600); err != nil {
		return err
	}
	if b.guard, err = b.cluster.StartBackupguard(ctx, b.binary, b.configPath); err != nil {
		return err
	}
	for _, object := range []client.Object{
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: "driver.longhorn.io"},
		&longhorn.RecurringJob{
			ObjectMeta: metav1.ObjectMeta{Name: "bench-daily", Namespace: longhornNamespace},
			Spec:       longhorn.RecurringJobSpec{Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7, Groups: []string{"bench-critical"}},
		},
	} {
		if err := b.kube.Create(ctx, object); err != nil {
			return err
		}
	}
	install := b.cluster.Env.WebhookInstallOptions
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(install.LocalServingCAData) {
		return errors.New("the webhook CA from envtest does not parse")
	}
	b.tlsConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return b.startNoop(ctx, noopBinary, install.LocalServingCertDir)
}

// startNoop runs the no-op server on a free loopback port and waits until it answers.
func (b *benchCluster) startNoop(ctx context.Context, binary, certDir string) error {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	logFile, err := os.Create(filepath.Join(b.cluster.Dir, "noopserver.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the process holds its own descriptor
	b.noop = exec.Command(binary, "--cert-dir", certDir, "--port", strconv.Itoa(port))
	b.noop.Stdout, b.noop.Stderr = logFile, logFile
	if err := b.noop.Start(); err != nil {
		return err
	}
	b.noopURL = fmt.Sprintf("https://127.0.0.1:%d/noop", port)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: b.tlsConfig}, Timeout: time.Second}
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"}}`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := post(client, b.noopURL, body); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the no-op server did not answer within 30s: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends serve, the no-op server and the control plane.
func (b *benchCluster) Stop() {
	if b.noop != nil && b.noop.Process != nil {
		_ = b.noop.Process.Signal(os.Interrupt)
		_ = b.noop.Wait()
	}
	if b.guard != nil {
		b.guard.Stop()
	}
	_ = b.cluster.Stop()
}

func (b *benchCluster) populate(ctx context.Context, _ *results) error {
	var err error
	b.pvcs, err = populate(ctx, b.kube, b.opts.Size, b.opts.Writers, time.Now(), b.progress)
	return err
}

// measureServe restarts serve as shipped (the coverage report on) over the populated cluster and
// records how soon it is ready, its memory once its caches have synced and once the label sync has
// checked every PVC and Volume and the first coverage report ran, and what the sync wrote (nothing:
// everything was labelled at create).
func (b *benchCluster) measureServe(ctx context.Context, result *results) error {
	var err error
	result.Serve, err = b.startServeMeasured(ctx, true)
	return err
}

// measureServeWithoutCoverage measures serve the same way with the coverage report off, so the report
// shows what the report and its metrics cost the leader.
func (b *benchCluster) measureServeWithoutCoverage(ctx context.Context, result *results) error {
	var err error
	result.ServeWithoutCoverage, err = b.startServeMeasured(ctx, false, "--coverage-interval=0")
	return err
}

// startServeMeasured restarts serve with extraArgs and measures it until the label sync has checked
// every PVC and Volume and, when coverage is on, the coverage report has run.
func (b *benchCluster) startServeMeasured(ctx context.Context, coverage bool, extraArgs ...string) (serveMeasurement, error) {
	if b.guard != nil {
		b.guard.Stop()
		b.guard = nil
	}
	start := time.Now()
	if err := b.restartServe(ctx, extraArgs...); err != nil {
		return serveMeasurement{}, err
	}
	guard := b.guard
	measured := serveMeasurement{Scale: b.opts.Size.String(), ReadyAfter: time.Since(start)}
	var err error
	if measured.RSSAtReady, _, err = processMemory(guard.PID()); err != nil {
		return measured, err
	}
	if measured.HeapLiveAtReady, err = heapLive(guard.MetricsURL); err != nil {
		return measured, err
	}
	total := b.opts.Size.PVCs()
	for {
		metrics, err := scrape(guard.MetricsURL)
		if err != nil {
			return measured, err
		}
		pvcs := int(metrics[`controller_runtime_reconcile_total{controller="pvc-labels",result="success"}`])
		volumes := int(metrics[`controller_runtime_reconcile_total{controller="volume-labels",result="success"}`])
		if measured.SyncCheckedAfter == 0 && pvcs >= total && volumes >= total {
			measured.SyncCheckedAfter = time.Since(start)
			measured.SyncWrites = int(metrics[`backupguard_label_sync_changes_total{kind="PersistentVolumeClaim",result="patched"}`] +
				metrics[`backupguard_label_sync_changes_total{kind="Volume",result="patched"}`])
		}
		if coverage && measured.CoverageReportedAfter == 0 && metrics["backupguard_coverage_last_report_timestamp_seconds"] > 0 {
			measured.CoverageReportedAfter = time.Since(start)
		}
		if measured.SyncCheckedAfter > 0 && (!coverage || measured.CoverageReportedAfter > 0) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return measured, fmt.Errorf("in 10 minutes, the label sync checked %d PVCs and %d Volumes of %d; the coverage report ran after %s", pvcs, volumes, total, measured.CoverageReportedAfter)
		}
		select {
		case <-ctx.Done():
			return measured, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if measured.RSSAfterSync, measured.PeakRSS, err = processMemory(guard.PID()); err != nil {
		return measured, err
	}
	if measured.HeapLiveAfterSync, err = heapLive(guard.MetricsURL); err != nil {
		return measured, err
	}
	fmt.Fprintf(b.progress, "bench: serve %s: ready after %s with RSS %s and live heap %s; sync and report done after %s, %s: RSS %s, peak %s, live heap %s\n",
		strings.Join(extraArgs, " "), formatDuration(measured.ReadyAfter), mebibytes(measured.RSSAtReady), mebibytes(measured.HeapLiveAtReady),
		formatDuration(measured.SyncCheckedAfter), formatDuration(measured.CoverageReportedAfter), mebibytes(measured.RSSAfterSync), mebibytes(measured.PeakRSS), mebibytes(measured.HeapLiveAfterSync))
	return measured, nil
}

// restartServe replaces the running serve, if any, with one started with extraArgs.
func (b *benchCluster) restartServe(ctx context.Context, extraArgs ...string) error {
	if b.guard != nil {
		b.guard.Stop()
		b.guard = nil
	}
	guard, err := b.cluster.StartBackupguard(ctx, b.binary, b.configPath, extraArgs...)
	if err != nil {
		return err
	}
	b.guard = guard
	return nil
}

// processMemory reads a process's resident set now and at its peak, in bytes.
func processMemory(pid int) (rss, peak int64, err error) {
	file, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		kilobytes, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		switch fields[0] {
		case "VmRSS:":
			rss = kilobytes * 1024
		case "VmHWM:":
			peak = kilobytes * 1024
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS or VmHWM", pid)
	}
	return rss, peak, scanner.Err()
}

// heapLive is the Go heap that the last garbage collection found reachable, from serve's metrics.
func heapLive(metricsURL string) (int64, error) {
	metrics, err := scrape(metricsURL)
	if err != nil {
		return 0, err
	}
	live, found := metrics["go_gc_heap_live_bytes"]
	if !found {
		return 0, fmt.Errorf("%s has no go_gc_heap_live_bytes", metricsURL)
	}
	return int64(live), nil
}

// scrape reads a Prometheus text endpoint into sample → value.
func scrape(url string) (map[string]float64, error) {
	response, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	samples := map[string]float64{}
	scanner := bufio.NewScanner(response.Body)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			continue
		}
		value, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			continue
		}
		samples[line[:cut]] = value
	}
	return samples, scanner.Err()
}

func (b *benchCluster) measureDecisions(ctx context.Context, result *results) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the cache goes before the load runs, which need the CPU
	informers, pods, err := syncedCache(ctx, b.config)
	if err != nil {
		return err
	}
	config, err := policies.ParseConfig([]byte(benchConfig), "config.yaml")
	if err != nil {
		return err
	}
	decisions, err := decisionBenches(informers, pods, func() *policies.Config { return config }, b.pvcs, b.opts.ClaimsPerJob)
	if err != nil {
		return err
	}
	if err := flag.Set("test.benchtime", b.opts.DecisionBenchtime); err != nil {
		return err
	}
	result.Decisions, err = runDecisionBenchmarks(decisions, b.opts.DecisionCount)
	return err
}

// measureLoad runs every endpoint and the no-op ceiling at each load level, in rounds: within a round
// they run one after another, and each result merges its rounds, so a drift of the machine does not
// favour one of them.
func (b *benchCluster) measureLoad(ctx context.Context, result *results) error {
	targets, err := b.loadTargets()
	if err != nil {
		return err
	}
	for _, connections := range b.opts.Connections {
		runs := make([][]LoadResult, len(targets))
		samples := make([][]time.Duration, len(targets))
		for range max(b.opts.Load.Rounds, 1) {
			for i, target := range targets {
				load, latencies, err := runLoad(ctx, target, b.tlsConfig, connections, b.opts.Load)
				if err != nil {
					return err
				}
				runs[i] = append(runs[i], load)
				samples[i] = append(samples[i], latencies...)
			}
		}
		for i := range targets {
			load := mergeLoads(runs[i], samples[i])
			fmt.Fprintf(b.progress, "bench: %-13s %4d connections: %8.0f req/s, p50 %s, p99 %s, p99.9 %s, server CPU %s/request\n", load.Endpoint, connections,
				load.RequestsPerSecond(), load.Latency.P50, load.Latency.P99, load.Latency.P999, load.CPUPerRequest())
			result.Load = append(result.Load, load)
		}
	}
	return nil
}

// Names of the load targets, as the report shows them.
const (
	noopEndpoint         = "no-op"
	recurringJobEndpoint = "recurringjobs"
	pvcEndpoint          = "pvcs"
	volumeEndpoint       = "volumes"
	jobEndpoint          = "jobs"
)

// loadTargets are the AdmissionReviews an API server would send for: a new PVC in a namespace a rule
// selects (labels added), a Longhorn Volume of a scale PVC (labels copied), a valid RecurringJob (the
// window check included) and a backup Job over three RWO PVCs (placement patched); the no-op server
// gets the PVC's.
func (b *benchCluster) loadTargets() ([]loadTarget, error) {
	guardURL := fmt.Sprintf("https://%s:%d", b.cluster.Env.WebhookInstallOptions.LocalServingHost, b.cluster.Env.WebhookInstallOptions.LocalServingPort)
	sample := b.pvcs[len(b.pvcs)/2]
	newPVC := newPVCIn(sample.Namespace)
	volume, err := unlabelledVolumeOf(b.pvcs)
	if err != nil {
		return nil, err
	}
	type spec struct {
		name, url string
		kind      metav1.GroupVersionKind
		resource  metav1.GroupVersionResource
		namespace string
		object    any
		patched   bool
	}
	pvcKind, pvcResource := metav1.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"}, metav1.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	specs := []spec{
		{noopEndpoint, b.noopURL, pvcKind, pvcResource, newPVC.Namespace, newPVC, false},
		{recurringJobEndpoint, guardURL + webhook.RecurringJobPath, metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "RecurringJob"},
			metav1.GroupVersionResource{Group: "longhorn.io", Version: "v1beta2", Resource: "recurringjobs"}, longhornNamespace, benchRecurringJob("bench-load"), false},
		{pvcEndpoint, guardURL + webhook.PVCPath, pvcKind, pvcResource, newPVC.Namespace, newPVC, true},
		{volumeEndpoint, guardURL + webhook.VolumePath, metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "Volume"},
			metav1.GroupVersionResource{Group: "longhorn.io", Version: "v1beta2", Resource: "volumes"}, longhornNamespace, volume, true},
		{jobEndpoint, guardURL + webhook.JobPath, metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
			metav1.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, sample.Namespace, backupJob(sample.Namespace, b.opts.ClaimsPerJob), true},
	}
	var targets []loadTarget
	for _, s := range specs {
		request, err := admissionRequest(s.kind, s.namespace, "CREATE", s.object)
		if err != nil {
			return nil, err
		}
		request.Resource = s.resource
		request.UserInfo.Username = "kubernetes-admin"
		body, err := jsonReview(request.AdmissionRequest)
		if err != nil {
			return nil, err
		}
		uid, patched := request.UID, s.patched
		pid := b.guard.PID()
		if s.name == noopEndpoint {
			pid = b.noop.Process.Pid
		}
		targets = append(targets, loadTarget{Name: s.name, URL: s.url, Body: body, ServerPID: pid, Check: func(review *admissionv1.AdmissionReview) error {
			response := review.Response
			switch {
			case response.UID != uid:
				return fmt.Errorf("answer for uid %q, want %q", response.UID, uid)
			case !response.Allowed:
				return fmt.Errorf("denied: %+v", response.Result)
			case patched && len(response.Patch) == 0:
				return errors.New("allowed without the expected patch")
			case !patched && len(response.Patch) > 0:
				return fmt.Errorf("unexpected patch %s", response.Patch)
			}
			return nil
		}})
	}
	return targets, nil
}
