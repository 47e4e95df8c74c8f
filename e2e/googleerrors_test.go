package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// googleErrorsConfig serves Claude on the fake Vertex with models the fake
// refuses in Google's own error shape: over quota (429
// RESOURCE_EXHAUSTED), denied (403 PERMISSION_DENIED), broken (500
// INTERNAL), and a provider sending no token (401 UNAUTHENTICATED); one
// route ends its fallbacks on a denied model (the attempt clusters).
func googleErrorsConfig(f *fakeVertex, extra string) string {
	return fmt.Sprintf(`providers:
  - {name: vc, schema: vertex, url: %[1]s, project: %[2]s, region: %[3]s, publisher: anthropic, auth: {type: gcp_oauth, credentials_file: %[4]s}}
  - {name: vc-noauth, schema: vertex, url: %[1]s, project: %[2]s, region: %[3]s, publisher: anthropic, auth: {type: none}}
routes:
  - {model: claude-msgs, provider: vc, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: busy, provider: vc, rewrite_model: claude-sonnet-4-5-busy}
  - {model: denied, provider: vc, rewrite_model: claude-sonnet-4-5-denied}
  - {model: broken, provider: vc, rewrite_model: claude-sonnet-4-5-broken}
  - {model: noauth, provider: vc-noauth, rewrite_model: claude-sonnet-4-5@20250929}
  - model: chain
    targets: [{provider: vc, model: claude-sonnet-4-5-busy}]
    fallbacks: [{provider: vc, model: claude-sonnet-4-5-denied}]
%[5]s`, f.URL, vertexProject, vertexRegion, f.keyFile, extra)
}

type sdkErrorCase struct {
	API    string `json:"api"`
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Status int    `json:"status"`
	Type   string `json:"type"`
	Want   string `json:"want"`
}

// TestVertexGoogleErrors: Google's platform errors from Vertex AI reach
// the official Anthropic SDK as Anthropic errors (the SDK's own error
// class for the status, type and Google's message), streamed or not, over
// a route's fallbacks too, with usage counted or not; the OpenAI SDK gets
// OpenAI's. Claude's own answers and errors pass unchanged.
func TestVertexGoogleErrors(t *testing.T) {
	t.Parallel()
	f := startFakeVertex(t)
	py := vertexPython(t)
	var cases []sdkErrorCase
	for _, stream := range []bool{false, true} {
		cases = append(cases,
			sdkErrorCase{"messages", "busy", stream, 429, "rate_limit_error", "Quota exceeded"},
			sdkErrorCase{"messages", "denied", stream, 403, "permission_error", "aiplatform.endpoints.predict"},
			sdkErrorCase{"messages", "broken", stream, 500, "api_error", "Internal error encountered"},
			sdkErrorCase{"messages", "noauth", stream, 401, "authentication_error", "invalid authentication credentials"},
			sdkErrorCase{"messages", "chain", stream, 403, "permission_error", "aiplatform.endpoints.predict"},
			sdkErrorCase{"chat", "busy", stream, 429, "rate_limit_error", "Quota exceeded"},
			sdkErrorCase{"chat", "noauth", stream, 401, "authentication_error", "invalid authentication credentials"},
			sdkErrorCase{"chat", "chain", stream, 403, "permission_error", "aiplatform.endpoints.predict"},
		)
	}
	casesJSON, _ := json.Marshal(cases)
	for _, tc := range []struct{ name, extra string }{{"plain", ""}, {"usage", "usage: {enabled: true}\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw := startGateway(t, googleErrorsConfig(f, tc.extra), gatewayOptions{})
			waitVertexToken(t, gw, f)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_errors.py"), gw.url, string(casesJSON)).CombinedOutput()
			t.Logf("sdk_errors.py:\n%s", out)
			if err != nil || !strings.Contains(string(out), fmt.Sprintf(`{"passed": %d}`, len(cases))) {
				t.Fatalf("the SDKs did not get the errors they read: %v", err)
			}
			// Claude's own error (a bad request) passes as Claude sent it,
			// and answers pass whole.
			hdr := map[string]string{"content-type": "application/json"}
			r := gw.do(t, "POST", "/v1/messages", hdr, `{"model":"claude-msgs","messages":[{"role":"user","content":"hi"}]}`)
			if r.status != http.StatusBadRequest || gjson.GetBytes(r.body, "error.type").String() != "invalid_request_error" ||
				!strings.Contains(gjson.GetBytes(r.body, "error.message").String(), "max_tokens: Field required") {
				t.Errorf("Claude's own 400: %d %s", r.status, r.body)
			}
			for _, stream := range []string{"false", "true"} {
				r := gw.do(t, "POST", "/v1/messages", hdr, `{"model":"claude-msgs","max_tokens":8,"stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
				if r.status != http.StatusOK || !strings.Contains(string(r.body), "Hello") {
					t.Errorf("an answer with stream %s: %d %s", stream, r.status, r.body)
				}
			}
			if tc.extra != "" {
				waitMetric(t, gw, `switchyard_tokens_total{key="",model="claude-msgs",provider="vc",type="output"}`, 1)
			}
		})
	}
}
