package webhook

import (
	"github.com/go-logr/logr"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/certs"
)

// ServerOptions say where the admission server listens and which certificate it serves.
type ServerOptions struct {
	Host        string
	Port        int
	CertDir     string
	EnableHTTP2 bool
	Certificate *certs.Watcher
}

// NewServer is the HTTPS server every admission endpoint is registered on. serve uses it, and so does
// the benchmarks' no-op server, so the ceiling they measure is this exact stack (TLS settings, HTTP
// server, AdmissionReview decoding and encoding) with nothing behind it.
func NewServer(options ServerOptions) ctrlwebhook.Server {
	return ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host:    options.Host,
		Port:    options.Port,
		CertDir: options.CertDir,
		TLSOpts: certs.ServingOptions(options.EnableHTTP2, options.Certificate),
	})
}

// Admission wraps a handler as an admission endpoint that counts its decisions
// (backupguard_admission_decisions_total). serve and the benchmarks' no-op server register every
// endpoint through it.
func Admission(handler admission.Handler) *admission.Webhook {
	return &admission.Webhook{Handler: countDecisions(handler), LogConstructor: requestLogger}
}

// requestLogger names the request in every log line of its handling, as controller-runtime's default
// does, but only when debug logging is on: zap encodes those values eagerly, on every request, while
// at info level nothing of a request that succeeds is logged.
func requestLogger(base logr.Logger, req *admission.Request) logr.Logger {
	if req == nil || !base.V(1).Enabled() {
		return base
	}
	return admission.DefaultLogConstructor(base, req)
}
