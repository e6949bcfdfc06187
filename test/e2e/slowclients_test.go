package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/webhook"
)

// The limits the slow-client tests give serve, small so that they run in seconds.
const (
	testHeaderTimeout = 3 * time.Second
	testReadTimeout   = 5 * time.Second
	testIdleTimeout   = 4 * time.Second
	// cutOffSlack is how much later than its timeout a connection may be cut off, on a loaded machine.
	cutOffSlack = 10 * time.Second
	// promptly is the shortest timeoutSeconds in manifests/webhook: an answer later than that is as
	// good as none to the API server.
	promptly = 3 * time.Second
)

func startServeWithSmallLimits(t *testing.T) *ownServe {
	return startOwnServe(t, testCluster.Env.WebhookInstallOptions.LocalServingCertDir,
		"--webhook-read-header-timeout", testHeaderTimeout.String(), "--webhook-read-timeout", testReadTimeout.String(),
		"--webhook-idle-timeout", testIdleTimeout.String(), "--webhook-max-header-bytes", "8192")
}

// heldConnection is what one slow client saw: everything the server sent until it closed the
// connection, and how long after the TLS handshake that was.
type heldConnection struct {
	received []byte
	err      error
	elapsed  time.Duration
}

// holdRequest opens a TLS connection to address, writes first at once, then drip one byte a second,
// and reads until the server closes the connection. connected is told once the handshake is done and
// first is written.
func holdRequest(config *tls.Config, address string, first, drip []byte, connected func()) heldConnection {
	connection, err := tls.Dial("tcp", address, config)
	if err != nil {
		connected()
		return heldConnection{err: err}
	}
	defer connection.Close()
	start := time.Now()
	if _, err := connection.Write(first); err != nil {
		connected()
		return heldConnection{err: err}
	}
	connected()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for _, b := range drip {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			if _, err := connection.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	received, err := io.ReadAll(connection)
	return heldConnection{received: received, err: err, elapsed: time.Since(start)}
}

// requestHead is the request line and headers of a review for the RecurringJob endpoint.
func requestHead(contentLength int) string {
	return fmt.Sprintf("POST %s?timeout=5s HTTP/1.1\r\nHost: backupguard\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", webhook.RecurringJobPath, contentLength)
}

// answer reads what a server sent as an HTTP answer: status and body, "" when it sent nothing.
func answer(received []byte) rawAnswer {
	if len(received) == 0 {
		return rawAnswer{}
	}
	response, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(received)), nil)
	if err != nil {
		return rawAnswer{Body: fmt.Sprintf("not an HTTP answer (%v): %q", err, received)}
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	return rawAnswer{Status: response.StatusCode, Body: strings.TrimSpace(string(body))}
}

// checkCutOff checks that a slow client got want and was cut off after its timeout, no sooner and not
// much later.
func checkCutOff(t *testing.T, what string, got heldConnection, want rawAnswer, timeout time.Duration) {
	t.Helper()
	if got.err != nil {
		t.Errorf("%s: %v", what, got.err)
		return
	}
	if diff := cmp.Diff(want, answer(got.received)); diff != "" {
		t.Errorf("%s: answer (-want +got):\n%s", what, diff)
	}
	if got.elapsed < timeout-250*time.Millisecond || got.elapsed > timeout+cutOffSlack {
		t.Errorf("%s: cut off after %s, want after its %s timeout and within %s of it", what, got.elapsed.Round(time.Millisecond), timeout, cutOffSlack)
	}
}

// goodReview sends a valid RecurringJob review and checks that it is allowed promptly.
func goodReview(t *testing.T, serve *ownServe) time.Duration {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: envtestTLS(t)}}
	defer client.CloseIdleConnections()
	body := reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"between"},"spec":{"task":"snapshot","cron":"0 * * * *","retain":3}}`)
	start := time.Now()
	response, err := client.Post("https://"+serve.webhook+webhook.RecurringJobPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("a good review: %v", err)
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	took := time.Since(start)
	want := rawAnswer{Status: http.StatusOK, Body: goodAnswer}
	if diff := cmp.Diff(want, rawAnswer{Status: response.StatusCode, Body: strings.TrimSpace(string(data))}); diff != "" {
		t.Errorf("a good review: answer (-want +got):\n%s", diff)
	}
	if took > promptly {
		t.Errorf("a good review took %s, more than the %s the API server waits", took.Round(time.Millisecond), promptly)
	}
	return took
}

// goodAnswer is serve's answer to the good reviews: allowed, with the warning every RecurringJob gets
// while Longhorn's setting allow-recurring-job-while-volume-detached is false.
const goodAnswer = `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"0c8e4bde-1e0f-4d3a-9d7e-6f1f2a3b4c5d","allowed":true,` +
	`"status":{"metadata":{},"code":200},"warnings":["detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"]}}`

// slowHeadersCutOff is what a client sending its headers slowly sees: Go's HTTP server answers a
// request line cut short by the header timeout with a bare 400 and closes the connection (as observed
// with Go 1.26; its (*conn).serve in net/http/server.go closes silently only on errors it counts as
// common). Each slow client sends its first byte at once, so there always is a partial request line.
var slowHeadersCutOff = rawAnswer{Status: http.StatusBadRequest, Body: "400 Bad Request"}

// bodyTimedOut is serve's answer to a request whose body stopped coming.
var bodyTimedOut = rawAnswer{Status: http.StatusOK, Body: fmt.Sprintf(`{"response":{"uid":"","allowed":false,"status":{"metadata":{},"message":"the request was not received within the webhook read timeout (%s)","code":400}}}`, testReadTimeout)}

// TestSlowClientsAreCutOff runs serve with small webhook timeouts and holds requests open the ways a
// slow or hostile client would: each is cut off after its timeout, and serve answers a good review
// promptly meanwhile.
func TestSlowClientsAreCutOff(t *testing.T) {
	serve := startServeWithSmallLimits(t)
	config := envtestTLS(t)
	slowHead := []byte(requestHead(10))
	slowFirst, slowDrip := slowHead[:1], slowHead[1:]
	stalledBody := []byte(requestHead(1000) + `{"apiVersion":`)

	t.Run("headers sent one byte a second are cut off after the header timeout", func(t *testing.T) {
		got := holdRequest(config, serve.webhook, slowFirst, slowDrip, func() {})
		checkCutOff(t, "slow headers", got, slowHeadersCutOff, testHeaderTimeout)
		goodReview(t, serve)
	})
	t.Run("a body that stops coming is cut off after the read timeout, with an answer that says so", func(t *testing.T) {
		got := holdRequest(config, serve.webhook, stalledBody, nil, func() {})
		checkCutOff(t, "stalled body", got, bodyTimedOut, testReadTimeout)
		lines := readLogLines(serve.logPath, "unable to read the body from the incoming request")
		if len(lines) == 0 || lines[len(lines)-1]["error"] != fmt.Sprintf("the request was not received within the webhook read timeout (%s)", testReadTimeout) {
			t.Errorf("no log line names the read timeout: %v", lines)
		}
		goodReview(t, serve)
	})
	t.Run("an idle kept-alive connection is closed after the idle timeout", func(t *testing.T) {
		review := reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"idle"},"spec":{"task":"snapshot","cron":"0 * * * *","retain":3}}`)
		got := holdRequest(config, serve.webhook, []byte(requestHead(len(review))+review), nil, func() {})
		checkCutOff(t, "idle connection", got, rawAnswer{Status: http.StatusOK, Body: goodAnswer}, testIdleTimeout)
	})
	t.Run("a connection that never starts TLS is closed after the header timeout, and logged", func(t *testing.T) {
		connection, err := net.Dial("tcp", serve.webhook)
		if err != nil {
			t.Fatal(err)
		}
		defer connection.Close()
		start := time.Now()
		received, err := io.ReadAll(connection)
		checkCutOff(t, "silent connection", heldConnection{received: received, err: err, elapsed: time.Since(start)}, rawAnswer{}, testHeaderTimeout)
		want := fmt.Sprintf("http: TLS handshake error from %s: read tcp %s->%s: i/o timeout", connection.LocalAddr(), connection.RemoteAddr(), connection.LocalAddr())
		eventually(t, "the failed handshake to be logged", func() (bool, string) {
			lines := readLogLines(serve.logPath, "webhook server")
			return len(lines) > 0 && lines[len(lines)-1]["error"] == want, fmt.Sprint(lines)
		})
	})
	t.Run("headers over the size limit are answered 431", func(t *testing.T) {
		got := holdRequest(config, serve.webhook, []byte(strings.Replace(string(slowHead), "Host:", "X-Padding: "+strings.Repeat("a", 16<<10)+"\r\nHost:", 1)), nil, func() {})
		if diff := cmp.Diff(rawAnswer{Status: http.StatusRequestHeaderFieldsTooLarge, Body: "431 Request Header Fields Too Large"}, answer(got.received)); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
	})
	serve.running(t)
}

// TestManySlowClientsDoNotStopServe holds 200 slow connections open at once, half sending headers a
// byte a second and half stalling in the body: serve answers a good review promptly while they are
// held and after they are cut off, and its memory stays bounded.
func TestManySlowClientsDoNotStopServe(t *testing.T) {
	const clients = 200
	// 200 held TLS connections, each with its goroutine, buffers and TLS state, take a few MiB; the
	// bound leaves room for the garbage collector's own pace.
	const rssGrowthBoundKiB = 64 << 10
	serve := startServeWithSmallLimits(t)
	config := envtestTLS(t)
	goodReview(t, serve)
	before := serve.rssKiB(t)

	var connected, finished sync.WaitGroup
	results := make([]heldConnection, clients)
	connected.Add(clients)
	finished.Add(clients)
	for i := range clients {
		first, drip := []byte(requestHead(1000)+`{"apiVersion":`), []byte(nil)
		if i%2 == 0 {
			head := []byte(requestHead(10))
			first, drip = head[:1], head[1:]
		}
		go func() {
			defer finished.Done()
			results[i] = holdRequest(config, serve.webhook, first, drip, sync.OnceFunc(connected.Done))
		}()
	}
	connected.Wait()
	held := goodReview(t, serve)
	during := serve.rssKiB(t)
	finished.Wait()
	after := goodReview(t, serve)
	afterRSS := serve.rssKiB(t)

	for i, got := range results {
		if i%2 == 0 {
			checkCutOff(t, fmt.Sprintf("slow headers %d", i), got, slowHeadersCutOff, testHeaderTimeout)
		} else {
			checkCutOff(t, fmt.Sprintf("stalled body %d", i), got, bodyTimedOut, testReadTimeout)
		}
	}
	t.Logf("a good review took %s while %d slow clients were held and %s after they were cut off; serve's RSS: %d KiB before, %d KiB while held, %d KiB after",
		held.Round(time.Millisecond), clients, after.Round(time.Millisecond), before, during, afterRSS)
	if grown := max(during, afterRSS) - before; grown > rssGrowthBoundKiB {
		t.Errorf("serve's RSS grew by %d KiB with %d slow clients, more than %d KiB", grown, clients, rssGrowthBoundKiB)
	}
	serve.running(t)
}
