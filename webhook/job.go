package webhook

import (
	"context"
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// JobPath is where the API server sends backup Jobs.
const JobPath = "/mutate-batch-v1-job"

var jobGroupKind = schema.GroupKind{Group: "batch", Kind: "Job"}

// JobPlacer pins backup Jobs to the node where their ReadWriteOnce volumes are attached.
type JobPlacer struct {
	// Reader is the manager's cache, with its Pod index (lookup.Cache).
	Reader lookup.Reader
	Config func() *policies.Config
}

// Handle implements admission.Handler.
func (p *JobPlacer) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != jobGroupKind.Group || req.Kind.Kind != jobGroupKind.Kind {
		return badRequest(fmt.Errorf("this endpoint places batch Jobs, not %s", req.Kind))
	}
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	job := &batchv1.Job{}
	if err := json.Unmarshal(req.Object.Raw, job); err != nil {
		return badRequest(fmt.Errorf("decoding the Job: %w", err))
	}
	config := p.Config()
	rules := config.BackupJobRules()
	if !rules.Selects(job) {
		return admission.Allowed("")
	}
	input, err := lookup.Placement(ctx, p.Reader, req.Namespace, job, config)
	if err != nil {
		// A backup Job placed blindly is worse than one refused: fail closed.
		return lookupFailed(err)
	}
	placement := policies.PlaceBackupJob(input)
	if len(placement.Errors) > 0 {
		return verdict(jobGroupKind, job.Name, placement.Errors, placement.Warnings)
	}
	return patched(placement.Patch, placement.Warnings)
}
