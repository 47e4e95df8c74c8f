package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/loadtest/mockllm"
)

// tracingConfig: the mock behind an OpenAI and an Anthropic provider, and a
// provider that always answers 503 whose route falls back to the mock.
func tracingConfig(mock, down, collector string, capture bool) string {
	tracing := fmt.Sprintf("{enabled: true, capture_content: %t}", capture)
	if collector != "" {
		tracing = fmt.Sprintf("{enabled: true, envoy_collector: %q, capture_content: %t}", collector, capture)
	}
	return fmt.Sprintf(`providers:
  - {name: mock, url: %q, schema: openai}
  - {name: mock-anthropic, url: %q, cluster: mock_anthropic, schema: anthropic}
  - {name: down, url: %q, schema: openai}
routes:
  - {model: mock-gpt, provider: mock}
  - {model: mock-claude, provider: mock-anthropic}
  - model: fallback-gpt
    provider: down
    fallbacks: [{provider: mock, model: mock-gpt}]
tracing: %s
`, mock, mock, down, tracing)
}

// tracedRequest is one request of TestTracesInJaeger and what its trace
// must show.
type tracedRequest struct {
	name, path, body, model string
	stream                  bool
	finish                  string
	// attempts are the providers tried, in order; the last one answers.
	attempts []string
}

var tracedRequests = []tracedRequest{
	{"chat", "/v1/chat/completions", `{"model":"mock-gpt","messages":[{"role":"user","content":"secret prompt"}]}`, "mock-gpt", false, "stop", []string{"mock"}},
	{"messages stream", "/v1/messages", `{"model":"mock-claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"secret prompt"}]}`, "mock-claude", true, "end_turn", []string{"mock-anthropic"}},
	{"fallback", "/v1/chat/completions", `{"model":"fallback-gpt","messages":[{"role":"user","content":"secret prompt"}]}`, "fallback-gpt", false, "stop", []string{"down", "mock"}},
}

// TestTracesInJaeger: with tracing on, each request becomes one trace in
// Jaeger under the client's trace id: Envoy's spans and extproc's,
// extproc's request span (GenAI attributes) a child of Envoy's span of the
// ext_proc call, and one child span per upstream attempt (a fallback's
// first saying 503, the second why it was tried). With Envoy rendered
// statically, without capturing content, and on ADS, capturing it; and
// with only extproc tracing, which then continues the client's span
// itself (Envoy forwards it the client's traceparent).
func TestTracesInJaeger(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	mock := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1, StreamChunks: 3, ChunkInterval: 10 * time.Millisecond}))
	t.Cleanup(mock.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"down"}}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	for _, v := range []struct {
		name         string
		xds, capture bool
		envoyTracing bool
	}{{"static", false, false, true}, {"ads", true, true, true}, {"extproc-only", false, false, false}} {
		name := v.name
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := gatewayOptions{extraEnv: []string{
				"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + j.otlp,
				"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=switchyard-" + name,
			}}
			if v.xds {
				opts.envoyConfigArgs, opts.extprocArgs = []string{"-xds"}, []string{"-xds"}
			}
			collector := ""
			if v.envoyTracing {
				collector = j.otlp
			}
			gw := startGateway(t, tracingConfig(mock.URL, down.URL, collector, v.capture), opts)
			// Every request first, then every trace: Envoy sends its spans
			// every few seconds.
			traceIDs, clientSpans := make([]string, len(tracedRequests)), make([]string, len(tracedRequests))
			for i, tc := range tracedRequests {
				traceIDs[i], clientSpans[i] = randomHex(t, 16), randomHex(t, 8)
				res := gw.do(t, "POST", tc.path, map[string]string{"traceparent": "00-" + traceIDs[i] + "-" + clientSpans[i] + "-01"}, tc.body)
				if res.status != 200 {
					t.Fatalf("%s: status %d: %s", tc.name, res.status, res.body)
				}
			}
			for i, tc := range tracedRequests {
				t.Run(tc.name, func(t *testing.T) {
					// Whole once Envoy's first span (it ends last) and
					// extproc's request span (with its tokens) are in.
					spans := j.waitTrace(t, traceIDs[i], func(spans []traceSpan) bool {
						var envoy, extproc bool
						for _, s := range spans {
							envoy = envoy || s.parent == clientSpans[i]
							extproc = extproc || s.tags["gen_ai.usage.output_tokens"] != ""
						}
						return envoy && extproc
					})
					checkTrace(t, spans, "switchyard-"+name, clientSpans[i], tc, v.capture, v.envoyTracing)
				})
			}
		})
	}
}

// checkTrace checks one request's trace: extproc's request span with its
// GenAI attributes under Envoy's span of the ext_proc call, its attempts
// under it, Envoy's first span under the client's, and the prompt only
// when content is captured.
func checkTrace(t *testing.T, spans []traceSpan, service, clientSpan string, tc tracedRequest, capture, envoyTracing bool) {
	t.Helper()
	byID := map[string]traceSpan{}
	var req traceSpan
	for _, s := range spans {
		byID[s.id] = s
		if s.service == service && s.name == "chat "+tc.model {
			req = s
		}
		for k, v := range s.tags {
			if strings.Contains(v, "secret prompt") && (!capture || k != "gen_ai.input.messages") {
				t.Errorf("span %q exports the prompt in %s", s.name, k)
			}
		}
	}
	if req.id == "" {
		t.Fatalf("no span %q of %s", "chat "+tc.model, service)
	}
	if got := strings.Contains(req.tags["gen_ai.input.messages"], "secret prompt"); got != capture {
		t.Errorf("prompt on the request span: %v, want %v (capture_content)", got, capture)
	}
	if got := req.tags["gen_ai.output.messages"] != ""; got != (capture && !tc.stream) {
		t.Errorf("answer on the request span: %v, want %v (a JSON answer, capture_content)", got, capture && !tc.stream)
	}
	responseModel := strings.TrimPrefix(tc.model, "fallback-")
	if responseModel != tc.model {
		responseModel = "mock-" + responseModel
	}
	want := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": tc.model, "gen_ai.response.model": responseModel,
		"gen_ai.provider.name": map[bool]string{false: "openai", true: "anthropic"}[tc.stream], "http.response.status_code": "200",
		"switchyard.stream": fmt.Sprint(tc.stream)}
	for k, v := range want {
		if req.tags[k] != v {
			t.Errorf("request span %s = %q, want %q", k, req.tags[k], v)
		}
	}
	for _, k := range []string{"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.server.time_to_first_token"} {
		if v := req.tags[k]; v == "" || v == "0" {
			t.Errorf("request span %s = %q, want a positive number", k, v)
		}
	}
	if !strings.Contains(req.tags["gen_ai.response.finish_reasons"], tc.finish) {
		t.Errorf("finish reasons %q, want %q", req.tags["gen_ai.response.finish_reasons"], tc.finish)
	}
	checkAttempts(t, spans, req.id, tc.attempts)
	if !envoyTracing {
		if req.parent != clientSpan {
			t.Errorf("request span's parent %q, want the client's span %s", req.parent, clientSpan)
		}
		for _, s := range spans {
			if s.service != service {
				t.Errorf("span %q of %s: Envoy does not trace here", s.name, s.service)
			}
		}
		return
	}
	parent, ok := byID[req.parent]
	if !ok || parent.service != "switchyard-envoy" || !strings.Contains(parent.name, "ext_proc") {
		t.Errorf("request span's parent %q is %+v, want Envoy's span of the ext_proc call", req.parent, parent)
	}
	var underClient int
	for _, s := range spans {
		if s.parent == clientSpan {
			underClient++
			if s.service != "switchyard-envoy" {
				t.Errorf("span %q of %s continues the client's span, want only Envoy's", s.name, s.service)
			}
		}
	}
	if underClient != 1 {
		t.Errorf("%d spans continue the client's span, want Envoy's one", underClient)
	}
}

// checkAttempts checks the attempt spans under the request span: one per
// provider tried, in order; every one but the last failed with 503, and
// each after the first says it was tried because of that 503.
func checkAttempts(t *testing.T, spans []traceSpan, req string, providers []string) {
	t.Helper()
	byNumber := map[string]traceSpan{}
	for _, s := range spans {
		if s.parent == req && strings.HasPrefix(s.name, "attempt ") {
			byNumber[s.tags["switchyard.attempt"]] = s
		}
	}
	if len(byNumber) != len(providers) {
		t.Fatalf("%d attempt spans under the request span, want %d", len(byNumber), len(providers))
	}
	for i, p := range providers {
		a := byNumber[fmt.Sprint(i+1)]
		status, reason := "503", ""
		if i == len(providers)-1 {
			status = "200"
		}
		if i > 0 {
			reason = "503"
		}
		if a.tags["switchyard.provider"] != p || a.tags["http.response.status_code"] != status || a.tags["switchyard.retry_reason"] != reason {
			t.Errorf("attempt %d: %v, want provider %s, status %s, retry reason %q", i+1, a.tags, p, status, reason)
		}
	}
}

// TestMCPQueryTokenNotTraced: an MCP server whose url carries a token in
// its query (as some hosted servers take their key) gets it, and no span
// of the request, Envoy's or extproc's, exports it.
func TestMCPQueryTokenNotTraced(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	const token = "sekrit-query-token"
	var gotQuery atomic.Value
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery.Store(r.URL.RawQuery)
		fastMCP(w, r)
	}))
	t.Cleanup(fast.Close)
	gw := startGateway(t, fmt.Sprintf(`
providers: [{name: unused, url: "http://127.0.0.1:9", schema: openai}]
routes: [{model: unused, provider: unused}]
mcp_servers:
  - {name: fast, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}
tracing: {enabled: true, envoy_collector: %q}
`, fast.URL+"/rpc?key="+token, j.otlp), gatewayOptions{extraEnv: []string{"SWY_MCP_ALPHA=" + mcpTokenA,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + j.otlp,
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=switchyard-mcp"}})
	traceID, clientSpan := randomHex(t, 16), randomHex(t, 8)
	res := gw.do(t, "POST", "/mcp/fast", map[string]string{"traceparent": "00-" + traceID + "-" + clientSpan + "-01",
		"content-type": "application/json", "accept": "application/json, text/event-stream"},
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"t"}}}`)
	if res.status != 200 || !strings.Contains(string(res.body), "fast echo t") {
		t.Fatalf("tools/call: %d %s", res.status, res.body)
	}
	if q, _ := gotQuery.Load().(string); q != "key="+token {
		t.Fatalf("the server got the query %q, want its key", q)
	}
	spans := j.waitTrace(t, traceID, func(spans []traceSpan) bool {
		envoy := 0
		for _, s := range spans {
			if s.service == "switchyard-envoy" {
				envoy++
			}
		}
		return envoy >= 2
	})
	for _, s := range spans {
		if strings.Contains(s.name, token) {
			t.Errorf("span %q of %s is named with the token", s.name, s.service)
		}
		for k, v := range s.tags {
			if strings.Contains(v, token) {
				t.Errorf("span %q of %s exports the token in %s = %q", s.name, s.service, k, v)
			}
		}
	}
}
