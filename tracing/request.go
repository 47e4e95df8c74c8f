package tracing

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Request is one request's span. Its methods may be called from the
// request's several ext_proc streams, one at a time or not: the span is
// safe for concurrent use, and End takes effect once.
type Request struct {
	t    *Tracer
	span trace.Span
	end  sync.Once
}

// child starts a child span of the request's.
func (r *Request) child(name string, opts ...trace.SpanStartOption) trace.Span {
	_, span := r.t.tracer.Start(trace.ContextWithSpan(context.Background(), r.span), name, opts...)
	return span
}

// Start begins a request's span at start, continuing the trace that
// traceparent (with tracestate) names; without one a trace begins.
func (t *Tracer) Start(traceparent, tracestate string, start time.Time) *Request {
	_, span := t.tracer.Start(parent(context.Background(), traceparent, tracestate), "gateway request",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	return &Request{t: t, span: span}
}

// TraceID is the request's trace id in hex, as Jaeger and logs show it.
func (r *Request) TraceID() string { return r.span.SpanContext().TraceID().String() }

// Decision is what the routing decision knows of the request.
type Decision struct {
	Path  string // the client's path: the operation
	Model string // the model the client asked for
	// Provider is the configured provider the first attempt goes to, API
	// the API it speaks (config.API); Vertex and Bedrock mark those clouds.
	Provider, API   string
	Vertex, Bedrock bool
	UpstreamModel   string // the model the provider is sent
	Route, KeyName  string
	Stream          bool
	// Body is the request body: put on the span only when the Tracer
	// captures content.
	Body []byte
}

// Decided names the span after the request's operation and model and
// records where it goes.
func (r *Request) Decided(d *Decision) {
	op := Operation(d.Path)
	r.span.SetName(op + " " + d.Model)
	attrs := []attribute.KeyValue{
		attribute.String(opName, op),
		attribute.String(providerName, ProviderName(d.API, d.Vertex, d.Bedrock)),
		attribute.String(requestModel, d.Model),
		attribute.String("switchyard.provider", d.Provider),
		attribute.String("switchyard.upstream_model", d.UpstreamModel),
		attribute.String("switchyard.route", d.Route),
		attribute.String("switchyard.key_name", d.KeyName),
		attribute.Bool("switchyard.stream", d.Stream),
	}
	if r.t.content && len(d.Body) > 0 {
		attrs = append(attrs, attribute.String(inputMessages, inputOf(d.Body)))
	}
	r.span.SetAttributes(attrs...)
}

// Hooks records the on_request hooks as a child span from start, took
// long; failed marks a hook failure.
func (r *Request) Hooks(start time.Time, took time.Duration, failed error) {
	span := r.child("hooks on_request", trace.WithTimestamp(start))
	if failed != nil {
		span.SetStatus(codes.Error, "hook failed")
		span.SetAttributes(attribute.String(errorType, "hook_failed"))
	}
	span.End(trace.WithTimestamp(start.Add(took)))
}

// Answer is what the gateway saw of the answer the client got.
type Answer struct {
	// Status is the answer's HTTP status, 0 when none came.
	Status int
	// Tokens are the usage the provider reported; Counted is false when the
	// answer was not read.
	Input, Output int64
	Counted       bool
	// CostUSD is what the answer cost at the price table's prices, when
	// Priced.
	CostUSD float64
	Priced  bool
	// Model and FinishReasons are what the answer said.
	Model         string
	FinishReasons []string
	// FirstToken is from the request leaving for the provider to the
	// answer's first body byte; 0 when no body came.
	FirstToken time.Duration
	// Body is the (JSON) answer, put on the span only when the Tracer
	// captures content; nil for streams.
	Body []byte
}

// End ends the request span with its answer, at end.
func (r *Request) End(a *Answer, end time.Time) {
	r.end.Do(func() {
		attrs := make([]attribute.KeyValue, 0, 8)
		if a.Status != 0 {
			attrs = append(attrs, attribute.Int(statusCode, a.Status))
		}
		if a.Counted {
			attrs = append(attrs, attribute.Int64(inputTokens, a.Input), attribute.Int64(outputTokens, a.Output))
		}
		if a.Priced {
			attrs = append(attrs, attribute.Float64(costUSD, a.CostUSD))
		}
		if a.Model != "" {
			attrs = append(attrs, attribute.String(responseModel, a.Model))
		}
		if len(a.FinishReasons) > 0 {
			attrs = append(attrs, attribute.StringSlice(finishReasons, a.FinishReasons))
		}
		if a.FirstToken > 0 {
			attrs = append(attrs, attribute.Float64(firstToken, seconds(a.FirstToken)))
		}
		if r.t.content && len(a.Body) > 0 {
			attrs = append(attrs, attribute.String(outputMessage, outputOf(a.Body)))
		}
		r.span.SetAttributes(attrs...)
		if a.Status >= 500 || a.Status == 0 {
			r.span.SetStatus(codes.Error, "upstream answered "+strconv.Itoa(a.Status))
			r.span.SetAttributes(attribute.String(errorType, errorOf(a.Status)))
		}
		r.span.End(trace.WithTimestamp(end))
	})
}

// Refused ends the span of a request the gateway answered itself with an
// error: its status and error code.
func (r *Request) Refused(status int, code string, end time.Time) {
	r.end.Do(func() {
		r.span.SetAttributes(attribute.Int(statusCode, status), attribute.String(errorType, code))
		r.span.SetStatus(codes.Error, code)
		r.span.End(trace.WithTimestamp(end))
	})
}

// Local ends the span of a request the gateway answered itself, as it
// should be answered (the models list, a token estimate), or, with status
// 0, one whose answer the gateway did not see.
func (r *Request) Local(status int, end time.Time) {
	r.end.Do(func() {
		if status != 0 {
			r.span.SetAttributes(attribute.Int(statusCode, status))
		}
		r.span.End(trace.WithTimestamp(end))
	})
}

// Abandoned ends the span of a request whose end the gateway never saw
// (its later streams never came or never ended), at end.
func (r *Request) Abandoned(end time.Time) {
	r.end.Do(func() {
		r.span.SetAttributes(attribute.String(errorType, "abandoned"))
		r.span.SetStatus(codes.Error, "abandoned")
		r.span.End(trace.WithTimestamp(end))
	})
}

func errorOf(status int) string {
	if status == 0 {
		return "no_response"
	}
	return strconv.Itoa(status)
}

// Attempt is one upstream try's span, a child of its request's.
type Attempt struct {
	span trace.Span
}

// AttemptStart is what an attempt's span begins with.
type AttemptStart struct {
	N               int // from 1
	Provider, Model string
	API             string
	Vertex, Bedrock bool
	// RetryReason is why the attempt before failed over to this one: its
	// status, or no_response; "" for the first.
	RetryReason string
}

// StartAttempt begins an attempt's span at start.
func (r *Request) StartAttempt(s *AttemptStart, start time.Time) *Attempt {
	span := r.child("attempt "+s.Provider, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.Int("switchyard.attempt", s.N),
			attribute.String(providerName, ProviderName(s.API, s.Vertex, s.Bedrock)),
			attribute.String("switchyard.provider", s.Provider),
			attribute.String(requestModel, s.Model)))
	if s.RetryReason != "" {
		span.SetAttributes(attribute.String("switchyard.retry_reason", s.RetryReason))
	}
	return &Attempt{span: span}
}

// End ends the attempt with the status the provider answered (0: none).
func (a *Attempt) End(status int, end time.Time) {
	if status != 0 {
		a.span.SetAttributes(attribute.Int(statusCode, status))
	}
	if status == 0 || status >= 400 {
		a.span.SetStatus(codes.Error, errorOf(status))
		a.span.SetAttributes(attribute.String(errorType, errorOf(status)))
	}
	a.span.End(trace.WithTimestamp(end))
}

// Cloud sets the attempt's gen_ai.provider.name once the attempt's
// upstream is known: its API, or Vertex AI or Bedrock.
func (a *Attempt) Cloud(api string, vertex, bedrock bool) {
	a.span.SetAttributes(attribute.String(providerName, ProviderName(api, vertex, bedrock)))
}
