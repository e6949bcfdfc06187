// Package network proves the S3 window on a real NetworkPolicy engine: kube-router's network policy
// controller (what k3s enforces policies with) in a network of the test's own namespaces (test/netlab),
// with the real WindowController on a fake clock writing the policies, stand-in Longhorn pods polling
// the object store, the kube-apiserver and DNS, and an object store that counts what reaches it.
package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
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
	"github.com/backupguard/backupguard/test/netlab"
)

func TestMain(m *testing.M) {
	if os.Getenv(netlab.RoleEnv) != "" {
		os.Exit(netlab.RunRole())
	}
	os.Exit(m.Run())
}

// insideEnv marks the run of this test binary inside the lab's node namespace; its value is the lab.
const insideEnv = "BACKUPGUARD_NETLAB_INSIDE"

// lab is what the outer run hands the inner one.
type lab struct {
	Network    *netlab.Network `json:"network"`
	Dir        string          `json:"dir"`
	KubeRouter string          `json:"kubeRouter"`
}

const (
	longhornNamespace = "longhorn-system"
	ownNamespace      = "backupguard-system"
	// enforcementBound is the most a transition may take, from the controller's write to the first
	// new connection refused (closing) or accepted (opening); kube-router took 0.5-1.3 s in the
	// feasibility run.
	enforcementBound = 3 * time.Second
	// convergeTimeout bounds every real-time wait for the network or the controller.
	convergeTimeout = 10 * time.Second
	// dwell is how long traffic is observed in each state.
	dwell = 2 * time.Second
)

// standIns are the Longhorn pods that talk to the object store, with the window target that fences each.
var standIns = []struct {
	spec   netlab.PodSpec
	policy string
}{
	{netlab.PodSpec{Name: "longhorn-manager-netlab", Labels: map[string]string{"app": "longhorn-manager"}}, "backupguard-egress-longhorn-manager"},
	{netlab.PodSpec{Name: "instance-manager-netlab", Labels: map[string]string{"longhorn.io/component": "instance-manager"}}, "backupguard-egress-instance-manager"},
}

// TestWindowOnKubeRouter builds the lab from the machine's namespace, then runs itself again inside
// the lab's node namespace, where the control plane, kube-router and the window controller run.
func TestWindowOnKubeRouter(t *testing.T) {
	var specs []netlab.PodSpec
	for _, standIn := range standIns {
		specs = append(specs, standIn.spec)
	}
	inLab(t, "TestWindowOnKubeRouter", specs, runInside)
}

// inLab builds a lab with the given stand-in pods from the machine's namespace, then runs the test
// named test again inside the lab's node namespace, where it calls inside.
func inLab(t *testing.T, test string, specs []netlab.PodSpec, inside func(*testing.T, lab)) {
	if encoded := os.Getenv(insideEnv); encoded != "" {
		var l lab
		if err := json.Unmarshal([]byte(encoded), &l); err != nil {
			t.Fatal(err)
		}
		inside(t, l)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("the network test creates network namespaces and needs root")
	}
	tools, err := cluster.ToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	kubeRouter, err := netlab.KubeRouterDir(cluster.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	network, err := netlab.Create(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.Close(); err != nil {
			t.Errorf("deleting the lab's namespaces: %v", err)
		}
	})
	encoded, err := json.Marshal(lab{Network: network, Dir: t.TempDir(), KubeRouter: kubeRouter})
	if err != nil {
		t.Fatal(err)
	}
	executable, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	command := netlab.Command(network.Node, executable, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	command.Env = append(os.Environ(), insideEnv+"="+string(encoded), "BACKUPGUARD_TOOLS_DIR="+tools)
	out, err := command.CombinedOutput()
	if err != nil {
		t.Fatalf("the run inside the node namespace %s failed: %v\n%s", network.Node, err, out)
	}
	// On success, the figures without the controllers' log lines.
	var kept []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if !strings.Contains(line, `"level"=`) {
			kept = append(kept, line)
		}
	}
	t.Logf("inside the lab's node namespace %s:\n%s", network.Node, strings.Join(kept, "\n"))
}

// runInside is the test proper, in the node namespace.
// labControlPlane is what runs in the node namespace: the control plane, DNS, kube-router and the
// object store.
type labControlPlane struct {
	c          *cluster.Cluster
	apiPort    string
	scheme     *runtime.Scheme
	kube       client.WithWatch
	kubeRouter *netlab.Process
	storeLog   string
}

// startControlPlane starts, in the node namespace, the kube-apiserver (its ClusterIP DNATed), the
// Node and a running Pod object per stand-in in pods, DNS, kube-router and the object store; all stop
// when the test ends.
func startControlPlane(t *testing.T, l lab, pods []*netlab.Pod) *labControlPlane {
	ctrl.SetLogger(testr.New(t))
	c, err := cluster.StartWith(cluster.Options{
		APIServerAddress: netlab.NodeAddress, APIServerPort: netlab.APIServerPort, NoWebhooks: true, NoAudit: true,
		APIServerArgs: map[string]string{"service-cluster-ip-range": netlab.ServiceCIDR},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l.Dir)
		}
	})
	apiURL, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	apiPort := apiURL.Port()
	if err := netlab.DNATKubernetesService(apiPort); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver at %s, reached through the ClusterIP %s:443 too", apiURL.Host, netlab.KubernetesClusterIP)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = longhorn.AddToScheme(scheme)
	kube, err := client.NewWithWatch(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	createNodeAndPods(t, kube, pods)

	dnsCtx, stopDNS := context.WithCancel(context.Background())
	t.Cleanup(stopDNS)
	if err := netlab.ServeDNS(dnsCtx); err != nil {
		t.Fatal(err)
	}
	kubeRouter, err := netlab.StartKubeRouter(l.KubeRouter, c.Kubeconfig, filepath.Join(l.Dir, "kube-router.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubeRouter.Stop)

	storeLog := filepath.Join(l.Dir, "store.jsonl")
	store, err := netlab.StartRole(l.Network.Outside, netlab.Role{Kind: "store", Name: "store", Log: storeLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Stop)
	return &labControlPlane{c: c, apiPort: apiPort, scheme: scheme, kube: kube, kubeRouter: kubeRouter, storeLog: storeLog}
}

func runInside(t *testing.T, l lab) {
	ctx := context.Background()
	lp := startControlPlane(t, l, l.Network.Pods)
	c, apiPort, scheme, kube, storeLog := lp.c, lp.apiPort, lp.scheme, lp.kube, lp.storeLog
	logs := map[string]string{}
	for _, pod := range l.Network.Pods {
		logs[pod.Name] = filepath.Join(l.Dir, pod.Name+".jsonl")
		process, err := netlab.StartRole(pod.Namespace, netlab.Role{Kind: "standin", Name: pod.Name, Log: logs[pod.Name],
			APIServer: net.JoinHostPort(netlab.NodeAddress, apiPort), Interval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(process.Stop)
	}
	r := &recorder{t: t, logs: logs, storeLog: storeLog, pods: l.Network.Pods}
	r.watch(ctx, kube)

	// Before any window: no policy, everything flows, and each keep-alive client holds a connection.
	for _, pod := range l.Network.Pods {
		r.waitFor(pod.Name, netlab.ProbeStoreKeepAlive, true, time.Time{})
		r.waitFor(pod.Name, netlab.ProbeStoreNew, true, time.Time{})
	}

	config, err := policies.ParseConfig([]byte(fmt.Sprintf(`apiVersion: backupguard.io/v1alpha1
kind: Config
longhorn:
  namespace: %s
window:
  opens: "0 1,9,17 * * *"
  duration: 1h
  maxExtension: 1h
`, longhornNamespace)), "window.yaml")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := clocktesting.NewFakeClock(day)
	stopLeader, cache := startController(t, c.Config, scheme, config, clock)

	// 00:00: the fence goes up over connections opened before it.
	r.transition("00:00 first start: closed", false)
	r.observe("closed (00:00)", false)
	r.scheduled(clock, day.Add(1*time.Hour), true)
	// A backup runs past 02:00: extended, then closed once it completes.
	backup := &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: "runs-late", Namespace: longhornNamespace}}
	create(t, kube, backup)
	backup.Status.State = "InProgress"
	if err := kube.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	waitCached(t, cache, backup, func(b *longhorn.Backup) bool { return b.Status.State == "InProgress" })
	setTime(t, clock, day.Add(2*time.Hour))
	r.waitForState(policies.WindowExtended)
	r.observe("extended (02:00, backup InProgress)", true)
	backup.Status.State = "Completed"
	if err := kube.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	r.transition("backup completed: closed", false)
	r.observe("closed (02:00 after the backup)", false)
	// 09:00 opening; a deletion in progress at 10:00 keeps it open, across a leader restart.
	r.scheduled(clock, day.Add(9*time.Hour), true)
	deleting := &longhorn.Backup{ObjectMeta: metav1.ObjectMeta{Name: "being-deleted", Namespace: longhornNamespace,
		Finalizers: []string{"longhorn.io/netlab"}}}
	create(t, kube, deleting)
	deleting.Status.State = "Completed"
	if err := kube.Status().Update(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	if err := kube.Delete(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	waitCached(t, cache, deleting, func(b *longhorn.Backup) bool { return b.DeletionTimestamp != nil && b.Status.State == "Completed" })
	setTime(t, clock, day.Add(10*time.Hour))
	r.waitForState(policies.WindowExtended)
	r.observe("extended (10:00, deletion in progress)", true)
	stopLeader()
	clock = clocktesting.NewFakeClock(day.Add(10*time.Hour + 20*time.Minute))
	startController(t, c.Config, scheme, config, clock)
	r.observe("extended (10:20, after a leader restart)", true)
	if err := kube.Get(ctx, client.ObjectKeyFromObject(deleting), deleting); err != nil {
		t.Fatal(err)
	}
	deleting.Finalizers = nil
	if err := kube.Update(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	r.transition("deletion finished: closed", false)
	r.observe("closed (10:20 after the deletion)", false)
	r.scheduled(clock, day.Add(17*time.Hour), true)
	r.scheduled(clock, day.Add(18*time.Hour), false)

	r.report()
}

// dumpLogs prints the end of what the lab's processes wrote, to tell why a run failed.
func dumpLogs(t *testing.T, dir string) {
	for _, pattern := range []string{"*.out", "*.log"} {
		paths, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, path := range paths {
			data, _ := os.ReadFile(path)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("--- %s ---\n%s", filepath.Base(path), data)
		}
	}
}

func create(t *testing.T, kube client.Client, object client.Object) {
	t.Helper()
	if err := kube.Create(context.Background(), object); err != nil {
		t.Fatal(err)
	}
}

// createNodeAndPods writes what kube-router needs to enforce policies on the stand-ins: the Node (named
// as kube-router's --hostname-override, its InternalIP the node address) and a running Pod per stand-in
// on it, hostIP exactly the Node's InternalIP (kube-router ignores other pods).
func createNodeAndPods(t *testing.T, kube client.Client, pods []*netlab.Pod) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{longhornNamespace, ownNamespace} {
		create(t, kube, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: netlab.NodeName},
		Spec: corev1.NodeSpec{PodCIDR: netlab.PodCIDR, PodCIDRs: []string{netlab.PodCIDR}}}
	create(t, kube, node)
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: netlab.NodeAddress}, {Type: corev1.NodeHostName, Address: netlab.NodeName}}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if err := kube.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		object := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: longhornNamespace, Labels: pod.Labels},
			Spec:       corev1.PodSpec{NodeName: netlab.NodeName, Containers: []corev1.Container{{Name: "standin", Image: "standin"}}},
		}
		create(t, kube, object)
		object.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: pod.Address, PodIPs: []corev1.PodIP{{IP: pod.Address}},
			HostIP: netlab.NodeAddress, HostIPs: []corev1.HostIP{{IP: netlab.NodeAddress}}}
		if err := kube.Status().Update(ctx, object); err != nil {
			t.Fatal(err)
		}
	}
	create(t, kube, &longhorn.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: longhornNamespace},
		Spec: longhorn.BackupTargetSpec{PollInterval: "0s"}})
}

// startController runs the real WindowController in a manager of its own, as serve does (without
// leader election: one runs at a time here), on the given clock. It returns a function that stops it,
// and the cache the controller reads through.
func startController(t *testing.T, config *rest.Config, scheme *runtime.Scheme, windowConfig *policies.Config, clock *clocktesting.FakeClock) (func(), client.Reader) {
	t.Helper()
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: lookup.CacheOptions(longhornNamespace, ownNamespace),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	controller := &controllers.WindowController{
		Client: mgr.GetClient(), Config: func() *policies.Config { return windowConfig }, Clock: clock, Namespace: ownNamespace,
		Log: testr.New(t), Resync: time.Hour,
	}
	if err := controller.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return stop, mgr.GetCache()
}

// waitCached waits until the controller's cache shows the Backup as condition wants, so that moving
// the clock next is decided on it.
func waitCached(t *testing.T, cache client.Reader, backup *longhorn.Backup, condition func(*longhorn.Backup) bool) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		cached := &longhorn.Backup{}
		if err := cache.Get(context.Background(), client.ObjectKeyFromObject(backup), cached); err == nil && condition(cached) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller's cache did not show Backup %s as expected within %s", backup.Name, convergeTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setTime moves the fake clock once the controller sleeps on it.
func setTime(t *testing.T, clock *clocktesting.FakeClock, to time.Time) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for !clock.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the controller did not wait on the clock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	clock.SetTime(to)
}

// event is something that happened at a real instant: a policy written, or a state published.
type event struct {
	at   time.Time
	kind string
	name string
}

// recorder keeps the timeline of the controller's writes (seen through watches) and reads the
// stand-ins' and the store's records.
type recorder struct {
	t        *testing.T
	logs     map[string]string
	storeLog string
	pods     []*netlab.Pod

	mu       sync.Mutex
	policies []event
	states   []event

	transitions []transition
	phases      []phase
}

// transition is one measured change: how long each stand-in's fence took to take effect.
type transition struct {
	what    string
	latency map[string]time.Duration
}

// phase is the traffic observed in one state, until to.
type phase struct {
	what      string
	to        time.Time
	newConns  int
	keptAlive int
	probes    map[string][2]int // ok, total
	// refusal is how a new connection to the store failed; refusals how long each took.
	refusal  string
	refusals []time.Duration
}

func (r *recorder) watch(ctx context.Context, kube client.WithWatch) {
	policyWatch, err := kube.Watch(ctx, &networkingv1.NetworkPolicyList{}, client.InNamespace(longhornNamespace))
	if err != nil {
		r.t.Fatal(err)
	}
	stateWatch, err := kube.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(ownNamespace))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(policyWatch.Stop)
	r.t.Cleanup(stateWatch.Stop)
	go func() {
		for change := range policyWatch.ResultChan() {
			if policy, ok := change.Object.(*networkingv1.NetworkPolicy); ok && change.Type != watch.Modified {
				r.mu.Lock()
				r.policies = append(r.policies, event{at: time.Now(), kind: string(change.Type), name: policy.Name})
				r.mu.Unlock()
			}
		}
	}()
	go func() {
		last := ""
		for change := range stateWatch.ResultChan() {
			configMap, ok := change.Object.(*corev1.ConfigMap)
			if !ok || configMap.Name != controllers.WindowConfigMap {
				continue
			}
			if state := configMap.Annotations[controllers.StateAnnotation]; state != last {
				last = state
				r.mu.Lock()
				r.states = append(r.states, event{at: time.Now(), kind: state})
				r.mu.Unlock()
			}
		}
	}()
}

func (r *recorder) records(path string) []netlab.Record {
	records, err := netlab.ReadRecords(path)
	if err != nil {
		r.t.Fatal(err)
	}
	return records
}

// waitFor waits until pod's probe has the outcome ok after since, and returns that probe's time.
func (r *recorder) waitFor(pod, probe string, ok bool, since time.Time) time.Time {
	r.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		for _, record := range r.records(r.logs[pod]) {
			if record.Probe == probe && record.OK == ok && !record.Time.Before(since) {
				return record.Time
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %s never %s within %s", pod, probe, map[bool]string{true: "succeeded", false: "failed"}[ok], convergeTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// policyEvent waits for the first write of kind (ADDED or DELETED) to the named policy after since.
func (r *recorder) policyEvent(kind, name string, since time.Time) time.Time {
	r.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		r.mu.Lock()
		for _, e := range r.policies {
			if e.kind == kind && e.name == name && !e.at.Before(since) {
				r.mu.Unlock()
				return e.at
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			r.t.Fatalf("the controller did not write %s %s within %s", kind, name, convergeTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) waitForState(state policies.WindowState) {
	r.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		r.mu.Lock()
		last := ""
		if len(r.states) > 0 {
			last = r.states[len(r.states)-1].kind
		}
		r.mu.Unlock()
		if last == string(state) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the published state stayed %q, not %q, for %s", last, state, convergeTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transition measures, for each stand-in, the time from the controller's write of its policy (added
// when closing, deleted when opening) to its first new connection to the store refused or accepted.
func (r *recorder) transition(what string, open bool) {
	r.t.Helper()
	since := time.Now().Add(-convergeTimeout)
	if len(r.phases) > 0 {
		since = r.phases[len(r.phases)-1].to
	}
	kind := string(watch.Added)
	if open {
		kind = string(watch.Deleted)
	}
	measured := transition{what: what, latency: map[string]time.Duration{}}
	for _, standIn := range standIns {
		written := r.policyEvent(kind, standIn.policy, since)
		effective := r.waitFor(standIn.spec.Name, netlab.ProbeStoreNew, open, written)
		measured.latency[standIn.spec.Name] = effective.Sub(written)
		if effective.Sub(written) > enforcementBound {
			r.t.Errorf("%s: %s took %s to take effect, above the %s bound", what, standIn.spec.Name, effective.Sub(written), enforcementBound)
		}
	}
	state := policies.WindowOpen
	if !open {
		state = policies.WindowClosed
	}
	r.waitForState(state)
	r.transitions = append(r.transitions, measured)
}

// scheduled moves the clock to a scheduled opening or closing, measures the transition, and observes
// the state it leads to.
func (r *recorder) scheduled(clock *clocktesting.FakeClock, to time.Time, open bool) {
	r.t.Helper()
	setTime(r.t, clock, to)
	at := to.Format("15:04")
	if open {
		r.transition(at+" opening", true)
		r.observe("open ("+at+")", true)
	} else {
		r.transition(at+" closing", false)
		r.observe("closed ("+at+")", false)
	}
}

// observe watches the traffic for dwell once the last transition has taken effect, and checks it: while
// closed no new connection reaches the store, the kept-alive one still does; while open both flow; the
// kube-apiserver and DNS always answer.
func (r *recorder) observe(what string, open bool) {
	r.t.Helper()
	from := time.Now()
	time.Sleep(dwell)
	to := time.Now()
	p := phase{what: what, to: to, probes: map[string][2]int{}}
	for _, record := range r.records(r.storeLog) {
		if record.Time.Before(from) || !record.Time.Before(to) {
			continue
		}
		if record.NewConnection {
			p.newConns++
		} else {
			p.keptAlive++
		}
	}
	for _, pod := range r.pods {
		for _, record := range r.records(r.logs[pod.Name]) {
			if record.Time.Before(from) || !record.Time.Before(to) {
				continue
			}
			counts := p.probes[record.Probe]
			counts[1]++
			if record.OK {
				counts[0]++
			} else if record.Probe == netlab.ProbeStoreNew {
				p.refusal = record.Err
				p.refusals = append(p.refusals, record.Took)
			} else {
				r.t.Errorf("%s: %s %s failed at %s: %s", what, pod.Name, record.Probe, record.Time.Format(time.StampMilli), record.Err)
			}
			p.probes[record.Probe] = counts
		}
	}
	newProbes := p.probes[netlab.ProbeStoreNew]
	switch {
	case !open && p.newConns != 0:
		r.t.Errorf("%s: the store received %d requests on new connections", what, p.newConns)
	case !open && newProbes[0] != 0:
		r.t.Errorf("%s: %d of %d new connections to the store succeeded", what, newProbes[0], newProbes[1])
	case open && (p.newConns == 0 || newProbes[0] != newProbes[1]):
		r.t.Errorf("%s: the store received %d requests on new connections; %d of %d succeeded", what, p.newConns, newProbes[0], newProbes[1])
	}
	if p.keptAlive == 0 {
		r.t.Errorf("%s: the kept-alive connections carried no request", what)
	}
	r.phases = append(r.phases, p)
}

// report prints the figures and checks the whole day, from the controller's first published state on
// (before it, no window existed and everything flowed). Each request that reached the store on a new
// connection must have come from a pod whose fence was down, or had gone up less than the enforcement
// bound before; and arrived while the published state was open or extended, or within the bound of
// it (the controller deletes its policies just before it publishes open, and writes them just before
// it publishes closed). Each request that reached it while closed came on a connection opened before
// the close.
func (r *recorder) report() {
	r.t.Helper()
	r.mu.Lock()
	states := append([]event(nil), r.states...)
	policyEvents := append([]event(nil), r.policies...)
	r.mu.Unlock()
	if len(states) == 0 {
		r.t.Fatal("the controller published no state")
	}
	// lastBefore is the last event at or before at that matches, and the first one after it.
	lastBefore := func(events []event, at time.Time, matches func(event) bool) (last, next event) {
		for _, e := range events {
			if !matches(e) {
				continue
			}
			if e.at.After(at) {
				return last, e
			}
			last = e
		}
		return last, event{}
	}
	any := func(event) bool { return true }
	policyOf := map[string]string{}
	for _, pod := range r.pods {
		for _, standIn := range standIns {
			if standIn.spec.Name == pod.Name {
				policyOf[pod.Address] = standIn.policy
			}
		}
	}
	var before, inside, openEdge, closeEdge, keptAliveClosed int
	var worstOpenEdge, worstCloseEdge time.Duration
	opened := map[int64]time.Time{}
	for _, record := range r.records(r.storeLog) {
		if record.NewConnection {
			opened[record.Connection] = record.Time
		}
		state, next := lastBefore(states, record.Time, any)
		open := policies.WindowState(state.kind).IsOpen()
		switch {
		case state.kind == "":
			before++
		case !record.NewConnection:
			if !open {
				keptAliveClosed++
				if connected, ok := opened[record.Connection]; !ok || !connected.Before(state.at) {
					r.t.Errorf("a request reached the store while closed at %s on connection %d, opened at %s, after the close at %s",
						record.Time.Format(time.StampMilli), record.Connection, connected.Format(time.StampMilli), state.at.Format(time.StampMilli))
				}
			}
		default:
			host, _, _ := net.SplitHostPort(record.Client)
			policy, _ := lastBefore(policyEvents, record.Time, func(e event) bool { return e.name == policyOf[host] })
			var fenced bool
			switch {
			case open:
				inside++
			case policy.kind == string(watch.Deleted) && next.kind != "" && policies.WindowState(next.kind).IsOpen() && next.at.Sub(record.Time) <= enforcementBound:
				openEdge++
				worstOpenEdge = max(worstOpenEdge, next.at.Sub(record.Time))
			case policy.kind == string(watch.Added) && record.Time.Sub(policy.at) <= enforcementBound:
				closeEdge++
				worstCloseEdge = max(worstCloseEdge, record.Time.Sub(policy.at))
			default:
				fenced = true
			}
			if fenced {
				r.t.Errorf("the store received a request on a new connection from %s at %s, with the window %q since %s and %s %s since %s",
					record.Client, record.Time.Format(time.StampMilli), state.kind, state.at.Format(time.StampMilli), policyOf[host], policy.kind, policy.at.Format(time.StampMilli))
			}
		}
	}

	// The kube-apiserver and DNS answer all day, transitions included.
	reachable := map[string][2]int{}
	for _, pod := range r.pods {
		for _, record := range r.records(r.logs[pod.Name]) {
			if record.Time.Before(states[0].at) || record.Probe == netlab.ProbeStoreNew || record.Probe == netlab.ProbeStoreKeepAlive {
				continue
			}
			counts := reachable[record.Probe]
			counts[1]++
			if record.OK {
				counts[0]++
			} else {
				r.t.Errorf("%s: %s failed at %s: %s", pod.Name, record.Probe, record.Time.Format(time.StampMilli), record.Err)
			}
			reachable[record.Probe] = counts
		}
	}

	var lines []string
	lines = append(lines, "transitions (controller's policy write -> first new connection refused/accepted):")
	var worst time.Duration
	for _, tr := range r.transitions {
		var parts []string
		names := make([]string, 0, len(tr.latency))
		for name := range tr.latency {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			parts = append(parts, fmt.Sprintf("%s %dms", name, tr.latency[name].Milliseconds()))
			worst = max(worst, tr.latency[name])
		}
		lines = append(lines, fmt.Sprintf("  %-28s %s", tr.what, strings.Join(parts, ", ")))
	}
	lines = append(lines, fmt.Sprintf("  worst %dms (bound %s)", worst.Milliseconds(), enforcementBound))
	lines = append(lines, fmt.Sprintf("phases (%s of traffic each, both stand-ins):", dwell))
	for _, p := range r.phases {
		var probes []string
		for _, name := range []string{netlab.ProbeStoreNew, netlab.ProbeStoreKeepAlive, netlab.ProbeAPIDirect, netlab.ProbeAPIClusterIP, netlab.ProbeDNS} {
			counts := p.probes[name]
			probes = append(probes, fmt.Sprintf("%s %d/%d", name, counts[0], counts[1]))
		}
		lines = append(lines, fmt.Sprintf("  %-42s store: %3d new-connection, %3d kept-alive requests; probes ok/total: %s",
			p.what, p.newConns, p.keptAlive, strings.Join(probes, ", ")))
	}
	lines = append(lines, fmt.Sprintf("the day: store requests on new connections: %d while the published state was open or extended, %d in the moment between the controller deleting a pod's policy and publishing open (at most %dms before), %d after the controller wrote a pod's policy and before kube-router enforced it (at most %dms after), none otherwise; %d requests reached the store while closed, all on connections opened before the close (%d requests before the controller started)",
		inside, openEdge, worstOpenEdge.Milliseconds(), closeEdge, worstCloseEdge.Milliseconds(), keptAliveClosed, before))
	var refusal string
	var refusals []time.Duration
	for _, p := range r.phases {
		if p.refusal != "" {
			refusal = p.refusal
		}
		refusals = append(refusals, p.refusals...)
	}
	slices.Sort(refusals)
	if len(refusals) > 0 {
		slow := len(refusals) - sort.Search(len(refusals), func(i int) bool { return refusals[i] >= 500*time.Millisecond })
		lines = append(lines, fmt.Sprintf("a new connection to the store while closed failed (%d attempts) in %dms median, %dms at most, %d of them after 500ms or more: %s",
			len(refusals), refusals[len(refusals)/2].Milliseconds(), refusals[len(refusals)-1].Milliseconds(), slow, refusal))
	}
	lines = append(lines, fmt.Sprintf("all day, transitions included, probes ok/total: %s %d/%d, %s %d/%d, %s %d/%d",
		netlab.ProbeAPIDirect, reachable[netlab.ProbeAPIDirect][0], reachable[netlab.ProbeAPIDirect][1],
		netlab.ProbeAPIClusterIP, reachable[netlab.ProbeAPIClusterIP][0], reachable[netlab.ProbeAPIClusterIP][1],
		netlab.ProbeDNS, reachable[netlab.ProbeDNS][0], reachable[netlab.ProbeDNS][1]))
	r.t.Logf("figures:\n%s", strings.Join(lines, "\n"))
	if inside == 0 {
		r.t.Error("no request reached the store while the window was open")
	}
}
