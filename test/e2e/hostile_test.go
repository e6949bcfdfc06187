package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/webhook"
)

// rawAnswer is what serve answered a body: the HTTP status and the whole body.
type rawAnswer struct {
	Status int
	Body   string
}

// postRaw sends body to serve over TLS, as the API server would, and returns the answer unparsed.
func postRaw(t *testing.T, path string, body []byte) rawAnswer {
	t.Helper()
	client, url := webhookClient(t, path)
	response, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	data, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{Status: response.StatusCode, Body: strings.TrimSpace(string(data))}
}

// TestHostileBodiesGetAClearAnswerAndServeGoesOn sends serve, over TLS, bodies the API server never
// would: each gets a clear error (never a hang or a crash), and serve answers a good request right after.
func TestHostileBodiesGetAClearAnswerAndServeGoesOn(t *testing.T) {
	// A body that is not a review is answered with a bare response (no kind: nothing said which version
	// to answer in), carrying the error; a review gets a review back.
	unreadable := func(code int, message string) rawAnswer {
		return rawAnswer{Status: http.StatusOK, Body: fmt.Sprintf(`{"response":{"uid":"","allowed":false,"status":{"metadata":{},"message":%q,"code":%d}}}`, message, code)}
	}
	errorReview := func(code int, message string) rawAnswer {
		return rawAnswer{Status: http.StatusOK, Body: fmt.Sprintf(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"","allowed":false,"status":{"metadata":{},"message":%q,"code":%d}}}`, message, code)}
	}
	cases := map[string]struct {
		body []byte
		want rawAnswer
	}{
		"an empty body": {
			body: nil,
			want: unreadable(http.StatusBadRequest, "request body is empty"),
		},
		"an empty JSON object": {
			body: []byte(`{}`),
			want: errorReview(http.StatusBadRequest, "this endpoint validates RecurringJob.longhorn.io, not /, Kind="),
		},
		"a review without a request": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
			want: errorReview(http.StatusBadRequest, "this endpoint validates RecurringJob.longhorn.io, not /, Kind="),
		},
		"an AdmissionReview v1beta1 (the API server sends v1 only, as the configuration says)": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"longhorn.io","version":"v1beta2","kind":"RecurringJob"},"operation":"DELETE"}}`),
			want: rawAnswer{Status: http.StatusOK, Body: `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","response":{"uid":"u1","allowed":true,"status":{"metadata":{},"code":200}}}`},
		},
		"a body over the 7 MiB limit": {
			body: append(append([]byte(`{"request":{"object":{"spec":{"name":"`), bytes.Repeat([]byte("a"), 8<<20)...), []byte(`"}}}}`)...),
			want: unreadable(http.StatusRequestEntityTooLarge, "request entity is too large; limit is 7340032 bytes"),
		},
		"JSON nested 20,000 deep": {
			body: []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)),
			want: unreadable(http.StatusBadRequest, "yaml: exceeded max depth of 10000"),
		},
		"bytes that are not UTF-8": {
			body: []byte{0xff, 0xfe, 0xfd, '{', '}'},
			want: unreadable(http.StatusBadRequest, "yaml: incomplete UTF-16 character"),
		},
	}
	good := []byte(reviewOf(recurringJobKind, longhornNamespace, `{"apiVersion":"longhorn.io/v1beta2","kind":"RecurringJob","metadata":{"name":"after"},"spec":{"task":"snapshot","cron":"0 * * * *","retain":3}}`))
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, postRaw(t, webhook.RecurringJobPath, tc.body)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if answer := postRaw(t, webhook.RecurringJobPath, good); answer.Status != http.StatusOK || !strings.Contains(answer.Body, `"allowed":true`) {
				t.Errorf("the next good request: %+v", answer)
			}
		})
	}
}
