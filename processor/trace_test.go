package processor

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"switchyard/envoy"
	"switchyard/luahooks"
	"switchyard/routing"
	"switchyard/tracing"
)

const tracingYAML = "tracing: {enabled: true}\n"

// Envoy's span of the ext_proc call, as its tracer puts it in the gRPC
// metadata, and a client's traceparent of another trace.
const (
	envoyTrace  = "0af7651916cd43dd8448eb211c80319c"
	envoySpan   = "b7ad6b7169203331"
	envoyParent = "00-" + envoyTrace + "-" + envoySpan + "-01"
	clientOther = "00-11111111111111111111111111111111-2222222222222222-01"
)

func tracedServer(t testing.TB, yamlText string) (*Server, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := compileRouter(t, yamlText)
	return New(Options{Router: func() *routing.Router { return r }, Tracer: tracing.New(tp, false)}), rec
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// routerStream runs a request's router-level stream, with Envoy's span
// in its gRPC metadata, and returns the answers.
func routerStream(t *testing.T, s *Server, headers []string, body string) []*extprocv3.ProcessingResponse {
	t.Helper()
	st := newFakeStream(metadata.NewIncomingContext(t.Context(), metadata.Pairs("traceparent", envoyParent)),
		script(fullDuplex, headers, body)...)
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	return st.sent
}

// answerStream runs a response cluster's stream over an answer.
func answerStream(t *testing.T, s *Server, flight, contentType string, chunks ...string) {
	t.Helper()
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	msgs := []*extprocv3.ProcessingRequest{{ObservabilityMode: true, MetadataContext: flightMetadata(flight),
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{
			Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte(contentType)}}}}}}}
	for i, c := range chunks {
		msgs = append(msgs, &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(c), EndOfStream: i == len(chunks)-1}}})
	}
	if err := s.Process(newFakeStream(ctx, msgs...)); err != nil {
		t.Fatal(err)
	}
}

// A traced request continues Envoy's span (not the client's own
// traceparent, which Envoy's span already continues), is counted, and its
// span, ended by the response stream, has the GenAI attributes; its one
// attempt is a child.
func TestTracedRequest(t *testing.T) {
	t.Parallel()
	s, rec := tracedServer(t, testConfigYAML+tracingYAML)
	out := routerStream(t, s, append(post("/v1/messages", bearer(keyTeamB)...), "traceparent", clientOther),
		`{"model":"claude-sonnet","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if got := headerIn(out[0].GetRequestHeaders().GetResponse().GetHeaderMutation(), routing.ClusterHeader); got != routing.UsageClusterPrefix+"anthropic" {
		t.Fatalf("cluster %q: a traced request must be counted", got)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans ended at the decision, want the request's to wait for its answer", n)
	}
	answerStream(t, s, sentFlight(out), "text/event-stream",
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n")

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the attempt and the request", len(spans))
	}
	attempt, req := spans[0], spans[1]
	if req.SpanContext().TraceID().String() != envoyTrace || req.Parent().SpanID().String() != envoySpan {
		t.Errorf("request span in trace %s under %s, want Envoy's %s under %s", req.SpanContext().TraceID(), req.Parent().SpanID(), envoyTrace, envoySpan)
	}
	got := spanAttrs(req)
	if got[firstTokenKey] == "" || got[firstTokenKey] == "0" {
		t.Errorf("no time to first token: %v", got)
	}
	delete(got, firstTokenKey)
	want := map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet",
		"gen_ai.response.model": "claude-sonnet-4-5-20250929", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "7",
		"switchyard.cost_usd":            "0.000141", // 12 in and 7 out at the shipped $3 and $15 per million
		"gen_ai.response.finish_reasons": `["end_turn"]`, "http.response.status_code": "200",
		"switchyard.provider": "anthropic", "switchyard.upstream_model": "claude-sonnet-4-5", "switchyard.route": "claude-sonnet",
		"switchyard.key_name": "team-b", "switchyard.stream": "true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request span (-want +got):\n%s", diff)
	}
	if req.Name() != "chat claude-sonnet" {
		t.Errorf("request span named %q", req.Name())
	}
	if attempt.Parent().SpanID() != req.SpanContext().SpanID() || spanAttrs(attempt)["http.response.status_code"] != "200" {
		t.Errorf("attempt span %q under %s with %v", attempt.Name(), attempt.Parent().SpanID(), spanAttrs(attempt))
	}
}

const firstTokenKey = "gen_ai.server.time_to_first_token"

// Without Envoy's span the client's traceparent is continued; a refused
// request's span ends at once as an error.
func TestTracedRefusalContinuesClient(t *testing.T) {
	t.Parallel()
	s, rec := tracedServer(t, testConfigYAML+tracingYAML)
	st := newFakeStream(t.Context(), script(fullDuplex, append(post("/v1/chat/completions", bearer("wrong-key")...),
		"traceparent", clientOther), `{"model":"gpt-4o"}`)...)
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	if got := spans[0].SpanContext().TraceID().String(); got != "11111111111111111111111111111111" {
		t.Errorf("trace %s, want the client's", got)
	}
	if a := spanAttrs(spans[0]); a["http.response.status_code"] != "401" || a["error.type"] != "invalid_api_key" {
		t.Errorf("refused span %v", a)
	}
}

// With fallbacks each attempt is a child span, the second saying why the
// first failed over; the concluding attempt ends the request's span.
func TestTracedFallback(t *testing.T) {
	t.Parallel()
	s, rec := tracedServer(t, fallbackConfigYAML+tracingYAML)
	body := `{"model":"smart","messages":[]}`
	out := routerStream(t, s, post("/v1/chat/completions", bearer("client-key")...), body)
	id := sentFlight(out)
	runAttempt(t, s, attemptScript(1, id, body, "503"))
	runAttempt(t, s, attemptScript(2, id, body, "200"))

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want two attempts and the request", len(spans))
	}
	req := spans[2]
	for i, want := range []map[string]string{
		{"switchyard.provider": "openai", "http.response.status_code": "503", "switchyard.attempt": "1"},
		{"switchyard.provider": "azure", "http.response.status_code": "200", "switchyard.attempt": "2", "switchyard.retry_reason": "503"},
	} {
		a := spanAttrs(spans[i])
		for k, v := range want {
			if a[k] != v {
				t.Errorf("attempt %d: %s = %q, want %q (%v)", i+1, k, a[k], v, a)
			}
		}
		if _, ok := a["switchyard.retry_reason"]; ok != (i == 1) {
			t.Errorf("attempt %d: retry reason %q", i+1, a["switchyard.retry_reason"])
		}
		if spans[i].Parent().SpanID() != req.SpanContext().SpanID() {
			t.Errorf("attempt %d is not the request's child", i+1)
		}
	}
	if a := spanAttrs(req); a["http.response.status_code"] != "200" || a["gen_ai.request.model"] != "smart" {
		t.Errorf("request span %v", a)
	}
}

// The on_request hooks are a child span from when they began to when they
// ended; a failing hook marks it, and the refused request, an error.
func TestTracedHooks(t *testing.T) {
	t.Parallel()
	set, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(`
function on_request(req)
  if req:header("x-fail") then error("boom") end
end`)}}, luahooks.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, rec := tracedServer(t, testConfigYAML+tracingYAML)
	s.opts.Hooks = func() *luahooks.Set { return set }
	body := `{"model":"gpt-4o","messages":[]}`
	for _, fail := range []bool{false, true} {
		headers := post("/v1/chat/completions", bearer(keyTeamB)...)
		if fail {
			headers = append(headers, "x-fail", "1")
		}
		before := len(rec.Ended())
		out := routerStream(t, s, headers, body)
		if !fail {
			answerStream(t, s, sentFlight(out), "application/json", `{"model":"gpt-4o","choices":[{"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
		}
		spans := rec.Ended()[before:]
		var hooks, req sdktrace.ReadOnlySpan
		for _, sp := range spans {
			switch {
			case sp.Name() == "hooks on_request":
				hooks = sp
			case sp.SpanKind() == trace.SpanKindServer:
				req = sp
			}
		}
		if hooks == nil || req == nil {
			t.Fatalf("fail=%v: spans %d, want the hooks' and the request's", fail, len(spans))
		}
		if hooks.Parent().SpanID() != req.SpanContext().SpanID() || !hooks.EndTime().After(hooks.StartTime()) {
			t.Errorf("fail=%v: hooks span under %s from %v to %v", fail, hooks.Parent().SpanID(), hooks.StartTime(), hooks.EndTime())
		}
		if got := hooks.Status().Code == codes.Error; got != fail {
			t.Errorf("fail=%v: hooks span an error: %v", fail, got)
		}
		if fail && spanAttrs(req)["error.type"] != "hook_failed" {
			t.Errorf("request span of a failed hook: %v", spanAttrs(req))
		}
	}
}

// BenchmarkTracedRequest is one counted request, decision and answer, with
// tracing off and on (spans exported to nowhere by a batcher): the cost per
// request of tracing (docs/PERFORMANCE.md).
func BenchmarkTracedRequest(b *testing.B) {
	body := benchChat("gpt-4o")
	// A chat stream of ten content chunks, as the mock sends (the load
	// benchmark's stream stage).
	var answer []string
	for range 10 {
		answer = append(answer, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hamlet \"},\"finish_reason\":null}],\"usage\":null}\n\n")
	}
	answer = append(answer, "data: {\"id\":\"c\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"+
		"data: {\"id\":\"c\",\"model\":\"gpt-4o-2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":60,\"completion_tokens\":10}}\n\ndata: [DONE]\n\n")
	for _, traced := range []bool{false, true} {
		name := "usage"
		yamlText := testConfigYAML + "usage: {enabled: true}\n"
		var tr *tracing.Tracer
		if traced {
			name, yamlText = "usage+tracing", yamlText+tracingYAML
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tr = tracing.New(tp, false)
		}
		r := compileRouter(b, yamlText)
		s := New(Options{Router: func() *routing.Router { return r }, Tracer: tr})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", envoyParent))
			rctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
			for b.Loop() {
				st := newFakeStream(ctx, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), body)...)
				st.direct = true
				if err := s.Process(st); err != nil {
					b.Fatal(err)
				}
				msgs := []*extprocv3.ProcessingRequest{{ObservabilityMode: true, MetadataContext: flightMetadata(sentFlight(st.sent)),
					Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{
						Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("text/event-stream")}}}}}}}
				for i, c := range answer {
					msgs = append(msgs, &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{
						ResponseBody: &extprocv3.HttpBody{Body: []byte(c), EndOfStream: i == len(answer)-1}}})
				}
				rs := newFakeStream(rctx, msgs...)
				rs.direct = true
				if err := s.Process(rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A traced request whose later streams never come has its span ended
// when its flight expires, an error, so that it is still exported.
func TestTracedFlightExpires(t *testing.T) {
	t.Parallel()
	s, rec := tracedServer(t, testConfigYAML+tracingYAML)
	out := routerStream(t, s, post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"gpt-4o","messages":[]}`)
	if sentFlight(out) == "" || len(rec.Ended()) != 0 {
		t.Fatalf("flight %q, %d spans ended", sentFlight(out), len(rec.Ended()))
	}
	s.flights.mu.Lock()
	s.flights.sweepLocked(time.Now().Add(maxFlightAge + time.Minute))
	s.flights.mu.Unlock()
	spans := rec.Ended()
	if len(spans) != 1 || spanAttrs(spans[0])["error.type"] != "abandoned" {
		t.Fatalf("spans after the flight expired: %d, %v", len(spans), spans)
	}
}
