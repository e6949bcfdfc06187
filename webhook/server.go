package webhook

import (
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

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
