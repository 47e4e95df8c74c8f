// Package processor is the Envoy external-processing (ext_proc) side of the
// gateway. For each HTTP request Envoy opens a gRPC stream and sends the
// request's phases (headers, body, ...); the processor reads the model from
// the JSON body, asks routing for a decision and answers with mutations: the
// routing header plus a route-cache clear, the provider credential, a model
// rewrite in the body and a path prefix. Errors are answered directly with an
// immediate response in the called API's JSON error shape.
//
// The processor adapts to the body mode Envoy announces in the stream's
// protocol configuration: BUFFERED (headers answered at once, the decision
// rides on the body answer) or FULL_DUPLEX_STREAMED (headers and body arrive
// without waiting, and one answer carries the decision).
//
// This is the only package that imports the Envoy protos.
package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchyard/config"
	"switchyard/luahooks"
	"switchyard/routing"
)

// ClusterHeader carries the routing decision to Envoy's route
// (cluster_header). Envoy strips any client-sent copy before ext_proc runs.
const ClusterHeader = "x-switchyard-cluster"

// clientCredentialHeaders are the headers a client authenticates with. They
// are always removed before the request goes upstream.
var clientCredentialHeaders = []string{"authorization", "x-api-key", "api-key"}

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
}

// Server implements the ext_proc gRPC service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	opts     Options
	inflight atomic.Int64
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
	return &Server{opts: opts}
}

// ServiceName is the ext_proc gRPC service, for health reporting.
const ServiceName = "envoy.service.ext_proc.v3.ExternalProcessor"

// Register adds the ext_proc service to a gRPC server.
func (s *Server) Register(gs *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(gs, s)
}

// Process handles one HTTP request's ext_proc stream.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	s.opts.Metrics.streams.Inc()
	defer s.opts.Metrics.streams.Dec()
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)

	r := exchange{srv: s, overloaded: s.opts.MaxInflight > 0 && n > s.opts.MaxInflight}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil
			}
			return status.Errorf(codes.Unknown, "receiving from envoy: %v", err)
		}
		out := r.handle(ctx, msg)
		for _, resp := range out {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// exchange is the state of one request across its ext_proc messages.
type exchange struct {
	srv        *Server
	duplex     bool // FULL_DUPLEX_STREAMED: answer headers and body together
	overloaded bool // over MaxInflight when the stream opened: refuse with 429

	router    *routing.Router
	hooks     *luahooks.Set // nil when no hook runs
	headers   map[string]string
	method    string
	tags      map[string]string
	ep        *endpoint
	api       config.API
	principal routing.Principal
	path      string
	requestID string
	body      []byte
	decided   bool
	bodyStart time.Time
}

func (x *exchange) handle(ctx context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	if pc := msg.GetProtocolConfig(); pc != nil {
		x.duplex = pc.GetRequestBodyMode() == filterv3.ProcessingMode_FULL_DUPLEX_STREAMED
	}
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if resp := x.onRequestHeaders(v.RequestHeaders); resp != nil {
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

func headerValue(h *corev3.HeaderValue) string {
	if len(h.RawValue) > 0 {
		return string(h.RawValue)
	}
	return h.Value
}

// presentedKey returns the key a client presented: an Authorization bearer
// token, or the x-api-key / api-key header used by Anthropic and Azure clients.
func presentedKey(authorization, xAPIKey, apiKey string) string {
	if authorization != "" {
		const prefix = "bearer "
		if len(authorization) > len(prefix) && strings.EqualFold(authorization[:len(prefix)], prefix) {
			return strings.TrimSpace(authorization[len(prefix):])
		}
		return strings.TrimSpace(authorization)
	}
	if xAPIKey != "" {
		return xAPIKey
	}
	return apiKey
}

func (x *exchange) onRequestHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	x.router = x.srv.opts.Router()
	if x.srv.opts.Hooks != nil {
		if set := x.srv.opts.Hooks(); set != nil && (set.HasOnRequest() || set.HasOnResponse()) {
			x.hooks = set
		}
	}
	if x.hooks != nil && x.hooks.HasOnRequest() {
		x.headers = make(map[string]string, len(h.GetHeaders().GetHeaders()))
	}
	var authorization, xAPIKey, apiKey, contentLength, contentEncoding string
	for _, hv := range h.GetHeaders().GetHeaders() {
		if x.headers != nil && !strings.HasPrefix(hv.Key, ":") {
			x.headers[hv.Key] = headerValue(hv)
		}
		switch hv.Key {
		case ":path":
			x.path = headerValue(hv)
		case ":method":
			x.method = headerValue(hv)
		case "authorization":
			authorization = headerValue(hv)
		case "x-api-key":
			xAPIKey = headerValue(hv)
		case "api-key":
			apiKey = headerValue(hv)
		case "x-request-id":
			x.requestID = headerValue(hv)
		case "content-length":
			contentLength = headerValue(hv)
		case "content-encoding":
			contentEncoding = headerValue(hv)
		}
	}

	x.ep, x.api = lookupEndpoint(x.path)
	if x.overloaded {
		return x.fail(newAPIError(routing.KindRateLimit, "gateway_overloaded", "the gateway is handling too many requests; retry shortly"))
	}
	if x.ep == nil {
		return x.fail(newAPIError(routing.KindNotFound, "unknown_endpoint", "unknown endpoint "+strconv.Quote(pathOnly(x.path))))
	}
	if x.method != x.ep.method {
		e := newAPIError(routing.KindInvalidRequest, "method_not_allowed", "method "+x.method+" is not allowed on "+x.ep.path+"; use "+x.ep.method)
		e.status = 405
		return x.fail(e)
	}
	p, err := x.router.Authenticate(presentedKey(authorization, xAPIKey, apiKey))
	if err != nil {
		return x.fail(fromRouting(err))
	}
	x.principal = p
	if x.ep.local {
		return x.immediate(200, modelsList(x.router, p), "switchyard_models")
	}
	if h.GetEndOfStream() {
		return x.fail(newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is required"))
	}
	if contentEncoding != "" && !strings.EqualFold(contentEncoding, "identity") {
		e := newAPIError(routing.KindInvalidRequest, "unsupported_content_encoding", "content-encoding "+strconv.Quote(contentEncoding)+" is not supported; send an uncompressed JSON body")
		e.status = 415
		return x.fail(e)
	}
	if contentLength != "" {
		if n, err := strconv.ParseInt(contentLength, 10, 64); err == nil && n > x.router.MaxBodyBytes() {
			return x.fail(tooLarge(x.router.MaxBodyBytes()))
		}
	}
	if x.duplex {
		return nil // the answer waits for the body
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
}

func tooLarge(limit int64) *apiError {
	return newAPIError(routing.KindTooLarge, "request_too_large", "request body exceeds the gateway limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
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
	if x.body == nil && b.GetEndOfStream() {
		x.body = b.GetBody() // common case: the whole body in one message, no copy
	} else {
		x.body = append(x.body, b.GetBody()...)
	}
	if int64(len(x.body)) > x.router.MaxBodyBytes() {
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

// decide turns the complete body into Envoy's answer.
func (x *exchange) decide(ctx context.Context) []*extprocv3.ProcessingResponse {
	x.decided = true
	if x.router == nil { // trailers without headers: only a broken peer does this
		return []*extprocv3.ProcessingResponse{x.fail(newAPIError(routing.KindAPI, "internal_error", "internal gateway error"))}
	}
	model, perr := extractModel(x.body)
	if perr != nil {
		return []*extprocv3.ProcessingResponse{x.fail(perr)}
	}
	body := x.body
	rreq := routing.Request{API: x.ep.api, Model: model, Principal: x.principal}
	var hooked luahooks.Result
	if x.hooks != nil && x.hooks.HasOnRequest() {
		var herr *apiError
		if hooked, herr = x.runRequestHooks(ctx, model); herr != nil {
			return []*extprocv3.ProcessingResponse{x.failModel(herr, model)}
		}
		if hooked.Body != nil {
			body = hooked.Body
		}
		if hooked.Model != "" {
			rreq.Model = hooked.Model
		}
		rreq.Provider, rreq.Route = hooked.Provider, hooked.Route
		x.tags = hooked.Tags
	}
	bodyChanged := hooked.Body != nil

	dec, err := x.router.Decide(ctx, &rreq)
	if err != nil {
		return []*extprocv3.ProcessingResponse{x.failModel(fromRouting(err), model)}
	}
	if dec.Model != rreq.Model {
		if body, err = rewriteModel(body, dec.Model); err != nil {
			return []*extprocv3.ProcessingResponse{x.fail(newAPIError(routing.KindAPI, "internal_error", "internal gateway error"))}
		}
		bodyChanged = true
	}

	hm := &extprocv3.HeaderMutation{SetHeaders: make([]*corev3.HeaderValueOption, 0, 4+len(hooked.SetHeaders))}
	hm.SetHeaders = append(hm.SetHeaders, setHeader(ClusterHeader, dec.Cluster))
	for name, value := range hooked.SetHeaders {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(name, value))
	}
	hm.RemoveHeaders = append(hm.RemoveHeaders, hooked.RemoveHeaders...)
	for _, name := range clientCredentialHeaders {
		if dec.Credential == nil || dec.Credential.Name != name {
			hm.RemoveHeaders = append(hm.RemoveHeaders, name)
		}
	}
	if dec.Credential != nil {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(dec.Credential.Name, dec.Credential.Value))
	}
	if dec.PathPrefix != "" {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(":path", dec.PathPrefix+x.path))
	}

	x.srv.opts.Metrics.requests.WithLabelValues(dec.Provider, metricModel(dec), "routed").Inc()
	if len(x.tags) > 0 {
		x.srv.opts.Metrics.countTags(x.tags)
	}

	x.srv.opts.Metrics.decision.Observe(time.Since(x.bodyStart).Seconds())
	if log := x.srv.opts.Logger; log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "routed",
			slog.String("request_id", x.requestID), slog.String("path", pathOnly(x.path)),
			slog.String("model", model), slog.String("provider", dec.Provider),
			slog.String("upstream_model", dec.Model), slog.String("route", dec.Route),
			slog.String("key_name", x.principal.Name), slog.Any("tags", x.tags))
	}

	if x.duplex {
		// Headers first (with the body's final length), then the body.
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(body))))
		return []*extprocv3.ProcessingResponse{
			{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true},
			}}},
			{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
				Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
					Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: body, EndOfStream: true}},
				}},
			}}},
		}
	}
	common := &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true}
	if bodyChanged {
		// Envoy refuses a buffered body whose length disagrees with Content-Length.
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(body))))
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
	}
	return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}}
}

// metricModel is the model label: the route that matched, or provider/* for
// provider-qualified models, so that client-chosen names cannot grow the
// series without bound.
func metricModel(d routing.Decision) string {
	if d.Route != "" {
		return d.Route
	}
	return d.Provider + "/*"
}

func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func (x *exchange) fail(e *apiError) *extprocv3.ProcessingResponse {
	return x.failModel(e, "")
}

func (x *exchange) failModel(e *apiError, model string) *extprocv3.ProcessingResponse {
	x.decided = true
	x.srv.opts.Metrics.requests.WithLabelValues("", "", strconv.Itoa(e.status)).Inc()
	log := x.srv.opts.Logger
	if log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "request refused",
			slog.String("request_id", x.requestID), slog.String("path", pathOnly(x.path)),
			slog.Int("status", e.status), slog.String("code", e.code), slog.String("model", truncate(model, 128)),
			slog.String("key_name", x.principal.Name), slog.String("reason", e.message))
	}
	return x.immediate(e.status, e.body(x.api), "switchyard_"+e.code)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (x *exchange) immediate(code int, body []byte, details string) *extprocv3.ProcessingResponse {
	x.decided = true
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-type", "application/json")}},
		Body:    body,
		Details: details,
	}}}
}
