package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupguard/backupguard/test/cluster"
)

// ownServe is a `backupguard serve` process of one test's own, beside the suite's: its own ports and
// certificate directory, no leader election and no label sync, so that it serves only what the test
// sends it and whatever the test does to it leaves the suite's serve alone.
type ownServe struct {
	webhook, probes, metrics string // host:port
	logPath                  string
	pid                      int
	exited                   chan error
}

// startOwnServe runs serve with certDir and extra flags and waits until it is ready; the test's end
// stops it.
func startOwnServe(t *testing.T, certDir string, args ...string) *ownServe {
	t.Helper()
	return startOwnServeWith(t, ownServeOptions{certDir: certDir, config: configPath}, args...)
}

// ownServeOptions are what startOwnServeWith gives serve besides its flags: the certificate directory,
// the config file and extra environment variables.
type ownServeOptions struct {
	certDir, config string
	env             []string
}

func startOwnServeWith(t *testing.T, options ownServeOptions, args ...string) *ownServe {
	t.Helper()
	certDir := options.certDir
	serve := &ownServe{webhook: freePort(t), probes: freePort(t), metrics: freePort(t), logPath: filepath.Join(t.TempDir(), "serve.log"), exited: make(chan error, 1)}
	_, port, _ := strings.Cut(serve.webhook, ":")
	logFile, err := os.Create(serve.logPath)
	if err != nil {
		t.Fatal(err)
	}
	command := exec.Command(binary, append([]string{"serve", "--config", options.config, "--config-poll-interval", "100ms",
		"--kubeconfig", testCluster.Kubeconfig, "--cert-dir", certDir, "--cert-poll-interval", "100ms",
		"--webhook-host", "127.0.0.1", "--webhook-port", port, "--metrics-bind-address", serve.metrics,
		"--health-probe-bind-address", serve.probes, "--sync=off", "--coverage-interval=0",
		"--shutdown-delay=0"}, args...)...) // stopped at once, as the harness's replicas are
	command.Stdout, command.Stderr = logFile, logFile
	command.Env = append(os.Environ(), options.env...)
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	serve.pid = command.Process.Pid
	go func() {
		serve.exited <- command.Wait()
		logFile.Close()
	}()
	t.Cleanup(func() {
		_ = command.Process.Signal(os.Interrupt)
		select {
		case <-serve.exited:
		case <-time.After(10 * time.Second):
			_ = command.Process.Kill()
			<-serve.exited
		}
		if t.Failed() {
			t.Logf("--- serve's log ---\n%s", cluster.LastLines(readFile(serve.logPath), 30))
		}
	})
	eventually(t, "the test's own serve to be ready", func() (bool, string) {
		code, body := probe("http://" + serve.probes + "/readyz")
		return code == http.StatusOK, body
	})
	return serve
}

// running fails the test when serve has exited.
func (s *ownServe) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.exited:
		s.exited <- err
		t.Fatalf("serve exited: %v\n%s", err, cluster.LastLines(readFile(s.logPath), 20))
	default:
	}
}

// rssKiB is serve's resident memory, from /proc/PID/status.
func (s *ownServe) rssKiB(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if value, found := strings.CutPrefix(line, "VmRSS:"); found {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// metric reads one sample from this serve's /metrics, "0" when absent.
func (s *ownServe) metric(t *testing.T, sample string) string {
	t.Helper()
	return metricAt(t, "http://"+s.metrics+"/metrics", sample)
}

// envtestTLS trusts the CA of envtest's serving certificate, the one the webhook configurations carry.
func envtestTLS(t *testing.T) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(testCluster.Env.WebhookInstallOptions.LocalServingCAData) {
		t.Fatal("no CA from envtest")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
