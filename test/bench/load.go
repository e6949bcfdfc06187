package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
}

// loadPlan is how long each run warms up and then measures.
type loadPlan struct {
	Warmup, Measure time.Duration
}

const (
	loadMeasuring int32 = iota + 1
	loadStopped
)

// runLoad sends target's request over connections keep-alive connections, each one request at a time
// (what an API server does with its pooled connections), and measures the answers that start and end
// within the measured period. Every answer is checked: the first one in full, later ones by comparing
// bytes with it, and in full again when they differ.
func runLoad(ctx context.Context, target loadTarget, tlsConfig *tls.Config, connections int, plan loadPlan) (LoadResult, error) {
	var phase atomic.Int32
	type workerResult struct {
		latencies []time.Duration
		errors    int
		firstErr  error
	}
	results := make([]workerResult, connections)
	var reference atomic.Pointer[[]byte]
	var wg sync.WaitGroup
	for worker := range connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			transport := &http.Transport{
				TLSClientConfig:     tlsConfig.Clone(),
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
			}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
			result := &results[worker]
			result.latencies = make([]time.Duration, 0, 4096)
			for {
				current := phase.Load()
				if current == loadStopped || ctx.Err() != nil {
					return
				}
				start := time.Now()
				answer, err := post(client, target.URL, target.Body)
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
	phase.Store(loadMeasuring)
	measureStart := time.Now()
	select {
	case <-time.After(plan.Measure):
	case <-ctx.Done():
	}
	phase.Store(loadStopped)
	elapsed := time.Since(measureStart)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return LoadResult{}, err
	}
	load := LoadResult{Endpoint: target.Name, Connections: connections, Elapsed: elapsed}
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
		return load, fmt.Errorf("%s at %d connections: %d of %d answers wrong, the first: %w", target.Name, connections, load.Errors, load.Requests, firstErr)
	}
	if load.Requests == 0 {
		return load, fmt.Errorf("%s at %d connections: no answer within %s", target.Name, connections, plan.Measure)
	}
	return load, nil
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
	reference.CompareAndSwap(nil, &answer)
	return nil
}
