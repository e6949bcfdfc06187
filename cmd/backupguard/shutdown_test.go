package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// shutdownRun drives drainThenStop with signals and a timer of the test's.
type shutdownRun struct {
	signals        chan os.Signal
	timer          chan time.Time
	asked          chan time.Duration // the delays drainThenStop waited for
	exited         chan struct{}
	draining, stop context.Context
	readyz         http.Handler
	delay          time.Duration
}

func startShutdownRun(delay time.Duration) *shutdownRun {
	r := &shutdownRun{signals: make(chan os.Signal, 2), timer: make(chan time.Time), asked: make(chan time.Duration, 1),
		exited: make(chan struct{}), delay: delay}
	after := func(d time.Duration) <-chan time.Time { r.asked <- d; return r.timer }
	r.draining, r.stop = drainThenStop(r.signals, delay, after, logr.Discard(), func() { close(r.exited) })
	r.readyz = &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping, "shutting-down": shuttingDown(r.draining, delay)}}
	return r
}

// state is what can be seen of a run: whether each context has ended, whether it exited, and /readyz.
type shutdownState struct {
	Draining, Stopped, Exited bool
	ReadyzStatus              int
	Readyz                    string // the whole /readyz, which withholds reasons
	Check                     string // /readyz/shutting-down, which says why
}

func (r *shutdownRun) state() shutdownState {
	recorder := httptest.NewRecorder()
	r.readyz.ServeHTTP(recorder, httptest.NewRequest(http.MethodGet, "/?verbose", nil))
	check := httptest.NewRecorder()
	r.readyz.ServeHTTP(check, httptest.NewRequest(http.MethodGet, "/shutting-down", nil))
	exited := false
	select {
	case <-r.exited:
		exited = true
	default:
	}
	return shutdownState{Draining: r.draining.Err() != nil, Stopped: r.stop.Err() != nil, Exited: exited,
		ReadyzStatus: recorder.Code, Readyz: recorder.Body.String(), Check: check.Body.String()}
}

// await waits for done, failing the test after a bound far beyond what it needs.
func await(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen within 10s", what)
	}
}

const (
	ready       = "[+]ping ok\n[+]shutting-down ok\nhealthz check passed\n"
	notReady    = "[+]ping ok\n[-]shutting-down failed: reason withheld\nhealthz check failed\n"
	shutting5s  = "internal server error: shutting down: admission is served for the shutdown delay (5s) while the endpoint is removed\n"
	shuttingNow = "internal server error: shutting down\n"
)

func TestShutdownDrainsThenStops(t *testing.T) {
	r := startShutdownRun(5 * time.Second)
	got := []shutdownState{r.state()}
	r.signals <- syscall.SIGTERM
	await(t, r.draining.Done(), "draining")
	if asked := <-r.asked; asked != 5*time.Second {
		t.Errorf("waited for %v, want the shutdown delay 5s", asked)
	}
	got = append(got, r.state()) // the delay has not ended: serving, not ready
	r.timer <- time.Time{}
	await(t, r.stop.Done(), "stopping")
	got = append(got, r.state())
	r.signals <- syscall.SIGTERM
	await(t, r.exited, "exiting on a second signal")
	got = append(got, r.state())
	want := []shutdownState{
		{ReadyzStatus: http.StatusOK, Readyz: ready, Check: "ok"},
		{Draining: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shutting5s},
		{Draining: true, Stopped: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shutting5s},
		{Draining: true, Stopped: true, Exited: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shutting5s},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("before the signal, during the delay, after it, after a second signal (-want +got):\n%s", diff)
	}
}

func TestShutdownSecondSignalDuringTheDelayExits(t *testing.T) {
	r := startShutdownRun(5 * time.Second)
	r.signals <- syscall.SIGTERM
	<-r.asked
	r.signals <- syscall.SIGINT
	await(t, r.exited, "exiting on a second signal")
	want := shutdownState{Draining: true, Exited: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shutting5s}
	if diff := cmp.Diff(want, r.state()); diff != "" {
		t.Errorf("after a second signal within the delay (-want +got):\n%s", diff)
	}
}

// With --shutdown-delay 0 serve stops on the signal, as it did before the delay existed.
func TestShutdownWithoutDelayStopsAtOnce(t *testing.T) {
	r := startShutdownRun(0)
	r.signals <- syscall.SIGTERM
	await(t, r.stop.Done(), "stopping")
	got := []shutdownState{r.state()}
	r.signals <- syscall.SIGTERM
	await(t, r.exited, "exiting on a second signal")
	got = append(got, r.state())
	want := []shutdownState{
		{Draining: true, Stopped: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shuttingNow},
		{Draining: true, Stopped: true, Exited: true, ReadyzStatus: http.StatusInternalServerError, Readyz: notReady, Check: shuttingNow},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the signal, after a second one (-want +got):\n%s", diff)
	}
	select {
	case asked := <-r.asked:
		t.Errorf("waited for %v, want no wait", asked)
	default:
	}
}
