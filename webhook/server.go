package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/certs"
)

// ServerOptions say where the admission server listens, which certificate it serves and how long it
// waits for a client.
type ServerOptions struct {
	Host        string
	Port        int
	CertDir     string
	EnableHTTP2 bool
	Certificate *certs.Watcher
	// Limits bound what one connection may hold; a zero field takes DefaultLimits' value.
	Limits Limits
	// Log receives the HTTP server's own errors (failed TLS handshakes, for one).
	Log logr.Logger
	// Draining, once closed, makes the server close each connection after its next response (see
	// closeWhenDraining) while it goes on serving.
	Draining <-chan struct{}
}

// Limits bound how long, and with how much, one client may hold a connection to the webhook server, so
// that slow or stalled clients cannot tie it up. The API server sends a whole AdmissionReview at once
// and gives up on a webhook after its timeoutSeconds (at most 30 s), so nothing it sends needs longer.
type Limits struct {
	// ReadHeaderTimeout is how long a client has to send a request's headers (and, on a new
	// connection, to finish the TLS handshake).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client has to send a whole request, headers and body.
	ReadTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes is the most a request line and headers may take; a larger header is answered 431.
	MaxHeaderBytes int
}

// DefaultLimits are generous for the API server, which sends a review of at most a few MiB at once, yet
// bounded: a connection that sends nothing is closed after 10 s, a request still unread after 30 s
// (the longest webhook timeout the API server allows) is abandoned, and an idle connection is kept 90 s,
// as Go's and the API server's HTTP clients keep theirs.
func DefaultLimits() Limits {
	return Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
}

func (l Limits) withDefaults() Limits {
	defaults := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = defaults.ReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = defaults.ReadTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = defaults.IdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaults.MaxHeaderBytes
	}
	return l
}

// NewServer is the HTTPS server every admission endpoint is registered on. serve uses it, and so does
// the benchmarks' no-op server, so the ceiling they measure is this exact stack (TLS settings, HTTP
// server, AdmissionReview decoding and encoding) with nothing behind it.
//
// It is controller-runtime's webhook server with our own http.Server: controller-runtime's
// (pkg/internal/httpserver.New in v0.25) fixes ReadHeaderTimeout at 32 s and sets no read timeout, so a
// client that sends a body slowly holds its connection and goroutine for as long as it likes.
// Registration still goes through controller-runtime's server, so every endpoint keeps its
// controller_runtime_webhook_* metrics.
func NewServer(options ServerOptions) ctrlwebhook.Server {
	mux := http.NewServeMux()
	options.Limits = options.Limits.withDefaults()
	if options.Port == 0 {
		options.Port = ctrlwebhook.DefaultPort
	}
	return &server{
		Server:  ctrlwebhook.NewServer(ctrlwebhook.Options{Host: options.Host, Port: options.Port, CertDir: options.CertDir, WebhookMux: mux}),
		options: options,
		mux:     mux,
	}
}

type server struct {
	// Server registers endpoints (instrumented) on mux; it is never started.
	ctrlwebhook.Server
	options ServerOptions
	mux     *http.ServeMux

	mu      sync.Mutex
	started bool
}

func (s *server) address() string {
	return net.JoinHostPort(s.options.Host, strconv.Itoa(s.options.Port))
}

// Start serves until ctx ends, then lets requests in flight finish for up to a minute, as
// controller-runtime's server does.
func (s *server) Start(ctx context.Context) error {
	config := &tls.Config{NextProtos: []string{"h2"}}
	for _, option := range certs.ServingOptions(s.options.EnableHTTP2, s.options.Certificate) {
		option(config)
	}
	listener, err := tls.Listen("tcp", s.address(), config)
	if err != nil {
		return err
	}
	limits := s.options.Limits
	httpServer := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return ctx },
		Handler:           closeWhenDraining(readTimeoutSaysSo(s.mux, limits.ReadTimeout), s.options.Draining),
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          stdlog.New(logWriter{s.options.Log}, "", 0),
	}
	log := s.options.Log
	log.Info("serving webhooks", "address", listener.Addr().String(), "readHeaderTimeout", limits.ReadHeaderTimeout.String(),
		"readTimeout", limits.ReadTimeout.String(), "idleTimeout", limits.IdleTimeout.String(), "maxHeaderBytes", limits.MaxHeaderBytes)

	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := httpServer.Shutdown(shutdownCtx); err != nil {
			log.Error(err, "shutting down the webhook server")
		}
	}()
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := httpServer.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-shutDown
	return nil
}

// StartedChecker is healthy once the server accepts TLS connections, checked as controller-runtime's
// is: a TLS handshake with the server's own address.
func (s *server) StartedChecker() healthz.Checker {
	config := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only whether the server answers counts, not who it is
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return errors.New("webhook server has not been started yet")
		}
		connection, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.address(), config)
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return connection.Close()
	}
}

// closeWhenDraining answers with `Connection: close` once draining is closed, so that the client opens
// its next connection anew, through the Service, to a replica that is not stopping. It does what
// http.Server.SetKeepAlivesEnabled(false) does for connections in use, without what that also does
// (net/http server.go): close the idle ones at once, which is the race a drain is for avoiding: the API
// server may be sending a request on one at that instant, and it does not retry a webhook call. An
// idle connection is still answered until the server shuts down; over HTTP/2 the header becomes a
// GOAWAY (Go's HTTP/2 server).
func closeWhenDraining(next http.Handler, draining <-chan struct{}) http.Handler {
	if draining == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-draining:
			w.Header().Set("Connection", "close")
		default:
		}
		next.ServeHTTP(w, r)
	})
}

// readTimeoutSaysSo names the read timeout when a request body is cut off by it, so the answer and
// controller-runtime's log line ("unable to read the body from the incoming request") say which limit
// the client ran into rather than "i/o timeout"; and it closes that connection after the answer, which
// Go's server would otherwise keep for the idle timeout more.
func readTimeoutSaysSo(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = timeoutNamingBody{ReadCloser: r.Body, timeout: timeout, header: w.Header()}
		}
		next.ServeHTTP(w, r)
	})
}

type timeoutNamingBody struct {
	io.ReadCloser
	timeout time.Duration
	header  http.Header
}

func (b timeoutNamingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.header.Set("Connection", "close")
		err = fmt.Errorf("the request was not received within the webhook read timeout (%s)", b.timeout)
	}
	return n, err
}

// logWriter turns the HTTP server's own log lines into error log lines of ours.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(line []byte) (int, error) {
	w.log.Error(errors.New(string(trimNewline(line))), "webhook server")
	return len(line), nil
}

func trimNewline(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		return line[:n-1]
	}
	return line
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
