package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// serveProbes serves /healthz and /readyz at address for serve's whole life, from before the manager
// exists (serve may first wait for Longhorn's CRDs) until ctx ends, the way controller-runtime's
// manager serves them (its healthz.Handler on the same paths; manager/internal.go
// addHealthProbeServer), so the probes read the same either way. It returns once it listens.
func serveProbes(ctx context.Context, address string, live, ready map[string]healthz.Checker, log logr.Logger) error {
	if address == "" || address == "0" {
		return nil
	}
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	for path, checks := range map[string]map[string]healthz.Checker{"/healthz": live, "/readyz": ready} {
		handler := http.StripPrefix(path, &healthz.Handler{Checks: checks})
		mux.Handle(path, handler)
		mux.Handle(path+"/", handler)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
	}()
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "serving the health probes")
		}
	}()
	log.Info("serving health probes", "address", listener.Addr().String())
	return nil
}

// lateCheck is a check whose checker is known only later (once the manager exists); until then it
// fails.
type lateCheck struct {
	checker atomic.Pointer[healthz.Checker]
}

func (l *lateCheck) set(checker healthz.Checker) { l.checker.Store(&checker) }

func (l *lateCheck) check(req *http.Request) error {
	checker := l.checker.Load()
	if checker == nil {
		return errors.New("not started yet")
	}
	return (*checker)(req)
}
