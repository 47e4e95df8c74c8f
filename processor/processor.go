// Package processor is the Envoy external-processing (ext_proc) side of the
// gateway. For each HTTP request Envoy opens a gRPC stream and sends the
// request's phases (headers, body, ...). The processor works in two steps:
// plan (plan.go) turns the request into a Plan, plain data — the body checks,
// the hooks, the routing decision, and for each upstream attempt the headers
// to set and remove, the path and the body; encode (encode.go) turns the
// Plan into Envoy's mutations: the routing header plus a route-cache clear,
// the provider credential, the rewritten body and path. Errors are answered
// directly with an immediate response in the called API's JSON error shape.
//
// The processor adapts to the body mode Envoy announces in the stream's
// protocol configuration: BUFFERED (headers answered at once, the decision
// rides on the body answer) or FULL_DUPLEX_STREAMED (headers and body arrive
// without waiting, and one answer carries the decision).
//
// Three kinds of stream reach it. The router-level filter's, one per
// request, decides it. An attempt cluster's (upstream.go), one per attempt
// of a request with fallbacks, gives the attempt its key, model and path.
// A response cluster's (response.go), one per request whose answer is
// counted or translated, reads the answer: observing it for its tokens, or
// rewriting it into the client's API (rewrite.go, translate.go). Requests
// that need neither never open one.
//
// Across requests the processor remembers provider health and pool keys
// resting after a 429 (health.go) and the loop guard's windows
// (loopguard.go); a request's session key (session.go) keeps it on one
// target and key.
//
// This is the only package that imports the Envoy ext_proc protos, and only
// the stream handling and encode.go use them.
package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/limits"
	"switchyard/luahooks"
	"switchyard/routing"
	"switchyard/tracing"
)

// Options configure a Server.
type Options struct {
	// Router returns the current routing snapshot. It is called once per
	// request; the request keeps that snapshot to the end.
	Router func() *routing.Router
	// Hooks returns the current Lua hook set, or nil for none. It is called
	// once per request; the request keeps that version to the end, so its
	// response hooks come from the same version as its request hooks.
	Hooks func() *luahooks.Set
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// MaxInflight caps the requests being decided at once; past it new
	// requests are answered 429 at once instead of queueing. Envoy opens
	// more gRPC connections when one is full, so this is the cap that holds
	// across all of them. 0 means no cap.
	MaxInflight int64
	// Limiter counts client keys' requests and tokens; nil means a
	// limits.Local of this server's own.
	Limiter Limiter
	// Tracer records each request as a trace (trace.go); nil: no tracing,
	// and nothing recorded per request.
	Tracer *tracing.Tracer
	// Keys returns the key store's current keys, looked up after the
	// config's; nil: no key store.
	Keys func() *routing.KeySet
}

// Server implements the ext_proc gRPC service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	opts     Options
	inflight atomic.Int64
	opened   atomic.Uint64 // streams opened so far
	health   *health       // providers failing their attempts
	// flights are the requests whose attempts or answer pass extproc
	// again, by the gateway's own id.
	flights *flightTable
	limiter Limiter // client keys' request and token budgets
	// limiterWarned is when the last warning about a failing limiter
	// was logged, in Unix nanoseconds.
	limiterWarned atomic.Int64
	state         state       // what plans read across requests
	sessions      *sessionSet // sessions seen lately, for the metric
	// The aggregated /mcp endpoint's sessions (mcp_aggregate.go).
	mcpAggOnce sync.Once
	mcpAgg     *aggSessions
	// mcpBound binds /mcp/<server> sessions to keys (mcp_bind.go): a table
	// of its own, so that neither pushes the other's out.
	mcpBoundOnce sync.Once
	mcpBound     *aggSessions
}

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

// New returns a Server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	s := &Server{opts: opts, health: newHealth(), flights: newFlightTable(opts.Metrics.flightsExpired.Inc),
		sessions: newSessionSet(), limiter: opts.Limiter}
	if s.limiter == nil {
		s.limiter = limits.NewLocal()
	}
	s.state = state{health: s.health, loops: newLoopGuard()}
	return s
}

// ServiceName is the ext_proc gRPC service, for health reporting.
const ServiceName = "envoy.service.ext_proc.v3.ExternalProcessor"

// Register adds the ext_proc service to a gRPC server.
func (s *Server) Register(gs *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(gs, s)
}

// Process handles one HTTP request's ext_proc stream.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	s.opened.Add(1)
	s.opts.Metrics.streams.Inc()
	defer s.opts.Metrics.streams.Dec()
	switch phase(stream.Context()) {
	case envoy.PhaseUpstream:
		// An attempt of a request already admitted: not capped again.
		return s.processAttempt(stream)
	case envoy.PhaseResponse:
		// The answer of a request already admitted.
		return s.processResponse(stream)
	case envoy.PhaseGoogleErrors:
		return s.processGoogleErrors(stream)
	}
	n := s.inflight.Add(1)
	r := exchange{srv: s, overloaded: s.opts.MaxInflight > 0 && n > s.opts.MaxInflight}
	defer r.leave()
	err := serveStream(stream, r.handle, nil, true)
	r.closeTrace()
	if r.mcp != nil {
		r.mcp.finish(stream.Context())
	}
	return err
}

// authenticate maps the key the request's headers present to its
// principal, among the config's keys and then the key store's: every
// endpoint, model or MCP, asks here, so that none forgets the store.
func (s *Server) authenticate(r *routing.Router, rh requestHeaders) (routing.Principal, error) {
	var store *routing.KeySet
	if s.opts.Keys != nil {
		store = s.opts.Keys()
	}
	return r.AuthenticateWith(store, presentedKey(rh.authorization, rh.xAPIKey, rh.apiKey))
}

// Opened is how many ext_proc streams the server has opened: it stays the
// same while no request arrives.
func (s *Server) Opened() uint64 { return s.opened.Load() }

// serveStream reads Envoy's messages until the stream ends, or done (when
// not nil) says there is nothing more to do, and sends what handle answers
// to each. With recycle, a message's body is handed back to bodyBuffers
// once its answers are sent: handle must then keep none of it.
func serveStream(stream extprocv3.ExternalProcessor_ProcessServer, handle func(context.Context, *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse, done func() bool, recycle bool) error {
	ctx := stream.Context()
	for done == nil || !done() {
		var r received
		if err := stream.RecvMsg(&r); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil
			}
			return status.Errorf(codes.Unknown, "receiving from envoy: %v", err)
		}
		for _, resp := range handle(ctx, &r.ProcessingRequest) {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if recycle {
			r.release()
		}
	}
	return nil
}

// exchange is the state of one request across its ext_proc messages.
type exchange struct {
	srv        *Server
	duplex     bool // FULL_DUPLEX_STREAMED: answer headers and body together
	overloaded bool // over MaxInflight when the stream opened: refuse with 429
	// bodyless: Envoy kept the body (body mode NONE) and its body module
	// left summary (nil when it left none); summarized: the request was
	// planned from the summary (decideFromSummary).
	bodyless, summarized, askedForBody bool
	summary                            []byte
	// overHTTP: the request came as a check (check.go), whose answer
	// carries less than an ext_proc stream's.
	overHTTP bool

	router    *routing.Router
	hooks     *luahooks.Set // nil when no hook runs
	req       Request
	tags      map[string]string
	decided   bool
	bodyStart time.Time
	bodyLen   int    // the announced Content-Length, 0 when unknown
	session   string // the session key once planned, for the refusal log
	// upstreamAPI is the API the first attempt's provider speaks, for
	// on_response hooks.
	upstreamAPI config.API
	// trace is the request's span while this stream owns it; nil when
	// not traced, or once handed to the request's flight.
	trace *requestTrace
	// mcp takes the request's messages once it is known to be an MCP
	// request (mcp.go); nil for every other request.
	mcp *mcpExchange
	// left: the request no longer counts in the server's in-flight
	// requests.
	left bool
}

// leave takes the request out of the server's in-flight requests, once.
func (x *exchange) leave() {
	if !x.left {
		x.left = true
		x.srv.inflight.Add(-1)
	}
}

func (x *exchange) handle(ctx context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	if pc := msg.GetProtocolConfig(); pc != nil {
		switch pc.GetRequestBodyMode() {
		case filterv3.ProcessingMode_FULL_DUPLEX_STREAMED:
			x.duplex = true
			x.srv.opts.Metrics.bodyModes[bodyFullDuplex].Inc()
		case filterv3.ProcessingMode_NONE:
			// Envoy kept the body; its module summarized it. Counted once
			// the headers are answered: summarized, or buffered when
			// extproc asked for the body.
			x.bodyless = true
		default:
			x.srv.opts.Metrics.bodyModes[bodyBuffered].Inc()
		}
	}
	if x.mcp != nil {
		if msg.GetResponseHeaders() != nil {
			// An MCP answer, an SSE stream of server messages among them,
			// may stay open for as long as its session: forwarded, the
			// request is no longer extproc's work in flight.
			x.leave()
		}
		return x.mcp.handle(ctx, msg)
	}
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if x.bodyless {
			x.summary = summaryOf(msg)
		}
		resp := x.onRequestHeaders(ctx, v.RequestHeaders)
		if x.bodyless {
			mode := bodySummarized
			if x.askedForBody {
				mode = bodyBuffered
			}
			x.srv.opts.Metrics.bodyModes[mode].Inc()
		}
		if resp != nil {
			return []*extprocv3.ProcessingResponse{resp}
		}
		return nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.onRequestBody(ctx, v.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return x.onRequestTrailers(ctx)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return []*extprocv3.ProcessingResponse{x.onResponseHeaders(ctx, v.ResponseHeaders)}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}}
	}
	return nil
}

func (x *exchange) onRequestBody(ctx context.Context, b *extprocv3.HttpBody) []*extprocv3.ProcessingResponse {
	if x.decided {
		// Late chunks after an answer (e.g. trailers followed): pass them through.
		return nil
	}
	if x.router == nil { // a body before any headers: only a broken peer does this
		return []*extprocv3.ProcessingResponse{x.fail(newAPIError(routing.KindAPI, "internal_error", "internal gateway error"))}
	}
	if x.bodyStart.IsZero() {
		x.bodyStart = time.Now()
	}
	switch {
	case x.req.Body == nil && b.GetEndOfStream():
		x.req.Body = b.GetBody() // the whole body in one message: no copy
	case x.req.Body == nil && x.bodyLen > 0:
		// Chunks of an announced length: one buffer, no regrowth.
		x.req.Body = append(make([]byte, 0, x.bodyLen), b.GetBody()...)
	default:
		x.req.Body = append(x.req.Body, b.GetBody()...)
	}
	if int64(len(x.req.Body)) > x.router.MaxBodyBytes() {
		return []*extprocv3.ProcessingResponse{x.fail(tooLarge(x.router.MaxBodyBytes()))}
	}
	if !b.GetEndOfStream() {
		return nil
	}
	return x.decide(ctx)
}

// onRequestTrailers ends the body when the client sent trailers (the body's
// last chunk then carries no end-of-stream flag).
func (x *exchange) onRequestTrailers(ctx context.Context) []*extprocv3.ProcessingResponse {
	var out []*extprocv3.ProcessingResponse
	if !x.decided {
		out = x.decide(ctx)
	}
	return append(out, &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}})
}

// decide plans the request from its complete body and encodes the plan as
// Envoy's answer.
func (x *exchange) decide(ctx context.Context) []*extprocv3.ProcessingResponse {
	x.decided = true
	// Once answered the body is Envoy's again: the stream may stay open as
	// long as the request, and holds none of it.
	defer func() { x.req.Body = nil }()
	if x.router == nil { // trailers without headers: only a broken peer does this
		return []*extprocv3.ProcessingResponse{x.fail(newAPIError(routing.KindAPI, "internal_error", "internal gateway error"))}
	}
	p, err := plan(ctx, x.router, x.hooks, &x.srv.state, &x.req)
	if err != nil {
		x.noteDecision(&p)
		if err.code == loopDetected {
			x.srv.opts.Metrics.loopGuardVec.WithLabelValues(p.KeyName).Inc()
		}
		return []*extprocv3.ProcessingResponse{x.failModel(err, p.Model)}
	}
	return x.answer(ctx, &p, false)
}

// noteDecision keeps the plan's session for the refusal log and gives the
// request's span the decision.
func (x *exchange) noteDecision(p *Plan) {
	x.session = p.Session
	if x.trace != nil {
		x.traceDecision(p)
	}
}

// answer records a plan made without error and encodes Envoy's answer to
// it: to the body, or with atHeaders to the headers of a request whose
// body Envoy kept (decideFromSummary).
func (x *exchange) answer(ctx context.Context, p *Plan, atHeaders bool) []*extprocv3.ProcessingResponse {
	x.noteDecision(p)
	if p.Answer != nil {
		if x.trace != nil {
			x.trace.span.Local(200, time.Now())
		}
		x.srv.opts.Metrics.requests.WithLabelValues("", "", "estimated").Inc()
		return []*extprocv3.ProcessingResponse{immediate(200, p.Answer, "switchyard_token_estimate",
			routing.Header{Name: EstimateHeader, Value: "bytes/4"})}
	}
	x.tags = p.Tags()
	x.upstreamAPI = p.Attempts[0].API
	x.record(ctx, p)
	if p.Fallback() || p.Response.needed() {
		p.ID = x.fly(p)
	}
	if atHeaders {
		return []*extprocv3.ProcessingResponse{encodePlanAtHeaders(p, x.req.Path)}
	}
	return encodePlan(p, x.req.Path, x.duplex)
}

// record counts a routed request, and logs one that ends here (its answer
// is neither read nor retried).
func (x *exchange) record(ctx context.Context, p *Plan) {
	a := &p.Attempts[0]
	x.srv.opts.Metrics.requests.WithLabelValues(a.Provider, metricModel(a), "routed").Inc()
	if len(x.tags) > 0 {
		x.srv.opts.Metrics.countTags(x.tags)
	}
	if p.Session != "" {
		x.srv.opts.Metrics.sessions[p.SessionSource].Inc()
		if x.srv.sessions.seen(p.Session, time.Now()) {
			x.srv.opts.Metrics.sessionsSeen.Inc()
		}
		if a.Affinity {
			x.srv.opts.Metrics.affinity.Inc()
		}
		if a.KeyAffinity {
			x.srv.opts.Metrics.keyAffinity.Inc()
		}
	}
	x.srv.opts.Metrics.decision.Observe(time.Since(x.bodyStart).Seconds())
	if log := x.srv.opts.Logger; !p.Fallback() && !p.Response.needed() && log.Enabled(ctx, slog.LevelDebug) {
		l := x.logRecord(p)
		log.LogAttrs(ctx, slog.LevelDebug, "routed", slog.Any("", &l))
	}
}

// logRecord is the request's log record as the decision leaves it.
func (x *exchange) logRecord(p *Plan) requestLog {
	a := &p.Attempts[0]
	return requestLog{RequestID: x.req.RequestID, Path: x.req.Path, Model: p.Model, KeyName: p.KeyName, Team: x.req.Principal.Team,
		Session: p.Session, Provider: a.Provider, UpstreamModel: a.Model, Route: a.Route, Tags: x.tags,
		Translated: p.Response.Translate}
}

// fly keeps what the request's later streams need, with the snapshot it
// was planned with, and returns the id they will find it by.
func (x *exchange) fly(p *Plan) string {
	f := &flight{started: time.Now(), router: x.router, log: x.logRecord(p), trace: x.trace}
	x.trace = nil // the streams that end the request end its span
	if p.Fallback() {
		f.attempts = attemptsOf(p)
	}
	if p.Response.needed() {
		f.job = x.job(p)
	}
	x.srv.flights.add(f)
	return f.id
}

// attemptsOf is what the attempts of a plan with fallbacks need of it.
func attemptsOf(p *Plan) *attemptPlan {
	h := &attemptPlan{Path: p.Path, API: p.ClientAPI, Model: p.BodyModel, Retry: p.Retry, Usage: p.Response.Usage, Beta: p.Beta, Version: p.Version}
	if p.Response.Translate {
		h.Upstream = p.Attempts[0].API
	}
	for _, a := range p.Attempts {
		h.Attempts = append(h.Attempts, attemptRef{Provider: a.Provider, Model: a.Model, Key: a.Key})
	}
	return h
}

// job is what the request's response stream needs of it.
func (x *exchange) job(p *Plan) *responseJob {
	a := &p.Attempts[0]
	return &responseJob{queued: time.Now(), plan: p.Response, principal: x.req.Principal,
		clientAPI: p.ClientAPI, upstream: a.API, model: p.Model, provider: a.Provider, metricModel: metricModel(a),
		upstreamModel: a.Model, prices: x.router.Prices(), bodyBytes: x.bodyBytes(p),
		bedrock: a.Bedrock && !p.Fallback(), converse: a.Converse && !p.Fallback()}
}

// bodyBytes is the size of the body a plan sends upstream: the client's,
// whose length Envoy announced, when the plan was made from a summary.
func (x *exchange) bodyBytes(p *Plan) int {
	if x.summarized {
		return x.bodyLen
	}
	return len(p.Body)
}

// metricModel is the model label: the route that matched, or provider/* for
// provider-qualified models, so that client-chosen names cannot grow the
// series without bound.
func metricModel(a *Attempt) string {
	if a.Route != "" {
		return a.Route
	}
	return a.Provider + "/*"
}

func (x *exchange) fail(e *apiError) *extprocv3.ProcessingResponse {
	return x.failModel(e, "")
}

func (x *exchange) failModel(e *apiError, model string) *extprocv3.ProcessingResponse {
	if x.overHTTP && e.status >= 500 {
		// Envoy takes a check's 5xx for a failed check: the stream refuses
		// it in its own words, and counts it once.
		return x.askForBody()
	}
	x.decided = true
	if x.trace != nil {
		x.trace.span.Refused(e.status, e.code, time.Now())
	}
	x.srv.opts.Metrics.requests.WithLabelValues("", "", strconv.Itoa(e.status)).Inc()
	if log := x.srv.opts.Logger; log.Enabled(context.Background(), slog.LevelInfo) {
		l := requestLog{RequestID: x.req.RequestID, Path: x.req.Path, Model: model, KeyName: x.req.Principal.Name,
			Team: x.req.Principal.Team, Session: x.session, Status: e.status, Code: e.code, Reason: e.message}
		log.LogAttrs(context.Background(), slog.LevelInfo, "request refused", slog.Any("", &l))
	}
	return immediate(e.status, e.body(x.req.API), "switchyard_"+e.code, e.headers...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
