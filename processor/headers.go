package processor

import (
	"context"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/envoy"
	"switchyard/routing"
)

// requestHeaders are the request headers the processor reads. Envoy
// forwards only these when no hook needs the rest (envoy.ForwardedHeaders;
// a test drives the processor with that list alone).
type requestHeaders struct {
	authorization, xAPIKey, apiKey string
	contentLength, contentEncoding string
	// The client's W3C trace context, read only when tracing.
	traceparent, tracestate string
	mcpSession              string
	mcpSessions             int // how many Mcp-Session-Id headers came
	endOfStream             bool
}

// readRequestHeaders fills x.req from Envoy's request headers and returns
// the ones only the admission checks need.
func (x *exchange) readRequestHeaders(h *extprocv3.HttpHeaders) requestHeaders {
	if x.hooks != nil && x.hooks.HasOnRequest() {
		x.req.Headers = make(map[string]string, len(h.GetHeaders().GetHeaders()))
	}
	rh := requestHeaders{endOfStream: h.GetEndOfStream()}
	for _, hv := range h.GetHeaders().GetHeaders() {
		if x.req.Headers != nil && !strings.HasPrefix(hv.Key, ":") {
			x.req.Headers[hv.Key] = headerValue(hv)
		}
		switch hv.Key {
		case ":path":
			x.req.Path = headerValue(hv)
		case ":method":
			x.req.Method = headerValue(hv)
		case "authorization":
			rh.authorization = headerValue(hv)
		case "x-api-key":
			rh.xAPIKey = headerValue(hv)
		case "api-key":
			rh.apiKey = headerValue(hv)
		case routing.RequestIDHeader:
			x.req.RequestID = headerValue(hv)
		case "content-length":
			rh.contentLength = headerValue(hv)
		case "content-encoding":
			rh.contentEncoding = headerValue(hv)
		case routing.SessionHeader:
			x.req.session.explicit = headerValue(hv)
		case routing.ClaudeSessionHeader:
			x.req.session.claude = headerValue(hv)
		case routing.CodexSessionHeader:
			x.req.session.codex = headerValue(hv)
		case routing.BetaHeader:
			x.req.Beta = headerValue(hv)
		case routing.VersionHeader:
			x.req.Version = headerValue(hv)
		case envoy.TraceparentHeader:
			if x.srv.opts.Tracer != nil {
				rh.traceparent = headerValue(hv)
			}
		case envoy.TracestateHeader:
			if x.srv.opts.Tracer != nil {
				rh.tracestate = headerValue(hv)
			}
		case routing.MCPSessionHeader:
			rh.mcpSession = headerValue(hv)
			rh.mcpSessions++
		case routing.RetryCountHeader:
			x.req.retry = isRetry(headerValue(hv))
		}
	}
	return rh
}

func headerValue(h *corev3.HeaderValue) string {
	if len(h.RawValue) > 0 {
		return string(h.RawValue)
	}
	return h.Value
}

func (x *exchange) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	x.router = x.srv.opts.Router()
	if x.srv.opts.Hooks != nil {
		if set := x.srv.opts.Hooks(); set != nil && (set.HasOnRequest() || set.HasOnResponse()) {
			x.hooks = set
		}
	}
	rh := x.readRequestHeaders(h)
	if x.srv.opts.Tracer != nil {
		x.startTrace(ctx, &rh)
	}
	ep, api := lookupEndpoint(x.req.Path)
	x.req.API = api
	if ep == nil && isMCPPath(x.req.Path) {
		if x.overHTTP {
			return x.askForBody() // an MCP request keeps its stream
		}
		return x.startMCP(ctx, rh)
	}
	if x.overloaded {
		return x.fail(newAPIError(routing.KindRateLimit, "gateway_overloaded", "the gateway is handling too many requests; retry shortly"))
	}
	if e := checkEndpoint(ep, x.req.Method, x.req.Path); e != nil {
		return x.fail(e)
	}
	p, err := x.srv.authenticate(x.router, rh)
	if err != nil {
		return x.fail(fromRouting(err))
	}
	x.req.Principal = p
	if ep.local {
		x.decided = true
		if x.trace != nil {
			x.trace.span.Local(200, time.Now())
		}
		return immediate(200, modelsList(x.router, p), "switchyard_models")
	}
	if !x.overHTTP { // a check admits the requests it answers (admitChecked)
		if e := x.srv.checkRequestLimit(ctx, p); e != nil {
			return x.fail(e)
		}
	}
	if e := checkBodyHeaders(rh, x.router.MaxBodyBytes()); e != nil {
		return x.fail(e)
	}
	if n, err := strconv.Atoi(rh.contentLength); err == nil && n > 0 {
		x.bodyLen = n // at most the limit: checkBodyHeaders refused more
	}
	if x.duplex {
		return nil // the answer waits for the body
	}
	if x.bodyless {
		return x.decideFromSummary(ctx)
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
}

// checkEndpoint refuses unknown paths and wrong methods.
func checkEndpoint(ep *endpoint, method, path string) *apiError {
	if ep == nil {
		return newAPIError(routing.KindNotFound, "unknown_endpoint", "unknown endpoint "+strconv.Quote(pathOnly(path)))
	}
	if method != ep.method {
		e := newAPIError(routing.KindInvalidRequest, "method_not_allowed", "method "+method+" is not allowed on "+ep.path+"; use "+ep.method)
		e.status = 405
		return e
	}
	return nil
}

// checkBodyHeaders refuses, before the body arrives, a request without a
// body, with a compressed body, or announcing one over the limit.
func checkBodyHeaders(rh requestHeaders, limit int64) *apiError {
	if rh.endOfStream {
		return newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is required")
	}
	if ce := rh.contentEncoding; ce != "" && !strings.EqualFold(ce, "identity") {
		e := newAPIError(routing.KindInvalidRequest, "unsupported_content_encoding", "content-encoding "+strconv.Quote(ce)+" is not supported; send an uncompressed JSON body")
		e.status = 415
		return e
	}
	if rh.contentLength != "" {
		if n, err := strconv.ParseInt(rh.contentLength, 10, 64); err == nil && n > limit {
			return tooLarge(limit)
		}
	}
	return nil
}

// presentedKey returns the key a client presented: an Authorization bearer
// token, or the x-api-key / api-key header used by Anthropic and Azure
// clients (routing.ClientKeyHeaders, in that order).
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

func tooLarge(limit int64) *apiError {
	return newAPIError(routing.KindTooLarge, "request_too_large", "request body exceeds the gateway limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
