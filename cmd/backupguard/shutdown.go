package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// setupShutdown is controller-runtime's SetupSignalHandler with a drain in front: draining ends at the
// first SIGTERM or SIGINT, stop delay later (at once when delay is 0); a second signal exits 1 at once.
func setupShutdown(delay time.Duration, log logr.Logger) (draining, stop context.Context) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	return drainThenStop(signals, delay, clock.RealClock{}.After, log, func() { os.Exit(1) })
}

// drainThenStop is setupShutdown's logic, on a channel of signals and a timer of the caller's.
func drainThenStop(signals <-chan os.Signal, delay time.Duration, after func(time.Duration) <-chan time.Time, log logr.Logger,
	exit func()) (draining, stop context.Context) {
	draining, startDraining := context.WithCancel(context.Background())
	stop, stopNow := context.WithCancel(context.Background())
	go func() {
		received := <-signals
		startDraining()
		if delay > 0 {
			log.Info("shutting down: /readyz fails, admission is still served until the shutdown delay ends", "signal", received.String(), "shutdownDelay", delay.String())
			select {
			case <-after(delay):
			case received = <-signals:
				log.Info("second signal: exiting at once", "signal", received.String())
				exit()
				return
			}
		}
		stopNow()
		<-signals
		exit()
	}()
	return draining, stop
}

// shuttingDown is a readiness check that fails once draining has ended, so that the Service stops
// sending new connections here while admission is still served.
func shuttingDown(draining context.Context, delay time.Duration) healthz.Checker {
	return func(*http.Request) error {
		if draining.Err() == nil {
			return nil
		}
		if delay > 0 {
			return fmt.Errorf("shutting down: admission is served for the shutdown delay (%s) while the endpoint is removed", delay)
		}
		return errors.New("shutting down")
	}
}
