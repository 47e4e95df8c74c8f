package processor

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/envoy"
	"switchyard/luahooks"
	"switchyard/routing"
)

const fallbackConfigYAML = `
providers:
  - name: openai
    url: https://api.openai.com
    schema: openai
    auth: {type: bearer, key_env: OPENAI_API_KEY}
  - name: azure
    url: https://example.openai.azure.com
    cluster: azure_eu
    schema: openai
    path_prefix: /openai/deployments/gpt4
    auth: {type: header, header: api-key, key_env: AZURE_KEY}
routes:
  - model: smart
    provider: openai
    fallbacks: [{provider: azure, model: az-model}]
`

// setHeaders flattens a mutation's set headers for comparison.
func setHeaders(hm *extprocv3.HeaderMutation) map[string]string {
	out := map[string]string{}
	for _, h := range hm.GetSetHeaders() {
		out[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return out
}

// attemptScript is one attempt's stream as the upstream filter sends it:
// the request's flight id comes in the metadata, never from a header.
func attemptScript(n int, flight string, body string, status string) []*extprocv3.ProcessingRequest {
	kv := []string{":method", "POST", ":path", "/v1/chat/completions", "x-request-id", "req-1", "authorization", "Bearer from-an-earlier-attempt"}
	headers := headersMsg(buffered, false, kv...)
	headers.Attributes = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
		"upstream.request_attempt_count": structpb.NewNumberValue(float64(n)),
	}}}
	headers.MetadataContext = flightMetadata(flight)
	return []*extprocv3.ProcessingRequest{headers, bodyMsg(body, true), {Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)}}}},
	}}}
}

// flightMetadata is the metadata Envoy forwards to an upstream filter of a
// request whose flight id is id ("" for none).
func flightMetadata(id string) *corev3.Metadata {
	if id == "" {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		routing.RequestNamespace: {Fields: map[string]*structpb.Value{"id": structpb.NewStringValue(id)}},
	}}
}

// sentFlight is the flight id a router-level answer gives the request.
func sentFlight(out []*extprocv3.ProcessingResponse) string {
	for _, r := range out {
		if md := r.GetDynamicMetadata(); md != nil {
			return md.GetFields()[routing.RequestNamespace].GetStructValue().GetFields()["id"].GetStringValue()
		}
	}
	return ""
}

func runAttempt(t *testing.T, s *Server, script []*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	t.Helper()
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseUpstream))
	st := newFakeStream(ctx, script...)
	if err := s.Process(st); err != nil {
		t.Fatalf("Process: %v", err)
	}
	return st.sent
}

// TestFallbackPlanAndAttempts drives a request with a fallback through the
// router-level stream, then its two attempts through upstream-phase
// streams: each attempt carries its own key, path and model only.
func TestFallbackPlanAndAttempts(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := compileRouter(t, fallbackConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(reg)})
	body := `{"model":"smart","messages":[]}`

	out := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer("client-key")...), body)...)
	if len(out) != 2 {
		t.Fatalf("%d answers, want headers and body", len(out))
	}
	hm := out[0].GetRequestHeaders().GetResponse().GetHeaderMutation()
	set := setHeaders(hm)
	if set["x-switchyard-retry"] == "" || set["authorization"] != "" || set["x-switchyard-cluster"] != "" {
		t.Errorf("router-level headers: %v", set)
	}
	if diff := cmp.Diff([]string{"authorization", "x-api-key", "api-key"}, hm.GetRemoveHeaders()); diff != "" {
		t.Errorf("removed headers (-want +got):\n%s", diff)
	}
	groups := out[0].GetDynamicMetadata().AsMap()["switchyard.attempts"].(map[string]any)["priority_groups"].([]any)
	var clusters []string
	for _, g := range groups {
		clusters = append(clusters, g.(map[string]any)["clusters"].([]any)[0].(map[string]any)["cluster_name"].(string))
	}
	if diff := cmp.Diff([]string{"attempt|openai", "attempt|azure_eu"}, clusters); diff != "" {
		t.Errorf("attempt clusters (-want +got):\n%s", diff)
	}
	if got := string(out[1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse().GetBody()); got != body {
		t.Errorf("router-level body %s, want the client's", got)
	}

	id := sentFlight(out)
	if id == "" {
		t.Fatal("no flight id in the router-level answer's metadata")
	}
	first := runAttempt(t, s, attemptScript(1, id, body, "503"))
	fm := first[1].GetRequestBody().GetResponse().GetHeaderMutation()
	if got := setHeaders(fm); got["authorization"] != "Bearer "+secretOpenAI || got[":path"] != "/v1/chat/completions" || got["content-length"] != "31" {
		t.Errorf("first attempt sets %v", got)
	}
	if rm := strings.Join(fm.GetRemoveHeaders(), ","); !strings.Contains(rm, "api-key") || strings.Contains(rm, "authorization") {
		t.Errorf("first attempt removes %s", rm)
	}

	// The second attempt finds the plan by the same flight id.
	second := runAttempt(t, s, attemptScript(2, id, body, "200"))
	sm := second[1].GetRequestBody().GetResponse()
	got := setHeaders(sm.GetHeaderMutation())
	wantBody := `{"model":"az-model","messages":[]}`
	if got["api-key"] != secretAzure || got[":path"] != "/openai/deployments/gpt4/v1/chat/completions" || got["content-length"] != "34" {
		t.Errorf("second attempt sets %v", got)
	}
	if !strings.Contains(strings.Join(sm.GetHeaderMutation().GetRemoveHeaders(), ","), "authorization") {
		t.Errorf("second attempt keeps the first attempt's credential: removes %v", sm.GetHeaderMutation().GetRemoveHeaders())
	}
	if b := string(sm.GetBodyMutation().GetBody()); b != wantBody {
		t.Errorf("second attempt body %s, want %s", b, wantBody)
	}
	if v := testutil.ToFloat64(s.opts.Metrics.fallbacks.WithLabelValues("openai", "azure", "503")); v != 1 {
		t.Errorf("fallbacks{openai,azure,503} = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(s.opts.Metrics.attempts); n != 1 {
		t.Errorf("attempts histogram has %d series", n)
	}
}

// TestAttemptWithoutPlanFails: an attempt stream whose flight is unknown (or
// missing) answers with an API-shaped 500 instead of guessing.
func TestAttemptWithoutPlanFails(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	for _, id := range []string{"", "no-such-flight"} {
		out := runAttempt(t, s, attemptScript(2, id, `{"model":"x"}`, "200")[:1])
		if got := out[0].GetImmediateResponse().GetStatus().GetCode(); got != 500 {
			t.Errorf("flight %q: status %v, want 500", id, got)
		}
	}
}

// TestFallbackAnthropicHeaders: each attempt of a chain leaves the
// Anthropic headers as it would alone. Bedrock goes without both, Claude on
// Vertex without the version, and Anthropic itself, after them, gets the
// client's again, or what the hooks made of them: an attempt starts from
// the headers the one before left.
func TestFallbackAnthropicHeaders(t *testing.T) {
	t.Parallel()
	bedrockRouter(t) // its credentials
	cfg := `providers:
  - name: bedrock
    schema: bedrock
    url: http://127.0.0.1:9099
    auth: {type: aws_sigv4, region: us-west-2, profile: processor-test}
  - {name: vc, schema: vertex, project: my-project-1, region: us-east5, publisher: anthropic, auth: {type: none}}
  - {name: anthropic, url: "https://api.anthropic.com", schema: anthropic}
routes:
  - model: chain
    targets: [{provider: bedrock, model: "anthropic.claude-haiku-4-5-20251001-v1:0"}]
    fallbacks: [{provider: vc, model: "claude-sonnet-4-5@20250929"}, {provider: anthropic, model: claude-x}]
hooks: {dir: ` + strconv.Quote(t.TempDir()) + `}
`
	r := compileRouter(t, cfg)
	for _, hook := range []struct{ code, beta string }{
		{"", "context-1m-2025-08-07"},
		{`function on_request(req) req:set_header("anthropic-beta", "hooked") end`, "hooked"},
	} {
		opts := Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(prometheus.NewRegistry())}
		if hook.code != "" {
			set, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(hook.code)}}, luahooks.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			opts.Hooks = func() *luahooks.Set { return set }
		}
		s := New(opts)
		body := `{"model":"chain","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`
		out := run(t, s, script(fullDuplex, post("/v1/messages", "anthropic-version", "2023-06-01", "anthropic-beta", "context-1m-2025-08-07"), body)...)
		id := sentFlight(out)
		if id == "" {
			t.Fatalf("no fallback plan: %v", out)
		}
		for n, want := range []struct {
			provider      string
			removed       []string
			version, beta string
		}{
			{"bedrock", []string{"anthropic-version", "anthropic-beta"}, "", ""},
			{"vertex", []string{"anthropic-version"}, "", hook.beta},
			{"anthropic", nil, "2023-06-01", hook.beta},
		} {
			hm := runAttempt(t, s, attemptScript(n+1, id, body, "503"))[1].GetRequestBody().GetResponse().GetHeaderMutation()
			set := setHeaders(hm)
			for _, h := range want.removed {
				if !slices.Contains(hm.GetRemoveHeaders(), h) {
					t.Errorf("attempt %d (%s) leaves %s: removes %v", n+1, want.provider, h, hm.GetRemoveHeaders())
				}
			}
			if set["anthropic-version"] != want.version || set["anthropic-beta"] != want.beta {
				t.Errorf("hook %q: attempt %d (%s) sets version %q and beta %q, want %q and %q", hook.code, n+1, want.provider,
					set["anthropic-version"], set["anthropic-beta"], want.version, want.beta)
			}
		}
	}
}
