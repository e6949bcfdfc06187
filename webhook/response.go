// Package webhook holds the admission adapters: each decodes the request, looks up what its policy needs
// through the cached client, calls the policy and encodes the verdict. No rule lives here.
package webhook

import (
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// verdict answers with the policy's decision: allowed with warnings, or 422 Invalid with one cause per
// violation, exactly what the API server returns for its own validation, so kubectl and Flux show the
// field and tools can read status.details.causes.
func verdict(groupKind schema.GroupKind, name string, errs field.ErrorList, warnings []string) admission.Response {
	if len(errs) == 0 {
		response := admission.Allowed("")
		response.Warnings = warnings
		return response
	}
	status := apierrors.NewInvalid(groupKind, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed:  false,
		Result:   &status,
		Warnings: warnings,
	}}
}

// badRequest answers a request that no webhook configuration of ours would send.
func badRequest(err error) admission.Response {
	return admission.Errored(http.StatusBadRequest, err)
}

// lookupFailed answers when cluster state could not be read: the server's fault, never the user's.
func lookupFailed(err error) admission.Response {
	return admission.Errored(http.StatusInternalServerError, err)
}
