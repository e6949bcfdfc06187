package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupguard/backupguard/certs/certstest"
	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// keyPair makes a self-signed serving certificate valid from notBefore to notAfter.
func keyPair(t *testing.T, commonName string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	return certstest.SelfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: commonName}, NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{commonName}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for _, name := range []string{CertFile, KeyFile} {
		_ = os.Remove(filepath.Join(dir, name))
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestWatcher(dir string, clock *clocktesting.FakeClock) *Watcher {
	watcher := &Watcher{Dir: dir, Interval: time.Hour, Clock: clock, Log: logr.Discard()}
	watcher.reload()
	return watcher
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestWatcherLoadsOnlyUsableCertificates(t *testing.T) {
	goodCert, goodKey := keyPair(t, "good.example", testNow.Add(-time.Hour), testNow.Add(24*time.Hour))
	_, otherKey := keyPair(t, "other.example", testNow.Add(-time.Hour), testNow.Add(24*time.Hour))
	expiredCert, expiredKey := keyPair(t, "old.example", testNow.Add(-48*time.Hour), testNow.Add(-time.Hour))
	futureCert, futureKey := keyPair(t, "future.example", testNow.Add(time.Hour), testNow.Add(48*time.Hour))
	cases := map[string]struct {
		files     map[string][]byte
		wantReady string
	}{
		"a good pair is served":       {files: map[string][]byte{CertFile: goodCert, KeyFile: goodKey}},
		"no files at all":             {files: nil, wantReady: "no serving certificate: neither tls.crt nor tls.key can be read in DIR: open DIR/tls.crt: no such file or directory\nopen DIR/tls.key: no such file or directory"},
		"a Secret with only tls.crt":  {files: map[string][]byte{CertFile: goodCert}, wantReady: "no serving certificate: tls.key cannot be read (a Secret with only tls.crt?): open DIR/tls.key: no such file or directory"},
		"a corrupt key":               {files: map[string][]byte{CertFile: goodCert, KeyFile: []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")}, wantReady: "no serving certificate: tls.crt and tls.key do not make a usable key pair: tls: failed to parse private key"},
		"a key of another pair":       {files: map[string][]byte{CertFile: goodCert, KeyFile: otherKey}, wantReady: "no serving certificate: tls.crt and tls.key do not make a usable key pair: tls: private key does not match public key"},
		"an expired certificate":      {files: map[string][]byte{CertFile: expiredCert, KeyFile: expiredKey}, wantReady: "no serving certificate: tls.crt expired at 2026-11-21T11:00:00Z"},
		"a certificate not yet valid": {files: map[string][]byte{CertFile: futureCert, KeyFile: futureKey}, wantReady: "no serving certificate: tls.crt is not valid before 2026-11-21T13:00:00Z"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			watcher := newTestWatcher(dir, clocktesting.NewFakeClock(testNow))
			want := strings.ReplaceAll(tc.wantReady, "DIR", dir)
			if diff := cmp.Diff(want, errorText(watcher.Ready(nil))); diff != "" {
				t.Errorf("readiness (-want +got):\n%s", diff)
			}
			served, err := watcher.GetCertificate(nil)
			if (served != nil) != (tc.wantReady == "") {
				t.Errorf("GetCertificate gave %v, %v", served, err)
			}
		})
	}
}

func TestWatcherFollowsRotationAndKeepsTheLastGoodCertificate(t *testing.T) {
	dir := t.TempDir()
	clock := clocktesting.NewFakeClock(testNow)
	firstCert, firstKey := keyPair(t, "first.example", testNow.Add(-time.Hour), testNow.Add(24*time.Hour))
	writeFiles(t, dir, map[string][]byte{CertFile: firstCert, KeyFile: firstKey})
	watcher := newTestWatcher(dir, clock)
	served := func() string {
		certificate, err := watcher.GetCertificate(nil)
		if err != nil {
			return err.Error()
		}
		return certificate.Leaf.Subject.CommonName
	}
	if got := served(); got != "first.example" {
		t.Fatalf("served %q", got)
	}

	secondCert, secondKey := keyPair(t, "second.example", testNow.Add(-time.Hour), testNow.Add(48*time.Hour))
	writeFiles(t, dir, map[string][]byte{CertFile: secondCert, KeyFile: secondKey})
	watcher.reload()
	if got := served(); got != "second.example" {
		t.Errorf("after rotation served %q, want second.example", got)
	}

	// A half-written Secret: the previous certificate stays in use and the pod stays ready.
	writeFiles(t, dir, map[string][]byte{CertFile: firstCert})
	watcher.reload()
	if got := served(); got != "second.example" {
		t.Errorf("after a broken rotation served %q, want the last good second.example", got)
	}
	if err := watcher.Ready(nil); err != nil {
		t.Errorf("not ready while a good certificate is in use: %v", err)
	}
	if got := testutil.ToFloat64(certificateRefused); got != 1 {
		t.Errorf("backupguard_serving_certificate_refused = %g while the files are refused, want 1", got)
	}
	writeFiles(t, dir, map[string][]byte{CertFile: secondCert, KeyFile: secondKey})
	watcher.reload()
	if got := testutil.ToFloat64(certificateRefused); got != 0 {
		t.Errorf("backupguard_serving_certificate_refused = %g once good files are back, want 0", got)
	}

	// Time passes the certificate's end without a renewal: not ready.
	clock.SetTime(testNow.Add(49 * time.Hour))
	if diff := cmp.Diff("the serving certificate expired at 2026-11-23T12:00:00Z", errorText(watcher.Ready(nil))); diff != "" {
		t.Errorf("readiness (-want +got):\n%s", diff)
	}
}
