package webhook

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The verdicts an admission decision is counted under.
const (
	verdictAllowed = "allowed"
	verdictWarned  = "warned"
	verdictDenied  = "denied"
	verdictErrored = "errored"
)

var admissionDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "backupguard_admission_decisions_total",
	Help: "Admission decisions by webhook (recurringjobs, pvcs, volumes, jobs) and verdict: allowed, warned (allowed with warnings), denied (a rule refused it), errored (a malformed request or a failed lookup).",
}, []string{"webhook", "verdict"})

func init() { metrics.Registry.MustRegister(admissionDecisions) }

// named is implemented by this package's handlers: the webhook label their decisions are counted under,
// the first part of the webhook's name in the shipped configurations (pvcs for pvcs.backupguard.io).
type named interface{ webhookName() string }

func (*RecurringJobValidator) webhookName() string { return "recurringjobs" }
func (*PVCLabeler) webhookName() string            { return "pvcs" }
func (*VolumeLabeler) webhookName() string         { return "volumes" }
func (*JobPlacer) webhookName() string             { return "jobs" }

// countDecisions counts every answer of handler by verdict. Its counters are created here, once, so
// that every verdict of every webhook is exported from the start (a rate over a series that appears
// with its first denial misses that denial) and a decision costs one atomic add.
func countDecisions(handler admission.Handler) admission.Handler {
	name := "other"
	if n, ok := handler.(named); ok {
		name = n.webhookName()
	}
	counters := map[string]prometheus.Counter{}
	for _, verdict := range []string{verdictAllowed, verdictWarned, verdictDenied, verdictErrored} {
		counters[verdict] = admissionDecisions.WithLabelValues(name, verdict)
	}
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		response := handler.Handle(ctx, req)
		counters[verdictOf(response)].Inc()
		return response
	})
}

// verdictOf classifies an answer: a refusal by a rule is 422 Invalid (or 403 Forbidden); any other
// refusal is the request's or the server's fault, not a decision about the object.
func verdictOf(response admission.Response) string {
	switch {
	case response.Allowed && len(response.Warnings) > 0:
		return verdictWarned
	case response.Allowed:
		return verdictAllowed
	case response.Result != nil && (response.Result.Code == http.StatusUnprocessableEntity || response.Result.Code == http.StatusForbidden):
		return verdictDenied
	default:
		return verdictErrored
	}
}
