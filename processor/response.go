package processor

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/bedrock"
	"switchyard/config"
	"switchyard/internal/usage"
	"switchyard/limits"
	"switchyard/pricing"
	"switchyard/routing"
)

// ResponsePlan is what the gateway does with the upstream's answer, as
// plain data. The zero value does nothing, and the answer never passes
// extproc: only requests that need it pay for a response stream.
type ResponsePlan struct {
	// Usage counts the answer's tokens (metrics, log, token limits).
	Usage bool
	// Translate rewrites the answer from the upstream's API into the
	// client's; it counts the tokens too.
	Translate bool
	// Stream is true when the client asked for a stream.
	Stream bool
	// Bedrock: the (first) attempt's answer comes from Bedrock, and is
	// rewritten from its event stream and errors (processor/bedrock.go).
	Bedrock bool
}

// needed reports whether the answer passes a response cluster.
func (r ResponsePlan) needed() bool { return r.Usage || r.Translate || r.Bedrock }

// cluster names the cluster the request goes to: the provider's own, or
// one of its response clusters.
func (r ResponsePlan) cluster(c string) string {
	switch {
	case r.Translate || r.Bedrock:
		return routing.TranslateClusterPrefix + c
	case r.Usage:
		return routing.UsageClusterPrefix + c
	}
	return c
}

// bufferedAnswer is the processing mode a translate cluster's filter
// switches to at a JSON answer's headers: the body comes whole, and the
// headers wait for it, so a translation that fails can still change the
// status.
var bufferedAnswer = &filterv3.ProcessingMode{
	RequestHeaderMode:   filterv3.ProcessingMode_SEND,
	ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
	RequestBodyMode:     filterv3.ProcessingMode_NONE,
	ResponseBodyMode:    filterv3.ProcessingMode_BUFFERED,
	RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
	ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
}

// responseJob is what a response stream needs of its request, handed over
// from the router-level filter's decision in the request's flight.
type responseJob struct {
	queued    time.Time
	plan      ResponsePlan
	principal routing.Principal
	clientAPI config.API
	upstream  config.API
	model     string // the model the client named, which a translated answer names
	// provider answers; with fallbacks, the attempt that reads the answer
	// sets it. For the metrics.
	provider, metricModel string
	// upstreamModel is the model the answering attempt was sent, which the
	// price table prices; prices is the request's snapshot's table.
	upstreamModel string
	prices        *pricing.Table
	// bodyBytes is the size of the body sent upstream, for estimating the
	// input of an answer that ended before reporting any usage.
	bodyBytes int
	// bedrock: the answer comes from Bedrock, converse: from its Converse
	// API (the attempt that reads it sets them with fallbacks).
	bedrock, converse bool
}

// processResponse handles one response cluster's stream: count the
// answer's tokens as it passes and, for a translated request, rewrite it.
// In observability mode (usage clusters) Envoy expects no answers.
func (s *Server) processResponse(stream extprocv3.ExternalProcessor_ProcessServer) error {
	r := responseStream{srv: s}
	defer r.end(context.Background())
	// The stream ends as soon as the answer is counted: in observability
	// mode Envoy would keep it open for its deferred close (5 s) otherwise.
	return serveStream(stream, r.handle, func() bool { return r.ended }, false)
}

// responseStream is the state of one response stream.
type responseStream struct {
	srv       *Server
	begun     bool
	job       *responseJob // nil: the request is unknown, the answer passes as it is
	log       requestLog
	sent      time.Time // the request left for the provider
	firstByte time.Time
	status    int
	tokens    *usage.Reader
	rewrite   *rewriter // nil unless translating
	ended     bool
	complete  bool // the answer's end was seen (else the stream was cut)
	// quiet: the request's log line is someone else's (an attempt's).
	quiet bool
	// trace is the request's span (trace.go), nil when not traced; read
	// is what the span gets of the answer, nil until the answer came.
	trace *requestTrace
	read  *answerRead
}

func (r *responseStream) handle(ctx context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	if !r.begun {
		r.begin(flightID(msg))
	}
	var resp *extprocv3.ProcessingResponse
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		resp = r.headersAnswer(ctx, v.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		resp = r.bodyAnswer(ctx, v.ResponseBody)
	default:
		return nil
	}
	if msg.GetObservabilityMode() {
		return nil
	}
	return []*extprocv3.ProcessingResponse{resp}
}

// headersAnswer reads the answer's headers (onHeaders) and answers them; a
// translated JSON answer is asked for whole.
func (r *responseStream) headersAnswer(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hm := r.onHeaders(h)
	if r.job != nil {
		r.srv.opts.Metrics.usage.answers.WithLabelValues(r.job.provider, strconv.Itoa(r.status)).Inc()
	}
	if h.GetEndOfStream() {
		r.complete = true
		r.end(ctx)
	}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: hm}}}}
	if r.rewrite != nil && r.rewrite.whole() {
		resp.ModeOverride = bufferedAnswer
	}
	return resp
}

// bodyAnswer reads a chunk (onBody) and answers it with the client's bytes
// for it when translating; a whole answer also sets its status and length.
func (r *responseStream) bodyAnswer(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := r.onBody(ctx, b.GetBody(), b.GetEndOfStream())
	common := &extprocv3.CommonResponse{}
	if r.rewrite != nil {
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
		if r.rewrite.whole() {
			// Buffered: the headers wait for this answer.
			common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader(":status", strconv.Itoa(r.rewrite.status)), setHeader("content-length", strconv.Itoa(len(body)))}}
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common}}}
}

// flightID reads the gateway's own id of the request from the dynamic
// metadata Envoy forwards: routing.RequestNamespace, or for a request
// decided by a check (check.go) routing.CheckNamespace.
func flightID(msg *extprocv3.ProcessingRequest) string {
	md := msg.GetMetadataContext().GetFilterMetadata()
	if id := md[routing.RequestNamespace].GetFields()["id"].GetStringValue(); id != "" {
		return id
	}
	return md[routing.CheckNamespace].GetFields()[routing.CheckFlightHeader].GetStringValue()
}

// begin finds the request's job by its flight id. An observing filter sends
// it with the request headers, which Envoy does not wait for; a translating
// one skips them (one wait fewer) and sends it with the response headers.
func (r *responseStream) begin(id string) {
	r.begun = true
	f, j := r.srv.flights.takeJob(id)
	if j == nil {
		r.srv.opts.Logger.LogAttrs(context.Background(), slog.LevelWarn, "response of an unknown request passes as it is",
			slog.String("flight", id))
		return
	}
	r.job, r.log, r.trace = j, f.log, f.trace
	r.sent = j.queued // the request left with the decision
}

// onHeaders reads the status and the body's format. A translated stream
// loses its Content-Length (the body changes size); a translated JSON
// answer or error is asked for whole (bufferedAnswer), and its status and
// length are set with its body.
func (r *responseStream) onHeaders(h *extprocv3.HttpHeaders) *extprocv3.HeaderMutation {
	contentType, errorType := "", ""
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.Key {
		case ":status":
			r.status, _ = strconv.Atoi(headerValue(hv))
		case "content-type":
			contentType = headerValue(hv)
		case bedrock.ErrorTypeHeader:
			errorType = bedrock.ErrorType(headerValue(hv))
		}
	}
	if r.job == nil {
		return nil
	}
	stream := strings.HasPrefix(contentType, "text/event-stream")
	if r.job.bedrock {
		stream = strings.HasPrefix(contentType, bedrock.StreamContentType)
	}
	if r.status < 300 {
		r.tokens = usage.NewReader(stream)
		if r.trace != nil {
			r.readAnswer()
		}
	}
	if !r.job.plan.Translate && !r.job.bedrock {
		return nil
	}
	r.rewrite = newRewriter(r.job, r.status, stream)
	r.rewrite.errorType = errorType
	if r.rewrite.whole() {
		return nil // the body's answer sets the headers
	}
	hm := &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}
	if r.job.bedrock {
		hm.SetHeaders = []*corev3.HeaderValueOption{setHeader("content-type", "text/event-stream; charset=utf-8")}
	}
	return hm
}

// onBody counts a chunk and returns what the client gets in its place
// (translated requests only).
func (r *responseStream) onBody(ctx context.Context, chunk []byte, eos bool) []byte {
	if r.firstByte.IsZero() && len(chunk) > 0 {
		r.firstByte = time.Now()
	}
	var out []byte
	if r.rewrite != nil {
		out = r.rewrite.write(chunk, eos)
	}
	if r.tokens != nil {
		// What the usage is read from: Gemini's usageMetadata and a whole
		// Converse answer's camel-cased usage from the client's translated
		// answer, Bedrock's from its events, other upstreams' from their
		// own answer.
		switch {
		case r.rewrite != nil && (r.rewrite.gemini || r.rewrite.converse && r.rewrite.events == nil):
			r.tokens.Write(out)
		case r.rewrite != nil && r.rewrite.events != nil:
			r.tokens.Write(r.rewrite.events.last)
		default:
			r.tokens.Write(chunk)
		}
	}
	if eos {
		r.complete = true
		r.end(ctx)
	}
	return out
}

// end counts and logs the answer, once: at the end of its body, or when
// the stream closes early (the client or the provider went away).
func (r *responseStream) end(ctx context.Context) {
	if r.ended || r.job == nil {
		return
	}
	r.ended = true
	j := r.job
	var t usage.Tokens
	if r.tokens != nil {
		t = r.tokens.Close()
		if !r.complete || r.tokens.Truncated() {
			t, r.log.UsageEstimated = r.srv.unfinished(j, r.tokens, t)
		}
		r.log.ServiceTier = r.tokens.ServiceTier()
	}
	r.log.Cost, r.log.Priced = r.srv.recordAnswer(ctx, j, t, r.log.ServiceTier, r.sent, r.firstByte)
	if r.trace != nil {
		r.endTrace(t)
	}
	r.log.Status, r.log.Tokens = r.status, &t
	if log := r.srv.opts.Logger; !r.quiet && log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "routed", slog.Any("", &r.log))
	}
}

// recordAnswer counts an answer's tokens, cost and timings and charges the
// tokens and cost to the key's budgets, and returns the cost and whether
// the model has a price. tier is the service tier the answer says it was
// served at, which it is priced at. sent is when the request left for the
// provider, firstByte when the answer's body began (zero: it had none).
func (s *Server) recordAnswer(ctx context.Context, j *responseJob, t usage.Tokens, tier string, sent, firstByte time.Time) (pricing.Cost, bool) {
	end := time.Now()
	price, priced := j.prices.Lookup(j.upstreamModel)
	cost := price.At(tier).Of(t)
	// Charged first: once the tokens show in the metrics, the budget has
	// them (the tests wait for the metric).
	s.charge(ctx, j.principal, limits.Spent{Tokens: t.Total(), MicroUSD: cost.MicroUSD()})
	m := s.opts.Metrics
	m.usage.count(j.principal.Name, j.provider, j.metricModel, t)
	m.usage.spend(j.principal.Name, j.provider, j.metricModel, t, cost, priced)
	if !firstByte.IsZero() {
		m.usage.firstToken.WithLabelValues(j.provider, j.metricModel).Observe(firstByte.Sub(sent).Seconds())
	}
	m.usage.duration.WithLabelValues(j.provider, j.metricModel).Observe(end.Sub(sent).Seconds())
	return cost, priced
}
