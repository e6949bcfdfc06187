// Command noopserver is the ceiling the benchmarks compare backupguard's endpoints with: the same
// admission server stack as `backupguard serve` (webhook.NewServer: TLS settings, HTTP server,
// AdmissionReview decoding and encoding, request metrics, logger) with one endpoint, /noop, that allows
// everything without looking at it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/certs"
	"github.com/backupguard/backupguard/logging"
	"github.com/backupguard/backupguard/webhook"
)

// Path is where the no-op endpoint is served.
const Path = "/noop"

func main() {
	certDir := flag.String("cert-dir", "", "directory holding tls.crt and tls.key")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "HTTPS port")
	flag.Parse()
	if *certDir == "" || *port == 0 {
		fmt.Fprintln(os.Stderr, "noopserver: --cert-dir and --port are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The same logger as serve's, at serve's default level.
	log, err := logging.New("info", os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noopserver:", err)
		os.Exit(1)
	}
	ctrl.SetLogger(log)
	certificate := certs.NewWatcher(*certDir, time.Minute, log.WithName("certs"))
	go func() { _ = certificate.Start(ctx) }()
	server := webhook.NewServer(webhook.ServerOptions{Host: *host, Port: *port, CertDir: *certDir, Certificate: certificate})
	server.Register(Path, webhook.Admission(admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})))
	if err := server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "noopserver:", err)
		os.Exit(1)
	}
}
