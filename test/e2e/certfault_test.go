package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/backupguard/backupguard/certs/certstest"

	"github.com/google/go-cmp/cmp"
)

// servingFiles are tls.crt and tls.key of a serving certificate ca signs with serial.
func servingFiles(t *testing.T, ca *certstest.CA, serial int64) map[string][]byte {
	t.Helper()
	certPEM, keyPEM := ca.Serving(t, big.NewInt(serial))
	return map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}
}

// replaceCertFiles makes dir hold exactly files, each written whole (write, then rename).
func replaceCertFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for _, name := range []string{"tls.crt", "tls.key"} {
		if _, found := files[name]; !found {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	for name, data := range files {
		next := filepath.Join(dir, "."+name+".next")
		if err := os.WriteFile(next, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCertificateRemovedCorruptedAndRestored takes serve's certificate files away while it serves,
// then writes garbage in their place: serve goes on serving the last good certificate, stays ready
// (one Secret mishap must not take every replica out of the Service at once) and says so in its log
// and a metric; a new certificate is then served without a restart.
func TestCertificateRemovedCorruptedAndRestored(t *testing.T) {
	ca := certstest.NewCA(t, "e2e CA")
	certDir := t.TempDir()
	first := servingFiles(t, ca, 1001)
	replaceCertFiles(t, certDir, first)
	block, _ := pem.Decode(first["tls.crt"])
	firstCertificate, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	serve := startOwnServe(t, certDir)
	served := func() string {
		connection, err := tls.Dial("tcp", serve.webhook, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
		if err != nil {
			return err.Error()
		}
		defer connection.Close()
		return connection.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := served(); got != "1001" {
		t.Fatalf("served serial %s, want 1001", got)
	}
	const refusedLine = "the certificate files are refused; the last good serving certificate stays in use"
	crt, key := filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key")

	for _, fault := range []struct {
		name      string
		files     map[string][]byte
		wantError string
	}{
		{"both files removed", map[string][]byte{},
			"neither tls.crt nor tls.key can be read in " + certDir + ": open " + crt + ": no such file or directory\nopen " + key + ": no such file or directory"},
		{"garbage in both files", map[string][]byte{"tls.crt": []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"), "tls.key": []byte("garbage")},
			"tls.crt and tls.key do not make a usable key pair: tls: failed to find any PEM data in certificate input"},
	} {
		t.Run(fault.name, func(t *testing.T) {
			before := len(readLogLines(serve.logPath, refusedLine))
			replaceCertFiles(t, certDir, fault.files)
			eventually(t, "serve to refuse the files", func() (bool, string) {
				lines := readLogLines(serve.logPath, refusedLine)
				return len(lines) > before, serve.metric(t, "backupguard_serving_certificate_refused")
			})
			got := readLogLines(serve.logPath, refusedLine)[before]
			want := map[string]any{"level": "error", "logger": "certs", "msg": refusedLine, "dir": certDir, "serial": "1001",
				"notAfter": firstCertificate.NotAfter.UTC().Format(time.RFC3339), "ts": got["ts"], "error": fault.wantError}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("log line (-want +got):\n%s", diff)
			}
			if got := serve.metric(t, "backupguard_serving_certificate_refused"); got != "1" {
				t.Errorf("backupguard_serving_certificate_refused = %s, want 1", got)
			}
			if got := served(); got != "1001" {
				t.Errorf("served serial %s, want the last good 1001", got)
			}
			code, body := probe("http://" + serve.probes + "/readyz?verbose")
			if diff := cmp.Diff("200 [+]caches ok\n[+]certificate ok\n[+]longhorn-crds ok\n[+]shutting-down ok\n[+]webhook ok\nhealthz check passed\n", itoa(code)+" "+body); diff != "" {
				t.Errorf("/readyz?verbose (-want +got):\n%s", diff)
			}
		})
	}

	restored := time.Now()
	replaceCertFiles(t, certDir, servingFiles(t, ca, 1002))
	eventually(t, "serve to serve the new certificate", func() (bool, string) {
		got := served()
		return got == "1002", got
	})
	t.Logf("the new certificate was served %s after it was written", time.Since(restored).Round(time.Millisecond))
	if got := serve.metric(t, "backupguard_serving_certificate_refused"); got != "0" {
		t.Errorf("backupguard_serving_certificate_refused = %s after a good certificate, want 0", got)
	}
	if code, _ := probe("http://" + serve.probes + "/readyz"); code != http.StatusOK {
		t.Errorf("not ready after the new certificate: %d", code)
	}
	serve.running(t)
}

func itoa(n int) string { return strconv.Itoa(n) }
