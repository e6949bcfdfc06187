package faults

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupguard/backupguard/certs/certstest"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

// What one create through the API server came to.
const (
	admitted         = "admitted"                                 // a valid RecurringJob accepted, a PVC labelled at admission
	denied           = "denied"                                   // an invalid RecurringJob refused by backupguard
	passedUnlabelled = "passed unlabelled (failurePolicy Ignore)" // a PVC let through while no replica answered
	failedCalling    = "refused: failed calling webhook (failurePolicy Fail)"
	wrong            = "WRONG"
	otherError       = "other error"
)

type outcome struct {
	kind, name, result, detail string
	at                         time.Duration
}

// classify tells what the API server's answer means for a request of kind.
func classify(kind string, err error, labels map[string]string) (string, string) {
	switch {
	case err != nil && strings.Contains(err.Error(), "failed calling webhook"):
		return failedCalling, err.Error()
	case err != nil && strings.Contains(err.Error(), `admission webhook "recurringjobs.backupguard.io" denied the request`):
		if kind == "invalid RecurringJob" {
			return denied, ""
		}
		return wrong, err.Error()
	case err != nil:
		return otherError, err.Error()
	case kind == "invalid RecurringJob":
		return wrong, "accepted"
	case kind == "PVC" && len(labels) == 0:
		return passedUnlabelled, ""
	case kind == "PVC" && !maps.Equal(labels, decidedPVCLabels):
		return wrong, fmt.Sprintf("labels %v", labels)
	}
	return admitted, ""
}

// useCA makes the installed webhook configurations trust ca, as cert-manager's CA injector does.
func useCA(t *testing.T, ca []byte) {
	t.Helper()
	ctx := context.Background()
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, mutating); err != nil {
		t.Fatal(err)
	}
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := kube.Update(ctx, mutating); err != nil {
		t.Fatal(err)
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, validating); err != nil {
		t.Fatal(err)
	}
	for i := range validating.Webhooks {
		validating.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := kube.Update(ctx, validating); err != nil {
		t.Fatal(err)
	}
}

func recurringJob(namespace, name string, valid bool) *longhorn.RecurringJob {
	cron := "0 3 * * *"
	if !valid {
		cron = "CRON_TZ=Europe/Berlin 0 3 * * *"
	}
	return &longhorn.RecurringJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: longhorn.RecurringJobSpec{Task: longhorn.TaskSnapshot, Cron: cron, Retain: 7, Concurrency: 1}}
}

// TestLoadThroughLeaderKillAndCertificateRotation creates PVCs and RecurringJobs (valid and invalid)
// through the API server at a steady rate, from several clients, while two replicas serve behind one
// Service address: the serving certificate is rotated to a new leaf of the same CA, then the leader is
// stopped (SIGKILL, as a lost node; SIGTERM, as a rollout) and a new pod replaces it. Every answer must
// be right: each valid RecurringJob accepted, each invalid one refused, each PVC labelled exactly as
// decided (at admission, or by the sync when failurePolicy Ignore let it through unlabelled). After a
// SIGKILL the only errors allowed are those failurePolicy Fail makes of a webhook call that did not get
// through (the API server does not retry one: its admission dispatchers call the webhook once; a killed
// process loses what it had in flight), and they are counted. After a SIGTERM no error is allowed at
// all: the leader drains for --shutdown-delay (drainDelay) first, unready while still answering.
func TestLoadThroughLeaderKillAndCertificateRotation(t *testing.T) {
	for _, signal := range []string{"SIGKILL", "SIGTERM"} {
		t.Run(signal, func(t *testing.T) {
			loadThroughFaults(t, signal == "SIGKILL")
		})
	}
}

// drainDelay is the load test's --shutdown-delay: the stand-in Service drops an unready endpoint within
// probeEvery, so 2s leave the connections in flight and kept alive time to finish and move.
const drainDelay = 2 * time.Second

func loadThroughFaults(t *testing.T, kill bool) {
	const (
		duration  = 40 * time.Second
		rate      = 30 // creates per second, all clients together
		clients   = 8
		rotateAt  = 10 * time.Second
		killAt    = 20 * time.Second
		replaceAt = 22 * time.Second
	)
	ctx := context.Background()
	longhornNS, own := newNamespace(t, "lh", nil), newNamespace(t, "own", nil)
	pvcNS := newNamespace(t, "pvcs", map[string]string{"backup": "daily"})
	configPath := writeConfig(t, labelConfig(longhornNS))

	ca := certstest.NewCA(t, "backupguard fault-test CA")
	certDir := t.TempDir()
	firstSerial := issue(t, ca, certDir)
	useCA(t, ca.PEM)
	testCluster.CertDir = certDir
	t.Cleanup(func() { testCluster.CertDir = "" })

	webhook := testCluster.Env.WebhookInstallOptions
	svc := newService(t, net.JoinHostPort(webhook.LocalServingHost, fmt.Sprint(webhook.LocalServingPort)))
	args := append(leaderArgs(own), "--sync-writes-per-second", "50")
	if !kill {
		args = append(args, "--shutdown-delay", drainDelay.String())
	}
	startEndpoint := func() (*cluster.Backupguard, string, error) {
		port := freePort(t)
		replica, err := testCluster.StartReplica(ctx, binary, configPath, cluster.Replica{WebhookPort: port}, args...)
		if err != nil {
			return nil, "", err
		}
		t.Cleanup(replica.Stop)
		address := net.JoinHostPort(webhook.LocalServingHost, fmt.Sprint(port))
		svc.add(address, replica.ProbeAddress)
		return replica, address, nil
	}
	leader, leaderAddress, err := startEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	var holder string
	within(t, time.Minute, "the first replica to take the Lease", func() (bool, string) {
		holder = leaseHolder(own)
		return holder != "", "no holder"
	})
	follower, followerAddress, err := startEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	// The API server reads webhook configurations from its informer: wait for it to trust the CA.
	within(t, 30*time.Second, "the API server to reach backupguard through the Service", func() (bool, string) {
		err := kube.Create(ctx, recurringJob(longhornNS, "warm-up", true), client.DryRunAll)
		return err == nil, fmt.Sprint(err)
	})

	loadConfig := rest.CopyConfig(testCluster.Config)
	loadConfig.QPS, loadConfig.Burst = 1000, 1000
	load, err := client.New(loadConfig, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
	)
	start := time.Now()
	send := func(i int) {
		var (
			kind   string
			object client.Object
		)
		switch i % 4 {
		case 0, 1:
			kind, object = "PVC", newPVC(pvcNS, fmt.Sprintf("load-%04d", i))
		case 2:
			kind, object = "valid RecurringJob", recurringJob(longhornNS, fmt.Sprintf("valid-%04d", i), true)
		default:
			kind, object = "invalid RecurringJob", recurringJob(longhornNS, fmt.Sprintf("invalid-%04d", i), false)
		}
		requestCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := load.Create(requestCtx, object)
		result, detail := classify(kind, err, object.GetLabels())
		mu.Lock()
		outcomes = append(outcomes, outcome{kind: kind, name: object.GetName(), result: result, detail: detail, at: time.Since(start)})
		mu.Unlock()
	}
	requests := make(chan int)
	var senders sync.WaitGroup
	for range clients {
		senders.Go(func() {
			for i := range requests {
				send(i)
			}
		})
	}

	// The faults, on their own clock.
	var (
		faults             sync.WaitGroup
		faultErrs          = make(chan error, 4)
		killedAt           time.Duration
		replacedAt         time.Duration
		rotatedAt          time.Duration
		reloadedIn         time.Duration
		newSerial          *big.Int
		acceptedAtRotation int
		takeoverIn         time.Duration
		exitedIn           time.Duration // from the signal to the process's end
	)
	// The certificate rotates first, so that the connections the API server opens after the kill are
	// made with the new one: it keeps a connection open as long as it can, and an open connection keeps
	// the certificate of its handshake.
	faults.Go(func() {
		time.Sleep(rotateAt)
		rotatedAt = time.Since(start)
		newSerial = issue(t, ca, certDir)
		for served := 0; served < 2; {
			if time.Since(start)-rotatedAt > 30*time.Second {
				faultErrs <- fmt.Errorf("the replicas did not serve the rotated certificate within 30s")
				return
			}
			time.Sleep(20 * time.Millisecond)
			served = 0
			for _, address := range []string{leaderAddress, followerAddress} {
				if serial, err := servedSerial(ca, address); err == nil && serial.Cmp(newSerial) == 0 {
					served++
				}
			}
		}
		reloadedIn = time.Since(start) - rotatedAt
		acceptedAtRotation = svc.accepted()
		time.Sleep(max(0, killAt-time.Since(start)))
		killedAt = time.Since(start)
		if kill {
			leader.Kill()
			exitedIn = time.Since(start) - killedAt
		} else {
			exitedIn = leader.Terminate()
		}
		for now := leaseHolder(own); now == holder || now == ""; now = leaseHolder(own) {
			if time.Since(start)-killedAt > time.Minute {
				faultErrs <- fmt.Errorf("no replica took the Lease within a minute of the leader's end")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		takeoverIn = time.Since(start) - killedAt
		time.Sleep(max(0, replaceAt-time.Since(start)))
		if _, _, err := startEndpoint(); err != nil {
			faultErrs <- fmt.Errorf("starting the replacement replica: %w", err)
			return
		}
		replacedAt = time.Since(start)
	})

	ticker := time.NewTicker(time.Second / rate)
	sent := 0
	for time.Since(start) < duration {
		<-ticker.C
		requests <- sent
		sent++
	}
	ticker.Stop()
	close(requests)
	senders.Wait()
	elapsed := time.Since(start)
	faults.Wait()
	close(faultErrs)
	for err := range faultErrs {
		t.Error(err)
	}
	if serial, err := servedSerial(ca, leaderAddress); err == nil {
		t.Errorf("the killed replica still answers, serial %v", serial)
	}
	if newSerial == nil || newSerial.Cmp(firstSerial) == 0 {
		t.Fatalf("the certificate was not rotated: first serial %v, new %v", firstSerial, newSerial)
	}

	// Figures: outcomes by kind.
	counts := map[string]map[string]int{}
	var failures []outcome
	for _, o := range outcomes {
		if counts[o.kind] == nil {
			counts[o.kind] = map[string]int{}
		}
		counts[o.kind][o.result]++
		if o.result == wrong || o.result == otherError || o.result == failedCalling {
			failures = append(failures, o)
		}
	}
	refused, noReady := svc.failures()
	t.Logf("%d creates in %v (%.1f/s) from %d clients; certificate rotated at %v and served by both replicas %v later; leader stopped at %v and gone %v later, Lease taken %v later, replacement ready at %v",
		len(outcomes), elapsed.Round(time.Millisecond), float64(len(outcomes))/elapsed.Seconds(), clients,
		rotatedAt.Round(time.Millisecond), reloadedIn.Round(time.Millisecond), killedAt.Round(time.Millisecond), exitedIn.Round(time.Millisecond), takeoverIn.Round(time.Millisecond), replacedAt.Round(time.Millisecond))
	// Counted from when every replica served the new certificate, so these were handshakes with it.
	t.Logf("  the API server opened %d connections through the Service after the rotation", svc.accepted()-acceptedAtRotation)
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("  %s: %v", kind, counts[kind])
	}
	t.Logf("  the Service: connections by endpoint %v (the stopped leader %s); %d refused by an endpoint, %d with no ready endpoint",
		svc.connections(), leaderAddress, refused, noReady)
	if now := leaseHolder(own); now == holder || now == "" {
		t.Errorf("the Lease is held by %q after the leader was killed, want another replica", now)
	}
	for _, o := range failures {
		t.Logf("  %s %s at %v: %s: %s", o.kind, o.name, o.at.Round(time.Millisecond), o.result, o.detail)
	}
	for _, o := range failures {
		if o.result != failedCalling || o.kind == "PVC" || !kill {
			t.Errorf("%s %s at %v: %s: %s", o.kind, o.name, o.at.Round(time.Millisecond), o.result, o.detail)
		}
	}

	// The API server keeps its connections open, so the load may not have needed a new one after the
	// rotation. With the follower gone too, the replacement, which never had the old certificate, is the
	// only endpoint: that the API server gets answers proves the unchanged caBundle trusts the new leaf.
	follower.Stop()
	trusted := within(t, 10*time.Second, "the API server to reach the replacement through the Service", func() (bool, string) {
		err := kube.Create(ctx, recurringJob(longhornNS, "after-rotation", true), client.DryRunAll)
		return err == nil, fmt.Sprint(err)
	})
	t.Logf("  with only the replacement left, the API server got answers %v after the follower stopped", trusted.Round(time.Millisecond))

	// The end state, whole: exactly the accepted RecurringJobs exist, and every PVC has exactly the
	// decided labels once the sync has labelled what was let through (bound: the new leader's Lease and
	// the sync at 50 writes/s over every PVC, with slack for two shared cores).
	wantJobs, wantPVCs := []string{}, map[string]map[string]string{}
	for _, o := range outcomes {
		switch {
		case o.kind == "PVC" && o.result != otherError && o.result != failedCalling:
			wantPVCs[o.name] = decidedPVCLabels
		case o.kind == "valid RecurringJob" && o.result == admitted:
			wantJobs = append(wantJobs, o.name)
		}
	}
	slices.Sort(wantJobs)
	jobs := &longhorn.RecurringJobList{}
	if err := kube.List(ctx, jobs, client.InNamespace(longhornNS)); err != nil {
		t.Fatal(err)
	}
	gotJobs := []string{}
	for _, job := range jobs.Items {
		gotJobs = append(gotJobs, job.Name)
	}
	slices.Sort(gotJobs)
	if diff := cmp.Diff(wantJobs, gotJobs); diff != "" {
		t.Errorf("RecurringJobs (-accepted +existing):\n%s", diff)
	}
	bound := leaseDuration + 3*retryPeriod + time.Duration(len(wantPVCs)/50)*time.Second + 15*time.Second
	synced := within(t, bound, "every PVC to have exactly the decided labels", func() (bool, string) {
		got := labelsByName(t, &corev1.PersistentVolumeClaimList{}, pvcNS)
		return cmp.Equal(wantPVCs, got), cmp.Diff(wantPVCs, got)
	})
	t.Logf("every PVC had exactly the decided labels %v after the load ended (bound %v)", synced.Round(time.Millisecond), bound)
}
