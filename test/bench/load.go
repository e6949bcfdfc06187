package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// loadTarget is one endpoint under load: where it is, the AdmissionReview it is sent, and how its answer
// is checked.
type loadTarget struct {
	Name string
	URL  string
	Body []byte
	// Check says what is wrong with an answer's AdmissionReview, or nil.
	Check func(*admissionv1.AdmissionReview) error
	// ServerPID is the process that answers, whose CPU time is measured.
	ServerPID int
}

// loadPlan is how long each run warms up and then measures, and how many rounds of runs there are:
// every target runs once per round, so a drift of the machine spreads over all of them.
type loadPlan struct {
	Warmup, Measure time.Duration
	Rounds          int
}

const (
	loadMeasuring int32 = iota + 1
	loadStopped
)

// runLoad sends target's request over connections keep-alive connections, each one request at a time
// (what an API server does with its pooled connections), and measures the answers that start and end
// within the measured period. Every answer is checked: the first one in full, later ones by comparing
// bytes with it, and in full again when they differ.
func runLoad(ctx context.Context, target loadTarget, tlsConfig *tls.Config, connections int, plan loadPlan) (LoadResult, []time.Duration, error) {
	var phase atomic.Int32
	type workerResult struct {
		latencies []time.Duration
		errors    int
		firstErr  error
	}
	results := make([]workerResult, connections)
	var reference atomic.Pointer[[]byte]
	var wg sync.WaitGroup
	host, path, err := splitURL(target.URL)
	if err != nil {
		return LoadResult{}, nil, err
	}
	request := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, host, len(target.Body), target.Body))
	for worker := range connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			result := &results[worker]
			result.latencies = make([]time.Duration, 0, 4096)
			connection := &keepAliveConnection{address: host, tlsConfig: tlsConfig, request: request}
			defer connection.Close()
			for {
				current := phase.Load()
				if current == loadStopped || ctx.Err() != nil {
					return
				}
				start := time.Now()
				answer, err := connection.Do()
				elapsed := time.Since(start)
				if err == nil {
					err = checkAnswer(target, answer, &reference)
				}
				if current != loadMeasuring || phase.Load() != loadMeasuring {
					continue // warming up, or ended after the measured period
				}
				result.latencies = append(result.latencies, elapsed)
				if err != nil {
					result.errors++
					if result.firstErr == nil {
						result.firstErr = err
					}
				}
			}
		}()
	}
	select {
	case <-time.After(plan.Warmup):
	case <-ctx.Done():
	}
	cpuStart, cpuErr := processCPU(target.ServerPID)
	phase.Store(loadMeasuring)
	measureStart := time.Now()
	select {
	case <-time.After(plan.Measure):
	case <-ctx.Done():
	}
	phase.Store(loadStopped)
	elapsed := time.Since(measureStart)
	cpuEnd, cpuEndErr := processCPU(target.ServerPID)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return LoadResult{}, nil, err
	}
	if err := errors.Join(cpuErr, cpuEndErr); err != nil {
		return LoadResult{}, nil, err
	}
	load := LoadResult{Endpoint: target.Name, Connections: connections, Elapsed: elapsed, ServerCPU: cpuEnd - cpuStart}
	var all []time.Duration
	var firstErr error
	for _, result := range results {
		all = append(all, result.latencies...)
		load.Errors += result.errors
		if firstErr == nil {
			firstErr = result.firstErr
		}
	}
	load.Requests = len(all)
	load.Latency = summarise(all)
	if firstErr != nil {
		return load, all, fmt.Errorf("%s at %d connections: %d of %d answers wrong, the first: %w", target.Name, connections, load.Errors, load.Requests, firstErr)
	}
	if load.Requests == 0 {
		return load, all, fmt.Errorf("%s at %d connections: no answer within %s", target.Name, connections, plan.Measure)
	}
	return load, all, nil
}

// mergeLoads adds up runs of one target at one level; latencies are all their samples.
func mergeLoads(runs []LoadResult, latencies []time.Duration) LoadResult {
	merged := LoadResult{Endpoint: runs[0].Endpoint, Connections: runs[0].Connections}
	for _, run := range runs {
		merged.Requests += run.Requests
		merged.Errors += run.Errors
		merged.Elapsed += run.Elapsed
		merged.ServerCPU += run.ServerCPU
	}
	merged.Latency = summarise(latencies)
	return merged
}

func post(client *http.Client, url string, body []byte) ([]byte, error) {
	response, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		return nil, err
	}
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", response.StatusCode, answer)
	}
	return answer, nil
}

// answerTimeout is the longest one answer may take.
const answerTimeout = 10 * time.Second

// keepAliveConnection sends one prepared HTTP/1.1 request at a time over one TLS connection, and
// reads only what it must of the answer (status, Content-Length or chunks, body): the load generator
// shares the machine with the server, so the less CPU it spends the more the server gets, for the
// endpoints and the ceiling alike.
type keepAliveConnection struct {
	address   string
	tlsConfig *tls.Config
	request   []byte
	conn      *tls.Conn
	reader    *bufio.Reader
	body      []byte
}

// Do sends the request and returns the answer's body, valid until the next call; it reconnects when
// the server closed the connection.
func (c *keepAliveConnection) Do() ([]byte, error) {
	if c.conn == nil {
		conn, err := tls.Dial("tcp", c.address, c.tlsConfig)
		if err != nil {
			return nil, err
		}
		c.conn, c.reader = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	// A server that stops answering fails the run instead of hanging it.
	if err := c.conn.SetDeadline(time.Now().Add(answerTimeout)); err != nil {
		c.Close()
		return nil, err
	}
	body, keepAlive, err := c.roundTrip()
	if err != nil || !keepAlive {
		c.Close()
	}
	return body, err
}

func (c *keepAliveConnection) roundTrip() (body []byte, keepAlive bool, err error) {
	if _, err := c.conn.Write(c.request); err != nil {
		return nil, false, err
	}
	status, err := c.reader.ReadSlice('\n')
	if err != nil {
		return nil, false, err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return nil, false, fmt.Errorf("answer %q", bytes.TrimSpace(status))
	}
	length, chunked, keepAlive := -1, false, true
	for {
		line, err := c.reader.ReadSlice('\n')
		if err != nil {
			return nil, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return nil, false, fmt.Errorf("Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			line, err := c.reader.ReadSlice('\n')
			if err != nil {
				return nil, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
			if err != nil {
				return nil, false, fmt.Errorf("chunk size %q", bytes.TrimSpace(line))
			}
			if c.body, err = readFull(c.reader, c.body, int(size)+2); err != nil { // the chunk and its CRLF
				return nil, false, err
			}
			c.body = c.body[:len(c.body)-2]
			if size == 0 {
				return c.body, keepAlive, nil
			}
		}
	case length >= 0:
		c.body, err = readFull(c.reader, c.body, length)
		return c.body, keepAlive, err
	default:
		return nil, false, errors.New("answer without Content-Length or chunks")
	}
}

func readFull(reader io.Reader, buffer []byte, n int) ([]byte, error) {
	start := len(buffer)
	buffer = slices.Grow(buffer, n)[:start+n]
	_, err := io.ReadFull(reader, buffer[start:])
	return buffer, err
}

// Close drops the connection; the next Do dials again.
func (c *keepAliveConnection) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.reader = nil, nil
	}
}

func splitURL(raw string) (host, path string, err error) {
	parsed, err := url.Parse(raw)
	if err != nil || parsed.Scheme != "https" || parsed.Host == "" {
		return "", "", fmt.Errorf("load target %q: want an https URL", raw)
	}
	return parsed.Host, parsed.RequestURI(), nil
}

// checkAnswer accepts an answer byte-identical to the first good one, else checks it in full.
func checkAnswer(target loadTarget, answer []byte, reference *atomic.Pointer[[]byte]) error {
	if known := reference.Load(); known != nil && bytes.Equal(*known, answer) {
		return nil
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(answer, &review); err != nil {
		return fmt.Errorf("answer is not an AdmissionReview: %w", err)
	}
	if review.Response == nil {
		return fmt.Errorf("AdmissionReview without a response: %s", answer)
	}
	if err := target.Check(&review); err != nil {
		return err
	}
	kept := bytes.Clone(answer) // answer is the connection's buffer
	reference.CompareAndSwap(nil, &kept)
	return nil
}

// userHZ is the unit of the CPU times in /proc/PID/stat: 100 per second on every Linux architecture
// Kubernetes runs on.
const userHZ = 100

// processCPU is the user and system CPU time a process has used so far, all its threads included.
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; the fields after it are numbered from 3.
	closing := bytes.LastIndexByte(stat, ')')
	fields := strings.Fields(string(stat[closing+1:]))
	if closing < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, field := range fields[11:13] { // utime and stime, fields 14 and 15
		value, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += value
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
