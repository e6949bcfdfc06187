package webhook

import (
	"context"
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

// Paths of the label webhooks.
const (
	PVCPath    = "/mutate-v1-persistentvolumeclaim"
	VolumePath = "/mutate-longhorn-io-v1beta2-volume"
)

// PVCLabeler gives PVCs the recurring-job labels the config's rules call for.
type PVCLabeler struct {
	// Reader is the manager's cache (lookup.Cache).
	Reader lookup.Reader
	Config func() *policies.Config
}

// Handle implements admission.Handler.
func (l *PVCLabeler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != "" || req.Kind.Kind != "PersistentVolumeClaim" {
		return badRequest(fmt.Errorf("this endpoint labels PersistentVolumeClaims, not %s", req.Kind))
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := json.Unmarshal(req.Object.Raw, pvc); err != nil {
		return badRequest(fmt.Errorf("decoding the PersistentVolumeClaim: %w", err))
	}
	config := l.Config()
	env, err := lookup.PVCEnvironment(ctx, l.Reader, req.Namespace, pvc, config)
	if err != nil {
		return allowedUnlabelled(err)
	}
	decision := policies.DecidePVCLabels(pvc, env, config.LabelRules())
	return patched(decision.Patch, decision.Warnings)
}

// VolumeLabeler gives Longhorn Volumes the recurring labels of their source PVC at once.
type VolumeLabeler struct {
	Reader lookup.Reader
}

// Handle implements admission.Handler.
func (l *VolumeLabeler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != longhorn.VolumeGVK.Group || req.Kind.Kind != longhorn.VolumeGVK.Kind {
		return badRequest(fmt.Errorf("this endpoint labels %s, not %s", longhorn.VolumeGVK.GroupKind(), req.Kind))
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	// Only the fields backupguard reads are decoded; the patch touches labels alone, so nothing newer
	// than this struct is lost.
	volume := &longhorn.Volume{}
	if err := json.Unmarshal(req.Object.Raw, volume); err != nil {
		return badRequest(fmt.Errorf("decoding the Volume: %w", err))
	}
	pvc, err := lookup.PVCOfVolume(ctx, l.Reader, volume)
	if err != nil {
		return allowedUnlabelled(err)
	}
	decision := policies.DecideVolumeLabels(volume, pvc)
	return patched(decision.Patch, decision.Warnings)
}

// allowedUnlabelled admits an object whose labels could not be decided. A denial would block PVCs and
// Volumes during an outage (failurePolicy only covers a webhook that does not answer), and labels are
// not worth that: the background sync adds them once the state can be read.
func allowedUnlabelled(err error) admission.Response {
	response := admission.Allowed("")
	response.Warnings = []string{fmt.Sprintf("backupguard could not decide the recurring-job labels (%v); its background sync will add them", err)}
	return response
}

// patched answers with a policy's JSON patch, or a plain allow when nothing changes.
func patched(patch []jsonpatch.Operation, warnings []string) admission.Response {
	if len(patch) == 0 {
		response := admission.Allowed("")
		response.Warnings = warnings
		return response
	}
	patchType := admissionv1.PatchTypeJSONPatch
	return admission.Response{
		Patches: patch,
		AdmissionResponse: admissionv1.AdmissionResponse{
			Allowed:   true,
			PatchType: &patchType,
			Warnings:  warnings,
		},
	}
}
