package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/backupguard/backupguard/webhook"
)

// postReview sends a raw body to the running webhook over TLS, trusting only the CA the webhook
// configuration carries, and decodes the AdmissionReview it answers.
func postReview(t *testing.T, path, body string) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	client, url := webhookClient(t, path)
	response, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	review := &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(data, review); err != nil {
		t.Fatalf("answer %q is not an AdmissionReview: %v", data, err)
	}
	return response.StatusCode, review.Response
}

// webhookClient is an HTTPS client that trusts serve's test certificate, and the URL of path on serve.
func webhookClient(t *testing.T, path string) (*http.Client, string) {
	t.Helper()
	options := testCluster.Env.WebhookInstallOptions
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(options.LocalServingCAData) {
		t.Fatal("no CA from envtest")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return client, fmt.Sprintf("https://%s:%d%s", options.LocalServingHost, options.LocalServingPort, path)
}

func reviewOf(kind metav1.GroupVersionKind, namespace, object string) string {
	request := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "0c8e4bde-1e0f-4d3a-9d7e-6f1f2a3b4c5d",
			"kind":      kind,
			"resource":  map[string]string{"group": kind.Group, "version": kind.Version, "resource": strings.ToLower(kind.Kind) + "s"},
			"namespace": namespace,
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "e2e"},
			"object":    json.RawMessage(object),
		},
	}
	data, _ := json.Marshal(request)
	return string(data)
}

var recurringJobKind = metav1.GroupVersionKind{Group: "longhorn.io", Version: "v1beta2", Kind: "RecurringJob"}

// TestMalformedReviewsGetAClearClientError sends what the API server never would, straight to the
// webhook over TLS: each gets a 4xx verdict with a precise message, never a 5xx or a crash.
func TestMalformedReviewsGetAClearClientError(t *testing.T) {
	cases := map[string]struct {
		body    string
		code    int32
		reason  metav1.StatusReason
		message string
		name    string
		causes  []metav1.StatusCause
	}{
		"a body that is not JSON": {
			body:    `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": `,
			code:    http.StatusBadRequest,
			message: "couldn't get version/kind; json parse error: unexpected end of JSON input",
		},
		"a ConfigMap sent to the RecurringJob endpoint": {
			body:    reviewOf(metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "default", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`),
			code:    http.StatusBadRequest,
			message: "this endpoint validates RecurringJob.longhorn.io, not /v1, Kind=ConfigMap",
		},
		"an object that is a JSON list": {
			body:    reviewOf(recurringJobKind, longhornNamespace, `[1, 2]`),
			code:    http.StatusBadRequest,
			message: "the CREATE request's object: not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}",
		},
		"a RecurringJob without a name": {
			body:    reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"namespace":"longhorn-system"},"spec":{"task":"snapshot","cron":"0 * * * *","retain":3}}`),
			code:    http.StatusUnprocessableEntity,
			reason:  metav1.StatusReasonInvalid,
			message: `RecurringJob.longhorn.io "" is invalid: metadata.name: Required value: a lower-case name such as "daily-backup"`,
			causes:  []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueRequired, Message: `Required value: a lower-case name such as "daily-backup"`, Field: "metadata.name"}},
		},
		"a parameter that is not a string": {
			body:    reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"number"},"spec":{"task":"backup","cron":"0 2 * * *","retain":7,"parameters":{"full-backup-interval":5}}}`),
			code:    http.StatusUnprocessableEntity,
			reason:  metav1.StatusReasonInvalid,
			name:    "number",
			message: `RecurringJob.longhorn.io "number" is invalid: spec.parameters[full-backup-interval]: Invalid value: 5: must be a string; quote it in YAML: "5"`,
			causes: []metav1.StatusCause{{Type: metav1.CauseTypeTypeInvalid, Field: "spec.parameters[full-backup-interval]",
				Message: `Invalid value: 5: must be a string; quote it in YAML: "5"`}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			httpStatus, response := postReview(t, webhook.RecurringJobPath, tc.body)
			if httpStatus != http.StatusOK {
				t.Fatalf("HTTP status %d, want 200 carrying the verdict", httpStatus)
			}
			if response == nil || response.Allowed || response.Result == nil {
				t.Fatalf("want a denial with a status, got %+v", response)
			}
			got := *response.Result
			want := metav1.Status{Code: tc.code, Reason: tc.reason, Message: tc.message}
			if tc.causes != nil {
				want.Status = metav1.StatusFailure
				want.Details = &metav1.StatusDetails{Name: tc.name, Group: "longhorn.io", Kind: "RecurringJob", Causes: tc.causes}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnknownFieldIsTheCRDsBusiness sends a RecurringJob with a field backupguard does not know (as a
// newer Longhorn's CRD would let through): the API server has already validated it against the
// installed CRD, so the webhook must not deny it.
func TestUnknownFieldIsTheCRDsBusiness(t *testing.T) {
	body := reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"future"},"spec":{"task":"snapshot","cron":"0 * * * *","retain":3,"keepFor":"30d"}}`)
	httpStatus, response := postReview(t, webhook.RecurringJobPath, body)
	if httpStatus != http.StatusOK || response == nil {
		t.Fatalf("HTTP status %d, response %+v", httpStatus, response)
	}
	want := []string{"detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"}
	if !response.Allowed {
		t.Fatalf("want allowed, got %+v", response.Result)
	}
	if diff := cmp.Diff(want, response.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestUnknownPathIsNotFound makes sure nothing answers outside the documented paths.
func TestUnknownPathIsNotFound(t *testing.T) {
	options := testCluster.Env.WebhookInstallOptions
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(options.LocalServingCAData)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	response, err := client.Post(fmt.Sprintf("https://%s:%d/validate-something-else", options.LocalServingHost, options.LocalServingPort), "application/json", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", response.StatusCode)
	}
}

// TestServingTLSIsHardened checks what the webhook's TLS offers: nothing below TLS 1.2, and HTTP/1.1
// only (HTTP/2 is off by default because of Rapid Reset).
func TestServingTLSIsHardened(t *testing.T) {
	options := testCluster.Env.WebhookInstallOptions
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(options.LocalServingCAData)
	address := fmt.Sprintf("%s:%d", options.LocalServingHost, options.LocalServingPort)

	old, err := tls.Dial("tcp", address, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Error("a TLS 1.1 handshake succeeded; want it refused")
	}

	connection, err := tls.Dial("tcp", address, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer connection.Close()
	state := connection.ConnectionState()
	if state.NegotiatedProtocol != "http/1.1" {
		t.Errorf("negotiated protocol %q, want http/1.1", state.NegotiatedProtocol)
	}
	if state.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want at least 1.2", state.Version)
	}
}
