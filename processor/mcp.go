package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/tidwall/sjson"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/envoy"
	"switchyard/luahooks"
	"switchyard/routing"
)

// MCP (Model Context Protocol) requests: /mcp/<name> reaches the MCP
// server of that name (JSON-RPC over streamable HTTP: POST a message, GET
// the server's stream, DELETE the session). Envoy sends extproc the
// request body buffered and the answer streamed (envoy/mcp.go). The client
// key is checked as for model calls; the client's credential is removed
// and the server's set. A tools/call outside the key's mcp_tools, over its
// request budget or repeated past the loop guard, and for a key with
// mcp_tools any method but the tools' and the lifecycle's, is answered
// with a JSON-RPC error and never sent; a tools/list answer is narrowed to
// the key's tools. Requests to other paths never reach this file: the
// exchange hands a request over only when no model endpoint matched.

// isMCPPath reports whether path is under /mcp.
func isMCPPath(path string) bool {
	rest, ok := strings.CutPrefix(path, envoy.MCPPathPrefix)
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '?')
}

// mcpExchange is one MCP request across its ext_proc messages.
type mcpExchange struct {
	srv    *Server
	router *routing.Router
	// method, path and requestID are the request's; body its message so
	// far. Copied: a pointer back to the exchange would move every
	// exchange to the heap.
	method, path, requestID string
	body                    []byte
	duplex                  bool
	hooks                   *luahooks.Set // nil when no tool hook runs
	server                  *routing.MCPServer
	principal               routing.Principal
	session                 string // the client's Mcp-Session-Id, "" before initialize
	start                   time.Time
	rpc                     rpcMessage
	status                  int           // the answer's HTTP status
	answer                  *answerReader // nil when the answer is not read
	outcome                 string        // a tools/call's outcome, once known
	// agg: the request is to /mcp itself (mcp_aggregate.go); once a
	// tools/call is routed, aggSession is its /mcp session and
	// upstreamSession that session's with the server.
	agg             bool
	aggSession      *aggSession
	upstreamSession serverSession
	decided         bool
	done            bool
}

// startMCP takes over an exchange whose path is under /mcp.
func (x *exchange) startMCP(ctx context.Context, rh requestHeaders) *extprocv3.ProcessingResponse {
	m := &mcpExchange{srv: x.srv, router: x.router, method: x.req.Method, path: x.req.Path, requestID: x.req.RequestID,
		duplex: x.duplex, session: rh.mcpSession, start: time.Now()}
	x.mcp = m
	if x.srv.opts.Hooks != nil {
		if set := x.srv.opts.Hooks(); set != nil && (set.HasOnToolCall() || set.HasOnToolResult()) {
			m.hooks = set
		}
	}
	if x.overloaded {
		return m.fail(&rpcError{status: 429, code: rpcRefused, reason: "gateway_overloaded", message: "the gateway is handling too many requests; retry shortly"})
	}
	if e := m.admit(ctx, rh); e != nil {
		return m.fail(e)
	}
	if m.agg {
		switch m.method {
		case "GET":
			return m.fail(&rpcError{status: 405, code: rpcInvalidRequest, reason: "method_not_allowed", message: "/mcp offers no stream of server messages; POST messages"})
		case "DELETE":
			return m.endAggregate(ctx)
		}
	}
	if rh.endOfStream { // GET and DELETE: decided now
		return m.forward(true, nil)
	}
	if x.duplex {
		return nil
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
}

// admit checks what the headers tell: the server, the method, the key, the
// announced length.
func (m *mcpExchange) admit(_ context.Context, rh requestHeaders) *rpcError {
	name, ok := mcpServerName(m.path)
	m.agg = !ok && isAggregatePath(m.path)
	if !ok && !m.agg {
		return &rpcError{status: 404, code: rpcInvalidRequest, reason: "unknown_endpoint",
			message: "unknown MCP endpoint " + strconv.Quote(pathOnly(m.path)) + ": use /mcp/<server>"}
	}
	switch m.method {
	case "POST", "GET", "DELETE":
	default:
		return &rpcError{status: 405, code: rpcInvalidRequest, reason: "method_not_allowed",
			message: "method " + m.method + " is not allowed on an MCP endpoint; use POST, GET or DELETE"}
	}
	if rh.mcpSessions > 1 {
		// The gateway would check one copy and a server read another.
		return &rpcError{status: 400, code: rpcInvalidRequest, reason: "invalid_request",
			message: "invalid request: more than one Mcp-Session-Id header"}
	}
	p, err := m.srv.authenticate(m.router, rh)
	if err != nil {
		return &rpcError{status: 401, code: rpcRefused, reason: "unauthenticated", message: fromRouting(err).message}
	}
	m.principal = p
	if m.agg {
		return m.checkLength(rh)
	}
	m.server = m.router.MCPServer(name)
	switch {
	case m.server == nil:
		return &rpcError{status: 404, code: rpcInvalidRequest, reason: "unknown_server", message: "unknown MCP server " + strconv.Quote(name)}
	case !p.AllowsMCPServer(name):
		return &rpcError{status: 403, code: rpcRefused, reason: "not_allowed", message: "key " + strconv.Quote(p.Name) + " may not use MCP server " + strconv.Quote(name)}
	case m.server.Unavailable != "":
		return &rpcError{status: 503, code: rpcRefused, reason: "unavailable", message: "MCP server " + strconv.Quote(name) + " has no credentials configured"}
	}
	if e := m.checkSession(); e != nil {
		return e
	}
	return m.checkLength(rh)
}

// checkLength refuses an announced message over the body limit, and a POST
// without one.
func (m *mcpExchange) checkLength(rh requestHeaders) *rpcError {
	if n, err := strconv.ParseInt(rh.contentLength, 10, 64); err == nil && n > m.router.MaxBodyBytes() {
		return &rpcError{status: 413, code: rpcInvalidRequest, reason: "too_large",
			message: "message exceeds the gateway limit of " + strconv.FormatInt(m.router.MaxBodyBytes(), 10) + " bytes"}
	}
	if rh.endOfStream && m.method == "POST" {
		return &rpcError{status: 400, code: rpcParseError, reason: "parse_error", message: "parse error: the body is empty"}
	}
	return nil
}

// mcpServerName is <name> of /mcp/<name>[?query].
func mcpServerName(path string) (string, bool) {
	rest, _ := strings.CutPrefix(pathOnly(path), envoy.MCPPathPrefix+"/")
	if rest == "" || strings.Contains(rest, "/") || rest == pathOnly(path) {
		return "", false
	}
	return rest, true
}

// handle answers one ext_proc message of the MCP request.
func (m *mcpExchange) handle(ctx context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestBody:
		return m.onBody(ctx, v.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return []*extprocv3.ProcessingResponse{m.onResponseHeaders(v.ResponseHeaders)}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return []*extprocv3.ProcessingResponse{m.onResponseBody(ctx, v.ResponseBody)}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}}
	}
	return nil
}

func (m *mcpExchange) onBody(ctx context.Context, b *extprocv3.HttpBody) []*extprocv3.ProcessingResponse {
	if m.decided {
		return nil
	}
	m.body = append(m.body, b.GetBody()...)
	if int64(len(m.body)) > m.router.MaxBodyBytes() {
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 413, code: rpcInvalidRequest, reason: "too_large",
			message: "message exceeds the gateway limit of " + strconv.FormatInt(m.router.MaxBodyBytes(), 10) + " bytes"})}
	}
	if !b.GetEndOfStream() {
		return nil
	}
	body := m.body
	m.body = nil
	if m.agg {
		return m.aggregate(ctx, body)
	}
	rpc, e := readRPC(body)
	m.rpc = rpc
	if list, ok := emptyLists[rpc.method]; ok && e == nil && rpc.id != "" && !m.principal.AllowsMCPMethod(rpc.method) {
		return m.answer200(list)
	}
	var changed []byte
	if e == nil {
		changed, e = m.check(ctx, body)
	}
	if e != nil {
		return []*extprocv3.ProcessingResponse{m.fail(e)}
	}
	m.readAnswer()
	if changed != nil {
		body = changed
	}
	resp := m.forward(false, changed)
	if m.duplex {
		return []*extprocv3.ProcessingResponse{resp, {Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
				Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: body, EndOfStream: true}},
			}},
		}}}}
	}
	return []*extprocv3.ProcessingResponse{resp}
}

// check applies the key's policy: to any message the methods its
// allow-list lets through, to a tools/call the allowed tools, the
// on_tool_call hooks, the loop guard and its request budget. It returns the
// body with the hooks' arguments when they changed them.
func (m *mcpExchange) check(ctx context.Context, body []byte) ([]byte, *rpcError) {
	if e := m.checkMethods(); e != nil {
		return nil, e
	}
	if m.rpc.method != "tools/call" {
		return nil, nil
	}
	server, tool := m.server.Name, m.rpc.tool
	if !m.principal.AllowsMCPTool(server, tool) {
		return nil, refused("not_allowed", "tool "+strconv.Quote(server+"/"+tool)+" is not allowed for key "+strconv.Quote(m.principal.Name))
	}
	changed, e := m.runToolHooks(ctx, body)
	if e == nil {
		e = m.checkLimits(ctx)
	}
	return changed, e
}

// emptyLists are the answers to the lists of what a server offers besides
// tools, for a client that may not use it: /mcp, which serves tools only,
// and a key with mcp_tools. Clients ask for them whenever a server says it
// has resources or prompts: an empty list, not an error, is what they
// expect of a server without.
var emptyLists = map[string]string{
	"resources/list": `{"resources":[]}`, "resources/templates/list": `{"resourceTemplates":[]}`, "prompts/list": `{"prompts":[]}`,
	// The server knows the gateway as one caller: another key's tasks are
	// in its list.
	"tasks/list": `{"tasks":[]}`,
}

// checkMethods refuses a message, or a batch holding one, whose method the
// key's allow-list keeps from the server (routing.Principal.AllowsMCPMethod).
func (m *mcpExchange) checkMethods() *rpcError {
	if e := m.checkMethod(m.rpc.method); e != nil {
		return e
	}
	for _, method := range m.rpc.batchMethods {
		if e := m.checkMethod(method); e != nil {
			return e
		}
	}
	return nil
}

func (m *mcpExchange) checkMethod(method string) *rpcError {
	if m.principal.AllowsMCPMethod(method) {
		return nil
	}
	return refused("not_allowed", "method "+strconv.Quote(method)+" is not allowed for key "+strconv.Quote(m.principal.Name)+
		": its mcp_tools reach tools only")
}

// runToolHooks runs the on_tool_call hooks: they may refuse the call or
// change its arguments.
func (m *mcpExchange) runToolHooks(ctx context.Context, body []byte) ([]byte, *rpcError) {
	if m.hooks == nil || !m.hooks.HasOnToolCall() {
		return nil, nil
	}
	res, err := m.hooks.OnToolCall(ctx, &luahooks.ToolCall{Server: m.server.Name, Tool: m.rpc.tool, Arguments: []byte(m.rpc.args),
		KeyName: m.principal.Name, Session: m.session, RequestID: m.requestID})
	switch {
	case err != nil:
		// fail_closed: the set returned the failure (fail_open skips it).
		return nil, &rpcError{status: 500, code: rpcRefused, reason: "hook_failed", message: "a gateway hook failed; the call was not sent"}
	case res.Reject != nil:
		return nil, refused("hook", *res.Reject)
	case res.Arguments != nil:
		out, err := sjson.SetRawBytes(body, "params.arguments", res.Arguments)
		if err != nil {
			return nil, &rpcError{status: 500, code: rpcRefused, reason: "hook_failed", message: "a gateway hook failed; the call was not sent"}
		}
		return out, nil
	}
	return nil, nil
}

// checkLimits applies the key's request budget and the loop guard.
func (m *mcpExchange) checkLimits(ctx context.Context) *rpcError {
	server, tool := m.server.Name, m.rpc.tool
	if e := m.srv.checkRequestLimit(ctx, m.principal); e != nil {
		r := refused("rate_limited", e.message)
		for _, h := range e.headers {
			r.headers = append(r.headers, h.Name, h.Value)
		}
		return r
	}
	if g := m.principal.LoopGuard(); g != nil {
		if !m.srv.state.loops.allow(m.srv.state.loops.toolFingerprint(m.principal.Name, m.session, server, tool, m.rpc.args), g, true, time.Now()) {
			return refused(loopDetected, "an identical call of "+strconv.Quote(server+"/"+tool)+" (same arguments) was repeated "+
				strconv.Itoa(g.MaxRepeats)+" times within "+seconds(g.Window)+"; the gateway refuses further repeats until the window has passed")
		}
	}
	return nil
}

// toolFingerprint identifies a tool call for the loop guard: the key, the
// session, the server, the tool and its arguments as sent.
func (g *loopGuard) toolFingerprint(keyName, session, server, tool, args string) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	for _, s := range []string{"mcp", keyName, session, server, tool, args} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// readAnswer decides what is read of the answer: a tools/list reply is
// narrowed to the key's tools, a tools/call reply's outcome is noted.
func (m *mcpExchange) readAnswer() {
	switch m.rpc.method {
	case "tools/list":
		server, p := m.server.Name, m.principal
		m.answer = &answerReader{id: m.rpc.id, hold: true, onReply: func(msg []byte) []byte {
			return narrowTools(msg, func(tool string) bool { return p.AllowsMCPTool(server, tool) })
		}}
	case "tools/call":
		m.answer = &answerReader{id: m.rpc.id, onReply: func(msg []byte) []byte {
			m.outcome = replyOutcome(msg)
			return msg
		}}
	}
}

// forward sends the request on to its server: the routing header, the
// server's path, the client's key out and the server's in, and the body a
// hook changed (nil: the client's). It answers the request's headers
// (atHeaders, or in full duplex mode, where they wait for the body) or its
// body: any method may have one.
func (m *mcpExchange) forward(atHeaders bool, body []byte) *extprocv3.ProcessingResponse {
	m.decided = true
	s := m.server
	hm := &extprocv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{setHeader(routing.ClusterHeader, s.Cluster), setHeader(":path", s.Path),
			setHeader(routing.OriginalPathHeader, pathOnly(m.path))},
		RemoveHeaders: s.Strip,
	}
	if s.Credential != nil {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(s.Credential.Name, s.Credential.Value))
	}
	if m.agg {
		// The client's session is the gateway's; the server knows its own.
		if ss := m.upstreamSession; ss.id != "" {
			hm.SetHeaders = append(hm.SetHeaders, setHeader(routing.MCPSessionHeader, ss.id))
		} else {
			hm.RemoveHeaders = append(slices.Clip(hm.RemoveHeaders), routing.MCPSessionHeader)
		}
		hm.SetHeaders = append(hm.SetHeaders, setHeader("mcp-protocol-version", or(m.upstreamSession.version, mcpHandshakeVersion)))
	} else if m.session == "" {
		// An empty one is none: the session check passed it as none.
		hm.RemoveHeaders = append(slices.Clip(hm.RemoveHeaders), routing.MCPSessionHeader)
	}
	m.srv.opts.Metrics.mcp.requests.WithLabelValues(s.Name, m.method).Inc()
	common := &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true}
	if body != nil {
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(body))))
		if !m.duplex {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
		}
	}
	if atHeaders || m.duplex {
		return &extprocv3.ProcessingResponse{DynamicMetadata: mcpMetadata, Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}}
	}
	return &extprocv3.ProcessingResponse{DynamicMetadata: mcpMetadata, Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}
}

// mcpMetadata marks a forwarded MCP request, so that the errors Envoy
// answers itself (the server unreachable) are JSON-RPC's. Read only.
var mcpMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
	routing.ClientNamespace: namespace("api", structpb.NewStringValue(routing.MCPClientAPI)),
}}

func (m *mcpExchange) onResponseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	issued := ""
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.Key {
		case ":status":
			m.status, _ = strconv.Atoi(headerValue(hv))
		case routing.MCPSessionHeader:
			issued = headerValue(hv)
		}
	}
	m.routedAnswered()
	m.bindSession(issued)
	common := &extprocv3.CommonResponse{}
	if m.status != 200 {
		m.answer = nil
		if m.rpc.method == "tools/call" {
			m.outcome = "http_error"
		}
	} else if m.answer != nil && m.answer.hold {
		// The narrowed reply is shorter than the one announced.
		common.HeaderMutation = &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}
	}
	if h.GetEndOfStream() {
		m.finish(context.Background())
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: common}}}
}

func (m *mcpExchange) onResponseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	common := &extprocv3.CommonResponse{}
	if m.answer != nil {
		if out, changed := m.answer.feed(b.GetBody(), b.GetEndOfStream()); changed {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}}
		}
	}
	if b.GetEndOfStream() {
		m.finish(ctx)
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common}}}
}

// fail answers the request with the gateway's JSON-RPC error.
func (m *mcpExchange) fail(e *rpcError) *extprocv3.ProcessingResponse {
	m.decided = true
	server := ""
	if m.server != nil {
		server = m.server.Name
	}
	m.srv.opts.Metrics.mcp.refused.WithLabelValues(server, e.reason).Inc()
	if m.rpc.method == "tools/call" && server != "" {
		m.srv.opts.Metrics.mcp.calls.WithLabelValues(server, "", m.principal.Name, "refused").Inc()
	}
	m.done = true
	if log := m.srv.opts.Logger; log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "mcp request refused", m.logAttrs(server, e.status, e.reason)...)
	}
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-type", "application/json")}}
	for i := 0; i+1 < len(e.headers); i += 2 {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(e.headers[i], e.headers[i+1]))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.status)},
		Headers: hm,
		Body:    e.body(m.rpc.id),
		Details: "switchyard_mcp_" + e.reason,
	}}}
}

// finish counts and logs a forwarded request once its answer has ended
// (or its stream closed first: a server that died mid-answer).
func (m *mcpExchange) finish(ctx context.Context) {
	if m.done || !m.decided {
		return
	}
	m.done = true
	if m.rpc.method != "tools/call" {
		return
	}
	outcome := m.outcome
	if outcome == "" {
		outcome = "aborted" // the answer ended without the reply
	}
	s := m.server.Name
	mm := m.srv.opts.Metrics.mcp
	mm.calls.WithLabelValues(s, mm.toolLabel(s, m.rpc.tool), m.principal.Name, outcome).Inc()
	mm.duration.WithLabelValues(s).Observe(time.Since(m.start).Seconds())
	if m.hooks != nil && m.hooks.HasOnToolResult() {
		size := 0
		if m.answer != nil {
			size = m.answer.size
		}
		// Failures are counted and logged by the set; the answer is gone.
		_ = m.hooks.OnToolResult(context.WithoutCancel(ctx), &luahooks.ToolResult{Server: s, Tool: m.rpc.tool, KeyName: m.principal.Name,
			Session: m.session, RequestID: m.requestID, Size: size, IsError: outcome != "ok", Outcome: outcome})
	}
	if log := m.srv.opts.Logger; log.Enabled(ctx, slog.LevelInfo) {
		attrs := m.logAttrs(s, m.status, outcome)
		if m.answer != nil {
			attrs = append(attrs, slog.Int("result_bytes", m.answer.size))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "mcp call", attrs...)
	}
}

// logAttrs describe the request without any argument value: the arguments'
// size only, and the session as a hash.
func (m *mcpExchange) logAttrs(server string, status int, outcome string) []slog.Attr {
	attrs := []slog.Attr{slog.String("request_id", m.requestID), slog.String("key", m.principal.Name),
		slog.String("server", server), slog.String("method", m.rpc.method), slog.Int("status", status), slog.String("outcome", outcome),
		slog.Float64("duration_ms", float64(time.Since(m.start).Microseconds())/1000)}
	if m.rpc.tool != "" {
		attrs = append(attrs, slog.String("tool", m.rpc.tool), slog.Int("arguments_bytes", len(m.rpc.args)))
	}
	if m.session != "" {
		h := sha256.Sum256([]byte(m.session))
		attrs = append(attrs, slog.String("session_hash", hex.EncodeToString(h[:6])))
	}
	return attrs
}
