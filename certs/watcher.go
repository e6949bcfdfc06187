package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// File names in the certificate directory, as cert-manager and kubernetes.io/tls Secrets name them.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

var certificateExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "backupguard_serving_certificate_expiry_timestamp_seconds",
	Help: "When the serving certificate in use expires (Unix time); 0 while none is loaded.",
})

var certificateRefused = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "backupguard_serving_certificate_refused",
	Help: "1 while the files in the certificate directory are refused (missing, partial, corrupt, expired, not yet valid): the last good certificate, if any, is served meanwhile; else 0.",
})

func init() { metrics.Registry.MustRegister(certificateExpiry, certificateRefused) }

// refusedRepeat is how often the watcher says again that the files are refused while they stay so.
const refusedRepeat = 10 * time.Minute

// Watcher serves the certificate found in a directory and follows it as it changes: a mounted Secret
// is swapped by the kubelet, and cert-manager renews it, so it is re-read on every poll and a new valid
// pair replaces the old one for the next handshake, with no restart and no failed request. A missing,
// partial, corrupt or expired pair never stops the process: the last good certificate stays in use, or,
// when there is none, handshakes fail and readiness says why, until a good one appears.
type Watcher struct {
	Dir      string
	Interval time.Duration
	Clock    clock.PassiveClock
	Log      logr.Logger

	mu          sync.RWMutex
	certificate *tls.Certificate
	notAfter    time.Time
	problem     error
	lastFiles   []byte
	lastSaid    time.Time
}

// NewWatcher loads the directory once, so that a good certificate is served from the first request.
func NewWatcher(dir string, interval time.Duration, log logr.Logger) *Watcher {
	watcher := &Watcher{Dir: dir, Interval: interval, Clock: clock.RealClock{}, Log: log}
	watcher.reload()
	return watcher
}

// Start re-reads the directory every Interval until ctx ends; it runs on every replica.
func (w *Watcher) Start(ctx context.Context) error {
	ticker := time.NewTicker(w.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.reload()
		}
	}
}

// NeedLeaderElection is false: every replica serves TLS.
func (w *Watcher) NeedLeaderElection() bool { return false }

// GetCertificate hands the current certificate to each TLS handshake.
func (w *Watcher) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.certificate == nil {
		return nil, fmt.Errorf("no serving certificate: %w", w.problem)
	}
	return w.certificate, nil
}

// Ready is a readiness check: it fails while no valid, unexpired certificate is loaded.
func (w *Watcher) Ready(*http.Request) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	switch {
	case w.certificate == nil:
		return fmt.Errorf("no serving certificate: %w", w.problem)
	case !w.Clock.Now().Before(w.notAfter):
		return fmt.Errorf("the serving certificate expired at %s", w.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func (w *Watcher) reload() {
	certPEM, certErr := os.ReadFile(filepath.Join(w.Dir, CertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(w.Dir, KeyFile))
	files := append(append([]byte{}, certPEM...), keyPEM...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.certificate != nil && bytes.Equal(files, w.lastFiles) && w.problem == nil {
		return
	}
	changed := !bytes.Equal(files, w.lastFiles)
	w.lastFiles = files
	certificate, notAfter, err := w.load(certPEM, certErr, keyPEM, keyErr)
	if err != nil {
		w.problem = err
		certificateRefused.Set(1)
		// Said when the files change, and again now and then while they stay refused: serving an old
		// certificate quietly would only surface when it expires.
		if !changed && w.Clock.Since(w.lastSaid) < refusedRepeat {
			return
		}
		w.lastSaid = w.Clock.Now()
		if w.certificate != nil {
			w.Log.Error(err, "the certificate files are refused; the last good serving certificate stays in use", "dir", w.Dir,
				"serial", w.certificate.Leaf.SerialNumber.String(), "notAfter", w.notAfter.UTC().Format(time.RFC3339))
		} else {
			w.Log.Error(err, "no usable serving certificate yet; not ready until one appears", "dir", w.Dir)
		}
		return
	}
	w.certificate, w.notAfter, w.problem = certificate, notAfter, nil
	certificateExpiry.Set(float64(notAfter.Unix()))
	certificateRefused.Set(0)
	w.Log.Info("serving certificate loaded", "dir", w.Dir, "subject", certificate.Leaf.Subject.String(),
		"serial", certificate.Leaf.SerialNumber.String(), "notAfter", notAfter.UTC().Format(time.RFC3339))
}

func (w *Watcher) load(certPEM []byte, certErr error, keyPEM []byte, keyErr error) (*tls.Certificate, time.Time, error) {
	switch {
	case certErr != nil && keyErr != nil:
		return nil, time.Time{}, fmt.Errorf("neither %s nor %s can be read in %s: %w", CertFile, KeyFile, w.Dir, errors.Join(certErr, keyErr))
	case certErr != nil:
		return nil, time.Time{}, fmt.Errorf("%s cannot be read: %w", CertFile, certErr)
	case keyErr != nil:
		return nil, time.Time{}, fmt.Errorf("%s cannot be read (a Secret with only %s?): %w", KeyFile, CertFile, keyErr)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s and %s do not make a usable key pair: %w", CertFile, KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", CertFile, err)
	}
	now := w.Clock.Now()
	if !now.Before(leaf.NotAfter) {
		return nil, time.Time{}, fmt.Errorf("%s expired at %s", CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, time.Time{}, fmt.Errorf("%s is not valid before %s", CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	pair.Leaf = leaf
	return &pair, leaf.NotAfter, nil
}
