package tracing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func recorder(t *testing.T, content bool) (*Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return New(tp, content), rec
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// A request continues the client's trace; its span carries the GenAI
// attributes, and its hooks and attempts are its children.
func TestRequestSpan(t *testing.T) {
	t.Parallel()
	tr, rec := recorder(t, false)
	start := time.Now()
	r := tr.Start("00-"+clientTrace+"-"+clientSpan+"-01", "", start)
	r.Hooks(start, time.Millisecond, nil)
	r.Decided(&Decision{Path: "/v1/chat/completions?x=1", Model: "gpt-4o", Provider: "oai", API: "openai",
		UpstreamModel: "gpt-4o-2024", Route: "gpt-4o", KeyName: "team-a", Stream: true, Body: []byte(`{"messages":[{"content":"secret prompt"}]}`)})
	a := r.StartAttempt(&AttemptStart{N: 1, Provider: "claude", Model: "claude-x", API: "anthropic"}, start)
	a.End(503, start.Add(time.Millisecond))
	b := r.StartAttempt(&AttemptStart{N: 2, Provider: "oai", Model: "gpt-4o-2024", API: "openai", RetryReason: "503"}, start)
	b.End(200, start.Add(2*time.Millisecond))
	r.End(&Answer{Status: 200, Input: 12, Output: 7, Counted: true, CostUSD: 0.5, Priced: true, Model: "gpt-4o-2024", FinishReasons: []string{"stop"},
		FirstToken: 250 * time.Millisecond, Body: []byte(`{"choices":[{"message":{"content":"secret answer"}}]}`)}, start.Add(time.Second))
	r.End(&Answer{Status: 500}, start.Add(2*time.Second)) // once only

	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	req := spans[3]
	if got := req.SpanContext().TraceID().String(); got != clientTrace || r.TraceID() != clientTrace {
		t.Errorf("trace id %s, want the client's %s", got, clientTrace)
	}
	if got := req.Parent().SpanID().String(); got != clientSpan {
		t.Errorf("parent span %s, want the client's %s", got, clientSpan)
	}
	if req.Name() != "chat gpt-4o" {
		t.Errorf("name %q", req.Name())
	}
	want := map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
		"gen_ai.response.model": "gpt-4o-2024", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "7",
		"switchyard.cost_usd":            "0.5",
		"gen_ai.response.finish_reasons": `["stop"]`, "gen_ai.server.time_to_first_token": "0.25",
		"http.response.status_code": "200", "switchyard.provider": "oai", "switchyard.upstream_model": "gpt-4o-2024",
		"switchyard.route": "gpt-4o", "switchyard.key_name": "team-a", "switchyard.stream": "true",
	}
	if diff := cmp.Diff(want, attrs(req)); diff != "" {
		t.Errorf("request attributes (-want +got):\n%s", diff)
	}
	if req.EndTime() != start.Add(time.Second) {
		t.Errorf("ended at %v, want the first End's time", req.EndTime())
	}
	for _, s := range spans[:3] {
		if s.Parent().SpanID() != req.SpanContext().SpanID() {
			t.Errorf("%s: parent %s, want the request span", s.Name(), s.Parent().SpanID())
		}
	}
	if got := attrs(spans[2])["switchyard.retry_reason"]; got != "503" {
		t.Errorf("second attempt's retry reason %q", got)
	}
	if spans[1].Status().Code != codes.Error || spans[2].Status().Code == codes.Error {
		t.Errorf("attempt statuses %v, %v: want the 503 an error only", spans[1].Status(), spans[2].Status())
	}
}

// Prompts and answers go on spans only when content is captured.
func TestContentOnlyWhenCaptured(t *testing.T) {
	t.Parallel()
	for _, content := range []bool{false, true} {
		tr, rec := recorder(t, content)
		r := tr.Start("", "", time.Now())
		r.Decided(&Decision{Path: "/v1/messages", Model: "c", Body: []byte(`{"messages":[{"content":"secret prompt"}]}`)})
		r.End(&Answer{Status: 200, Body: []byte(`{"content":[{"text":"secret answer"}]}`)}, time.Now())
		var all []string
		for _, kv := range rec.Ended()[0].Attributes() {
			all = append(all, string(kv.Key)+"="+kv.Value.Emit())
		}
		text := strings.Join(all, " ")
		for _, secret := range []string{"secret prompt", "secret answer"} {
			if strings.Contains(text, secret) != content {
				t.Errorf("content %v: %q on the span: %v", content, secret, strings.Contains(text, secret))
			}
		}
	}
}

// A refused request's span is an error with the gateway's code; without a
// traceparent a new trace begins.
func TestRefusedAndHookFailure(t *testing.T) {
	t.Parallel()
	tr, rec := recorder(t, false)
	r := tr.Start("not-a-traceparent", "", time.Now())
	r.Hooks(time.Now(), time.Millisecond, errors.New("boom"))
	r.Refused(403, "hook_rejected", time.Now())
	spans := rec.Ended()
	req := spans[1]
	if req.Parent().IsValid() || !req.SpanContext().TraceID().IsValid() {
		t.Errorf("a malformed traceparent must start a new trace: parent %v", req.Parent())
	}
	if req.Status().Code != codes.Error || attrs(req)["error.type"] != "hook_rejected" || attrs(req)["http.response.status_code"] != "403" {
		t.Errorf("refused span: %v %v", req.Status(), attrs(req))
	}
	if spans[0].Status().Code != codes.Error {
		t.Errorf("failed hook span status %v", spans[0].Status())
	}
}

func TestProviderNameAndOperation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api             string
		vertex, bedrock bool
		want            string
	}{
		{"openai", false, false, "openai"}, {"anthropic", false, false, "anthropic"}, {"azure-openai", false, false, "azure.ai.openai"},
		{"gemini", false, false, "gcp.gemini"}, {"anthropic", true, false, "gcp.vertex_ai"}, {"bedrock", false, true, "aws.bedrock"},
	} {
		if got := ProviderName(tt.api, tt.vertex, tt.bedrock); got != tt.want {
			t.Errorf("ProviderName(%q, %v, %v) = %q, want %q", tt.api, tt.vertex, tt.bedrock, got, tt.want)
		}
	}
	for path, want := range map[string]string{"/v1/chat/completions": "chat", "/v1/messages": "chat", "/v1/responses": "chat",
		"/v1/completions": "text_completion", "/v1/embeddings?x": "embeddings"} {
		if got := Operation(path); got != want {
			t.Errorf("Operation(%q) = %q, want %q", path, got, want)
		}
	}
}
