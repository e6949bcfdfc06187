package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/certs"
	"github.com/backupguard/backupguard/certs/certstest"
	"github.com/backupguard/backupguard/webhook"
)

// writeSelfSigned writes a serving pair for 127.0.0.1 into a new directory and returns it.
func writeSelfSigned(t *testing.T) string {
	t.Helper()
	certPEM, keyPEM := certstest.SelfSigned(t, &x509.Certificate{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServerClosesConnectionsWhileDraining sends requests over one kept-alive client before and after
// the drain starts: before, the connection is reused; after, each answer says `Connection: close` and
// the next request opens a new connection, while the connection that was idle when the drain started
// is still answered, not closed under the client.
func TestServerClosesConnectionsWhileDraining(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	certDir := writeSelfSigned(t)
	draining := make(chan struct{})
	server := webhook.NewServer(webhook.ServerOptions{Host: "127.0.0.1", Port: port, CertDir: certDir,
		Certificate: certs.NewWatcher(certDir, time.Minute, logr.Discard()), Log: logr.Discard(), Draining: draining})
	server.Register("/drain-test", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- server.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	})
	started := server.StartedChecker()
	deadline := time.Now().Add(10 * time.Second)
	for err := started(nil); err != nil; err = started(nil) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	transport := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a test certificate
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	type answer struct {
		Reused bool
		Status int
		Close  bool // the answer said `Connection: close` (Go's client takes the header out)
	}
	send := func() answer {
		t.Helper()
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		request, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost,
			"https://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+"/drain-test", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		response, err := client.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		response.Body.Close()
		return answer{Reused: reused, Status: response.StatusCode, Close: response.Close}
	}
	got := []answer{send(), send()}
	close(draining)
	got = append(got, send(), send())
	want := []answer{
		{Reused: false, Status: http.StatusOK},
		{Reused: true, Status: http.StatusOK},
		{Reused: true, Status: http.StatusOK, Close: true},  // the idle connection, still served
		{Reused: false, Status: http.StatusOK, Close: true}, // a new one: the last was closed after its answer
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers before and after the drain started (-want +got):\n%s", diff)
	}
}
