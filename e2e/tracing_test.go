package e2e

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"switchyard/loadtest/mockllm"
)

// TestTracesInJaeger: with tracing on, a streamed and a non-streamed
// request each become one trace in Jaeger under the client's trace id:
// Envoy's spans and extproc's, extproc's request span (GenAI attributes)
// a child of Envoy's span of the ext_proc call, and its attempt a child of
// it. With Envoy rendered statically and on ADS alike.
func TestTracesInJaeger(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	mock := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1, StreamChunks: 3, ChunkInterval: 10 * time.Millisecond}))
	t.Cleanup(mock.Close)
	for _, xds := range []bool{false, true} {
		name := "static"
		if xds {
			name = "ads"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := gatewayOptions{extraEnv: []string{
				"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + j.otlp,
				"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=switchyard-" + name,
			}}
			if xds {
				opts.envoyConfigArgs, opts.extprocArgs = []string{"-xds"}, []string{"-xds"}
			}
			config := exampleConfig(t, mock.URL) + "\ntracing: {enabled: true, envoy_collector: \"" + j.otlp + "\"}\n"
			gw := startGateway(t, config, opts)
			for _, tc := range []struct {
				name, path, body, model string
				stream                  bool
				finish                  string
			}{
				{"chat", "/v1/chat/completions", `{"model":"mock-gpt","messages":[{"role":"user","content":"secret prompt"}]}`, "mock-gpt", false, "stop"},
				{"messages stream", "/v1/messages", `{"model":"mock-claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"secret prompt"}]}`, "mock-claude", true, "end_turn"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					traceID, clientSpan := randomHex(t, 16), randomHex(t, 8)
					res := gw.do(t, "POST", tc.path, map[string]string{"traceparent": "00-" + traceID + "-" + clientSpan + "-01"}, tc.body)
					if res.status != 200 {
						t.Fatalf("status %d: %s", res.status, res.body)
					}
					spans := j.waitTrace(t, traceID, func(spans []traceSpan) bool {
						var envoy, extproc bool
						for _, s := range spans {
							envoy = envoy || s.service == "switchyard-envoy"
							extproc = extproc || s.tags["gen_ai.usage.output_tokens"] != ""
						}
						return envoy && extproc
					})
					checkTrace(t, spans, "switchyard-"+name, clientSpan, tc.model, tc.stream, tc.finish)
				})
			}
		})
	}
}

// checkTrace checks one request's trace: extproc's request span with its
// GenAI attributes under Envoy's span of the ext_proc call, its attempt
// under it, Envoy's first span under the client's, and no prompt text.
func checkTrace(t *testing.T, spans []traceSpan, service, clientSpan, model string, stream bool, finish string) {
	t.Helper()
	byID := map[string]traceSpan{}
	var req traceSpan
	for _, s := range spans {
		byID[s.id] = s
		if s.service == service && s.name == "chat "+model {
			req = s
		}
		for k, v := range s.tags {
			if strings.Contains(v, "secret prompt") {
				t.Errorf("span %q exports the prompt in %s without capture_content", s.name, k)
			}
		}
	}
	if req.id == "" {
		t.Fatalf("no span %q of %s", "chat "+model, service)
	}
	want := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.response.model": model,
		"gen_ai.provider.name": map[bool]string{false: "openai", true: "anthropic"}[stream], "http.response.status_code": "200",
		"switchyard.stream": map[bool]string{false: "false", true: "true"}[stream]}
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
	if !strings.Contains(req.tags["gen_ai.response.finish_reasons"], finish) {
		t.Errorf("finish reasons %q, want %q", req.tags["gen_ai.response.finish_reasons"], finish)
	}
	parent, ok := byID[req.parent]
	if !ok || parent.service != "switchyard-envoy" || !strings.Contains(parent.name, "ext_proc") {
		t.Errorf("request span's parent %q is %+v, want Envoy's span of the ext_proc call", req.parent, parent)
	}
	var attempts int
	for _, s := range spans {
		if s.parent == req.id && strings.HasPrefix(s.name, "attempt ") {
			attempts++
			if s.tags["http.response.status_code"] != "200" {
				t.Errorf("attempt span %v", s.tags)
			}
		}
	}
	if attempts != 1 {
		t.Errorf("%d attempt spans under the request span, want 1", attempts)
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
