package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// agentBody is a chat request of about n bytes, model last as the OpenAI
// SDK writes it.
func agentBody(model string, n int) string {
	msg := strings.Repeat("tool output line. ", n/18+1)[:n]
	return fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"model":%q}`, msg, model)
}

// postBody posts a chat body to the gateway with client key A, chunked
// (no Content-Length) when asked.
func postBody(t *testing.T, gw *gateway, body string, chunked bool) result {
	t.Helper()
	req, err := http.NewRequest("POST", gw.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(struct{ io.Reader }{strings.NewReader(body)})
	}
	req.Header.Set("authorization", "Bearer "+clientKeyA)
	r, err := roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// bodyCase is a body posted to the gateway, the model the upstream must get
// and the body mode its request must be counted in; a body whose model is
// unchanged (gpt-exact) must reach the upstream byte for byte.
type bodyCase struct {
	name, body, wantModel, wantMode string
	chunked                         bool
}

func (tc bodyCase) check(t *testing.T, gw *gateway) {
	t.Helper()
	mode := func() float64 {
		v, _ := metricValue(gw.metrics(t), `switchyard_request_body_mode_total{mode="`+tc.wantMode+`"}`)
		return v
	}
	before := mode()
	got := upstreamSaw(t, postBody(t, gw, tc.body, tc.chunked))
	if got.Model != tc.wantModel || got.ContentLength != int64(got.BodyLen) ||
		gjson.Get(got.Body, "messages.0.content").String() != gjson.Get(tc.body, "messages.0.content").String() {
		t.Errorf("%s: upstream got model %q, content-length %d for %d bytes", tc.name, got.Model, got.ContentLength, got.BodyLen)
	}
	if tc.wantModel == "gpt-exact" && got.Body != tc.body {
		t.Errorf("%s: the upstream body differs from the client's", tc.name)
	}
	if after := mode(); after != before+1 {
		t.Errorf("%s: %s requests %v -> %v, want one more", tc.name, tc.wantMode, before, after)
	}
}

// TestBodyModeBySize: with -body-mode BY_SIZE a body announced at 10,000
// bytes or more reaches extproc BUFFERED (it stays in Envoy unless changed)
// and a smaller or chunked one full duplex; in each, the upstream gets the
// exact body (the client's, or the rewritten one) with its exact length,
// and a body over the limit is refused in the API's shape.
func TestBodyModeBySize(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{bodyMode: "BY_SIZE"})
	for _, tc := range []bodyCase{
		{"small, unchanged", agentBody("gpt-exact", 900), "gpt-exact", "full_duplex", false},
		{"big, unchanged", agentBody("gpt-exact", 50000), "gpt-exact", "buffered", false},
		{"big, model rewritten", agentBody("renamed", 50000), "upstream-model-with-a-much-longer-name", "buffered", false},
		{"big, chunked", agentBody("renamed", 50000), "upstream-model-with-a-much-longer-name", "full_duplex", true},
	} {
		tc.check(t, s.gw)
	}
	r := s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), agentBody("gpt-exact", 70000))
	if e, _ := r.json(t)["error"].(map[string]any); r.status != 413 || e["code"] != "request_too_large" {
		t.Errorf("body over the limit: %d %s", r.status, r.body)
	}
}
