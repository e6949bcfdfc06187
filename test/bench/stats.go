package main

import (
	"math"
	"slices"
	"time"
)

// Latency is a latency sample summarised by nearest-rank percentiles.
type Latency struct {
	P50, P99, P999, Max time.Duration
}

// summarise sorts samples in place and returns their percentiles; an empty sample is all zero.
func summarise(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	return Latency{
		P50:  percentile(samples, 0.50),
		P99:  percentile(samples, 0.99),
		P999: percentile(samples, 0.999),
		Max:  samples[len(samples)-1],
	}
}

// percentile is the nearest-rank percentile of sorted: the smallest sample that at least fraction of
// the samples do not exceed.
func percentile(sorted []time.Duration, fraction float64) time.Duration {
	rank := int(math.Ceil(fraction * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// LoadResult is one load run: one endpoint at one number of keep-alive connections.
type LoadResult struct {
	// Endpoint names what was called: an admission endpoint, or "no-op" for the ceiling.
	Endpoint    string
	Connections int
	// Requests counts the answers received in the measured period; Errors the ones that were not the
	// expected AdmissionReview (transport errors, other statuses, wrong verdicts).
	Requests, Errors int
	Elapsed          time.Duration
	Latency          Latency
	// ServerCPU is the CPU time the answering process used in the measured period.
	ServerCPU time.Duration
}

// CPUPerRequest is the answering process's CPU time per answer.
func (r LoadResult) CPUPerRequest() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Requests)
}

// RequestsPerSecond is the throughput of the measured period.
func (r LoadResult) RequestsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}
