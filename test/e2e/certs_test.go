package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/test/cluster"
)

// probe answers GET url with its status code and body.
var probe = cluster.Probe

func freePort(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

// TestServeWithoutAUsableCertificateWaitsUnready starts serve on a directory with only tls.crt (a
// half-mounted Secret): it stays alive, reports not ready with the reason, and becomes ready once a
// good pair appears, without a restart.
func TestServeWithoutAUsableCertificateWaitsUnready(t *testing.T) {
	certDir := t.TempDir()
	goodDir := testCluster.Env.WebhookInstallOptions.LocalServingCertDir
	certificate, err := os.ReadFile(filepath.Join(goodDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(goodDir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.crt"), certificate, 0o600); err != nil {
		t.Fatal(err)
	}
	probes := freePort(t)
	webhookPort := freePort(t)
	_, port, _ := net.SplitHostPort(webhookPort)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	command := exec.CommandContext(ctx, binary, "serve", "--config", configPath, "--kubeconfig", testCluster.Kubeconfig,
		"--cert-dir", certDir, "--cert-poll-interval", "100ms", "--webhook-host", "127.0.0.1", "--webhook-port", port,
		"--metrics-bind-address", "0", "--health-probe-bind-address", probes, "--sync=off")
	command.Stdout, command.Stderr = logFile, logFile
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- command.Wait() }()

	eventually(t, "serve to report itself alive but not ready", func() (bool, string) {
		live, _ := probe("http://" + probes + "/healthz")
		ready, body := probe("http://" + probes + "/readyz?verbose")
		return live == http.StatusOK && ready == http.StatusInternalServerError, body
	})
	_, body := probe("http://" + probes + "/readyz/certificate")
	if diff := cmp.Diff("internal server error: no serving certificate: tls.key cannot be read (a Secret with only tls.crt?): open "+
		filepath.Join(certDir, "tls.key")+": no such file or directory\n", body); diff != "" {
		t.Errorf("certificate readiness (-want +got):\n%s", diff)
	}
	logged := false
	for _, line := range readLogLines(logPath, "no usable serving certificate yet; not ready until one appears") {
		logged = logged || line["error"] == "tls.key cannot be read (a Secret with only tls.crt?): open "+filepath.Join(certDir, "tls.key")+": no such file or directory"
	}
	if !logged {
		t.Errorf("no log line says why; the log:\n%s", cluster.LastLines(readFile(logPath), 10))
	}

	if err := os.WriteFile(filepath.Join(certDir, "tls.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "serve to become ready with the good pair", func() (bool, string) {
		code, body := probe("http://" + probes + "/readyz")
		return code == http.StatusOK, body
	})
	select {
	case err := <-exited:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(0):
	}
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}
