// Package tracing records the gateway's requests as OpenTelemetry traces
// with the GenAI semantic conventions and exports them over OTLP.
//
// A request is one span (Request), named "{operation} {model}", with
// gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model,
// gen_ai.response.model, gen_ai.usage.input_tokens / output_tokens,
// gen_ai.response.finish_reasons and the time to the first token; its
// children are the on_request hooks and one span per upstream attempt
// (provider, status, the reason it was retried). The request span
// continues the W3C traceparent it is given: the one Envoy's ext_proc
// filter puts on its gRPC call when Envoy traces, else the client's.
//
// The rest of the gateway hands this package plain data and never sees an
// OpenTelemetry type. Where spans go is set by the standard OTEL_*
// environment variables (package export). A gateway without tracing has no Tracer,
// and the processor records nothing per request.
package tracing

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracer, as OpenTelemetry asks of a library.
const instrumentation = "switchyard/tracing"

// Tracer starts request spans. The zero value is not usable: New.
type Tracer struct {
	tracer trace.Tracer
	// content puts request and answer bodies on spans (capture_content).
	content bool
}

// New returns a Tracer whose spans go to tp; content captures prompts and
// answers.
func New(tp trace.TracerProvider, content bool) *Tracer {
	return &Tracer{tracer: tp.Tracer(instrumentation), content: content}
}

// CapturesContent reports whether prompts and answers go on the spans.
func (t *Tracer) CapturesContent() bool { return t.content }

// parent is the span context a W3C traceparent (and tracestate) names,
// in ctx; ctx as it is when there is none or it is malformed.
func parent(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
}

// Attribute names of the GenAI semantic conventions, and the gateway's own.
const (
	opName        = "gen_ai.operation.name"
	providerName  = "gen_ai.provider.name"
	requestModel  = "gen_ai.request.model"
	responseModel = "gen_ai.response.model"
	inputTokens   = "gen_ai.usage.input_tokens"
	// costUSD is the answer's price in US dollars (the gateway's price
	// table; no GenAI convention names it).
	costUSD       = "switchyard.cost_usd"
	outputTokens  = "gen_ai.usage.output_tokens"
	finishReasons = "gen_ai.response.finish_reasons"
	// firstToken names the GenAI metric of the same meaning, in seconds.
	firstToken    = "gen_ai.server.time_to_first_token"
	inputMessages = "gen_ai.input.messages"
	outputMessage = "gen_ai.output.messages"
	statusCode    = "http.response.status_code"
	errorType     = "error.type"
)

// ProviderName is the gen_ai.provider.name of an upstream API: the GenAI
// conventions' well-known values.
func ProviderName(api string, vertex, bedrock bool) string {
	switch {
	case bedrock:
		return "aws.bedrock"
	case vertex:
		return "gcp.vertex_ai"
	}
	switch api {
	case "anthropic":
		return "anthropic"
	case "azure-openai":
		return "azure.ai.openai"
	case "gemini":
		return "gcp.gemini"
	}
	return "openai"
}

// Operation is the gen_ai.operation.name of a client path.
func Operation(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch path {
	case "/v1/completions":
		return "text_completion"
	case "/v1/embeddings":
		return "embeddings"
	}
	return "chat"
}

// ms is a duration in seconds, as the conventions measure time.
func seconds(d time.Duration) float64 { return d.Seconds() }
