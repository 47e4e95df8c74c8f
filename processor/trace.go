package processor

import (
	"context"
	"time"

	"google.golang.org/grpc/metadata"

	"switchyard/envoy"
	"switchyard/internal/usage"
	"switchyard/tracing"
)

// Tracing (Options.Tracer): a request's span begins at its headers on the
// router-level stream and is ended by the stream that ends the request,
// the one that writes its log line: the router-level stream for a request
// answered there, the response stream for one without fallbacks, the
// concluding attempt's for one with. Every branch below is taken only
// with a Tracer: an untraced request records and allocates nothing more.

// requestTrace is a traced request's span, kept in its flight for the
// streams that end it.
type requestTrace struct {
	span *tracing.Request
	// first is the first attempt, whose span a response stream records
	// for a request without fallbacks.
	first tracing.AttemptStart
}

// startTrace begins the request's span, continuing Envoy's span of this
// ext_proc call (Envoy's tracer puts it in the gRPC metadata), else the
// client's own traceparent.
func (x *exchange) startTrace(ctx context.Context, rh *requestHeaders) {
	tp, ts := rh.traceparent, rh.tracestate
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(envoy.TraceparentHeader); len(v) == 1 {
			tp, ts = v[0], ""
			if s := md.Get(envoy.TracestateHeader); len(s) == 1 {
				ts = s[0]
			}
		}
	}
	x.trace = &requestTrace{span: x.srv.opts.Tracer.Start(tp, ts, time.Now())}
}

// traceDecision records the plan: its hooks, where it goes, and the first
// attempt for the stream that reads the answer.
func (x *exchange) traceDecision(p *Plan) {
	if p.Hooks != nil && !p.HooksStart.IsZero() {
		x.trace.span.Hooks(p.HooksStart, p.HooksTook, p.HookErr)
	}
	if len(p.Attempts) == 0 {
		return
	}
	a := &p.Attempts[0]
	d := tracing.Decision{Path: x.req.Path, Model: p.Model, Provider: a.Provider, API: string(a.API), Vertex: a.Vertex,
		Bedrock: a.Bedrock, UpstreamModel: a.Model, Route: a.Route, KeyName: p.KeyName, Stream: p.Response.Stream}
	if x.srv.opts.Tracer.CapturesContent() {
		d.Body = p.Body
	}
	x.trace.span.Decided(&d)
	x.trace.first = tracing.AttemptStart{N: 1, Provider: a.Provider, Model: a.Model, API: string(a.API), Vertex: a.Vertex, Bedrock: a.Bedrock}
}

// closeTrace ends the span of a request whose stream closed with the
// span still its own: forwarded without its answer being read, or left
// before it was decided.
func (x *exchange) closeTrace() {
	if x.trace != nil {
		x.trace.span.Local(0, time.Now())
	}
}

// answerRead is what a traced request's response stream reads of the
// answer for its span: what the answer says beside its tokens while it
// passes, and the span's Answer once it ended.
type answerRead struct {
	says usage.Answer
	span tracing.Answer
}

// readAnswer has the token reader read the answer for the span too.
func (r *responseStream) readAnswer() {
	r.read = &answerRead{says: usage.Answer{KeepBody: r.srv.opts.Tracer.CapturesContent()}}
	r.tokens.ReadAnswer(&r.read.says)
}

// traceAnswer is what the span gets of the answer that ended.
func (r *responseStream) traceAnswer(t usage.Tokens) tracing.Answer {
	a := tracing.Answer{Status: r.status, Counted: r.tokens != nil, Input: t.Input + t.CacheRead + t.CacheCreation, Output: t.Output}
	a.CostUSD, a.Priced = r.log.Cost.USD(), r.log.Priced
	if r.read != nil {
		a.Model, a.FinishReasons, a.Body = r.read.says.Model, r.read.says.FinishReasons, r.read.says.Body
	}
	if !r.firstByte.IsZero() {
		a.FirstToken = r.firstByte.Sub(r.sent)
	}
	return a
}

// endTrace ends the span of a request without fallbacks at its answer's
// end, with its one attempt; with fallbacks it keeps the answer for the
// concluding attempt, which ends the span.
func (r *responseStream) endTrace(t usage.Tokens) {
	now := time.Now()
	a := r.traceAnswer(t)
	if r.quiet {
		if r.read == nil {
			r.read = &answerRead{}
		}
		r.read.span = a
		return
	}
	r.trace.span.StartAttempt(&r.trace.first, r.sent).End(r.status, now)
	r.trace.span.End(&a, now)
}

// endTrace ends the span of a request with fallbacks, at the end of its
// concluding attempt: with the answer it read, else the attempt's status.
func (u *attempt) endTrace(t *requestTrace) {
	a := tracing.Answer{Status: u.status}
	if u.answer != nil && u.answer.read != nil {
		a = u.answer.read.span
	}
	t.span.End(&a, time.Now())
}
