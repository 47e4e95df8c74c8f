package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/envoy"
	"switchyard/routing"
)

// The aggregated endpoint: /mcp serves every MCP server the client key may
// use as one MCP server (the handshake protocol). The gateway answers
// initialize itself and keeps, per client session, a session of its own
// with each server, opened when first needed. tools/list merges the
// servers' lists, each tool named <server>__<tool> (server names cannot
// hold "__" nor end in "_", so the name splits at its first "__" and no
// two servers' tools collide). tools/call goes to its server through Envoy, streamed,
// with the tool's own name and the server session's id. Resources and
// prompts are not merged: their lists are empty. Notifications from the
// client are acknowledged and dropped; the GET stream of server messages
// is not offered (405), so server-initiated requests reach the client
// only inside a tools/call answer, and the client's replies to them are
// dropped.

// toolSeparator joins a server's name and its tool's in /mcp.
const toolSeparator = "__"

// aggregateVersions are the protocol versions /mcp speaks; a client asking
// for another gets the newest.
var aggregateVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// Bounds of the session table: sessions idle this long are dropped; a key
// holding maxAggSessionsPerKey makes room with its own least recently
// used, and past maxAggSessions the table's least recently used makes
// room. initialize is answered by the gateway alone, so without the bound
// per key one key could push out every other key's sessions.
const (
	aggSessionIdle       = time.Hour
	maxAggSessions       = 10000
	maxAggSessionsPerKey = 1000
)

// aggregateBudget bounds the calls /mcp makes to the servers for one
// message. Envoy waits for extproc's answer its message timeout at most
// (envoy.BufferedMessageTimeout unless told otherwise; longer in full
// duplex mode), then answers the client an error of its own: a server
// that misses this budget is left out, so that the others still serve.
const aggregateBudget = envoy.BufferedMessageTimeout * 3 / 4

// serverOpenRetry is how long a session with a server that could not be
// opened is not tried again: a server down costs one attempt, not one per
// message.
const serverOpenRetry = 30 * time.Second

// aggSession is one client session of /mcp in the session table, or in
// the table of /mcp/<server> sessions (mcp_bind.go) one of those.
type aggSession struct {
	key    string // the client key's name: another key cannot use it
	server string // a /mcp/<server> session's server; "" for /mcp's own
	mu     sync.Mutex
	// servers are its sessions with the servers, by name, and ended tells
	// that it is out of the table (a session opened now is ended at once);
	// both guarded by mu.
	servers  map[string]*serverOpen
	ended    bool
	lastUsed time.Time // guarded by the table's mu
}

// serverOpen is an aggSession's session with one server, opened once by
// whichever message needs it first: done is closed when the opening ended,
// with ss or err (set before, under the aggSession's mu).
type serverOpen struct {
	done     chan struct{}
	ss       serverSession
	err      error
	failedAt time.Time
}

// aggSessions is a session table: the client sessions of /mcp, or of
// /mcp/<server> (boundSessions), each bound to its key. Created with the
// first one.
type aggSessions struct {
	mu          sync.Mutex
	m           map[string]*aggSession
	max, perKey int // maxAggSessions, maxAggSessionsPerKey
}

// aggSessions is the server's session table, made on first use.
func (s *Server) aggSessions() *aggSessions {
	s.mcpAggOnce.Do(func() { s.mcpAgg = newAggSessions(maxAggSessions, maxAggSessionsPerKey) })
	return s.mcpAgg
}

func newAggSessions(max, perKey int) *aggSessions {
	return &aggSessions{m: map[string]*aggSession{}, max: max, perKey: perKey}
}

// open starts a /mcp session of key, dropping idle ones and, over a
// bound, the least recently used of key's, or else of the table's: dropped,
// whose sessions with the servers the caller ends (those of idle ones have
// expired on the servers' side, or will).
func (t *aggSessions) open(key string, now time.Time) (id string, dropped *aggSession) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id = hex.EncodeToString(b)
	return id, t.put(id, &aggSession{key: key, servers: map[string]*serverOpen{}}, now)
}

// put adds the session added as id, making room as open says.
func (t *aggSessions) put(id string, added *aggSession, now time.Time) (dropped *aggSession) {
	key := added.key
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
	var oldest, oldestOfKey *aggSession
	var oldestID, oldestOfKeyID string
	ofKey := 0
	for sid, s := range t.m {
		switch {
		case now.Sub(s.lastUsed) > aggSessionIdle:
			delete(t.m, sid)
			continue
		case oldest == nil || s.lastUsed.Before(oldest.lastUsed):
			oldest, oldestID = s, sid
		}
		if s.key == key {
			if ofKey++; oldestOfKey == nil || s.lastUsed.Before(oldestOfKey.lastUsed) {
				oldestOfKey, oldestOfKeyID = s, sid
			}
		}
	}
	switch {
	case ofKey >= t.perKey:
		delete(t.m, oldestOfKeyID)
		dropped = oldestOfKey
	case len(t.m) >= t.max:
		delete(t.m, oldestID)
		dropped = oldest
	}
	added.lastUsed = now
	t.m[id] = added
	return dropped
}

func (t *aggSessions) get(id, key string, now time.Time) *aggSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.key != key || s.server != "" || now.Sub(s.lastUsed) > aggSessionIdle {
		return nil
	}
	s.lastUsed = now
	return s
}

// close ends the /mcp session id of key; nil when key has none of that id
// (another key's session stays open).
func (t *aggSessions) close(id, key string) *aggSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.key != key || s.server != "" {
		return nil
	}
	delete(t.m, id)
	return s
}

// serverSession returns the session's session with the server. The first
// message to need it opens it, in the background: a message that cannot
// wait longer (ctx) goes on without it, and a later one finds it open. An
// opening that failed is tried again serverOpenRetry later.
func (a *aggSession) serverSession(ctx context.Context, s *routing.MCPServer) (serverSession, error) {
	a.mu.Lock()
	o := a.servers[s.Name]
	if o == nil || o.err != nil && time.Since(o.failedAt) > serverOpenRetry {
		o = &serverOpen{done: make(chan struct{})}
		a.servers[s.Name] = o
		go a.open(context.WithoutCancel(ctx), s, o)
	}
	a.mu.Unlock()
	select {
	case <-o.done:
		return o.ss, o.err
	case <-ctx.Done():
		return serverSession{}, fmt.Errorf("opening a session with MCP server %q: %w", s.Name, ctx.Err())
	}
}

// open opens o, the session's session with the server s.
func (a *aggSession) open(ctx context.Context, s *routing.MCPServer, o *serverOpen) {
	ss, err := openServerSession(ctx, s)
	a.mu.Lock()
	defer a.mu.Unlock()
	o.ss, o.err = ss, err
	if err != nil {
		o.failedAt = time.Now()
	}
	close(o.done)
	if a.ended && err == nil && ss.id != "" {
		go deleteServerSession(ctx, s, ss)
	}
}

// forget drops the session's session ss with the server of this name, which
// the server has ended: the next message to need one opens another. A newer
// one, opened since, stays.
func (a *aggSession) forget(name string, ss serverSession) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if o := a.servers[name]; o != nil && ss.id != "" && o.ss.id == ss.id {
		delete(a.servers, name)
	}
}

// call sends a message to the server in the session's session with it and
// returns the reply. A server that has ended that session (restarted) gets
// the message once more, in a new one.
func (a *aggSession) call(ctx context.Context, s *routing.MCPServer, body string) ([]byte, error) {
	for retried := false; ; retried = true {
		ss, err := a.serverSession(ctx, s)
		if err != nil {
			return nil, err
		}
		reply, _, err := rpcCall(ctx, s, ss, body)
		if errors.Is(err, errSessionGone) && !retried {
			a.forget(s.Name, ss)
			continue
		}
		return reply, err
	}
}

// isAggregatePath reports whether path is /mcp itself.
func isAggregatePath(path string) bool { return pathOnly(path) == "/mcp" }

// aggregate answers a message POSTed to /mcp.
func (m *mcpExchange) aggregate(ctx context.Context, body []byte) []*extprocv3.ProcessingResponse {
	rpc, e := readRPC(body)
	m.rpc = rpc
	if e != nil {
		return []*extprocv3.ProcessingResponse{m.fail(e)}
	}
	switch {
	case rpc.batched:
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 400, code: rpcInvalidRequest, reason: "batch",
			message: "invalid request: /mcp answers one request at a time, not a batch"})}
	case rpc.method == "initialize" && rpc.id == "":
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 400, code: rpcInvalidRequest, reason: "invalid_request",
			message: "invalid request: initialize is a request and needs an id"})}
	}
	table := m.srv.aggSessions()
	now := time.Now()
	if rpc.method == "initialize" {
		id, dropped := table.open(m.principal.Name, now)
		if dropped != nil {
			m.endServerSessions(ctx, dropped)
		}
		return m.answer200(m.initializeResult(body), routing.Header{Name: routing.MCPSessionHeader, Value: id})
	}
	if rpc.method == "" || rpc.id == "" { // a notification, or a reply to a server's request
		m.decided = true
		return []*extprocv3.ProcessingResponse{immediate(202, nil, "switchyard_mcp_accepted")}
	}
	sess := table.get(m.session, m.principal.Name, now)
	switch {
	case rpc.method == "ping":
		return m.answer200(`{}`)
	case rpc.method == "server/discover":
		// The 2026-07-28 probe: an error makes the SDKs fall back to
		// initialize.
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 200, code: -32601, reason: "method_not_found",
			message: "method not found: /mcp speaks the initialize handshake"})}
	case sess == nil:
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 404, code: rpcInvalidRequest, reason: "unknown_session",
			message: "unknown or expired session: send initialize to /mcp first"})}
	case rpc.method == "tools/list":
		return m.answer200(m.mergedTools(ctx, sess))
	case rpc.method == "tools/call":
		return m.routeCall(ctx, sess, body)
	case emptyLists[rpc.method] != "":
		return m.answer200(emptyLists[rpc.method])
	}
	return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 200, code: -32601, reason: "method_not_found",
		message: "method not found: /mcp serves tools; use /mcp/<server> for " + rpc.method})}
}

// answer200 answers the message with a JSON-RPC result.
func (m *mcpExchange) answer200(result string, headers ...routing.Header) []*extprocv3.ProcessingResponse {
	m.decided = true
	id := m.rpc.id
	return []*extprocv3.ProcessingResponse{immediate(200, []byte(`{"jsonrpc":"2.0","id":`+id+`,"result":`+result+`}`), "switchyard_mcp", headers...)}
}

// initializeResult is the gateway's answer to initialize.
func (m *mcpExchange) initializeResult(body []byte) string {
	version := aggregateVersions[0]
	asked := gjson.GetBytes(body, "params.protocolVersion").Str
	for _, v := range aggregateVersions {
		if v == asked {
			version = v
		}
	}
	return `{"protocolVersion":"` + version + `","capabilities":{"tools":{"listChanged":false}},` +
		`"serverInfo":{"name":"switchyard","version":"1"},` +
		`"instructions":"Tools of several MCP servers, each named <server>__<tool>."}`
}

// mergedTools lists the tools of every server the key may use, allowed
// ones only, renamed <server>__<tool>. The servers are asked together, for
// aggregateBudget at most: one that cannot be reached or does not answer in
// time is left out (and logged), and the others still serve.
func (m *mcpExchange) mergedTools(ctx context.Context, sess *aggSession) string {
	var servers []*routing.MCPServer
	for _, s := range m.router.MCPServerList() {
		if m.principal.AllowsMCPServer(s.Name) && s.Unavailable == "" {
			servers = append(servers, s)
		}
	}
	lists := make([]gjson.Result, len(servers))
	errs := make([]error, len(servers))
	listCtx, cancel := context.WithTimeout(ctx, aggregateBudget)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { lists[i], errs[i] = listTools(listCtx, sess, s) })
	}
	wg.Wait()
	out := []byte(`{"tools":[`)
	n := 0
	for i, s := range servers {
		if errs[i] != nil {
			m.srv.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "mcp server left out of /mcp tools/list", slog.String("server", s.Name), slog.String("error", errs[i].Error()))
			continue
		}
		lists[i].ForEach(func(_, t gjson.Result) bool {
			name := t.Get("name").Str
			if !m.principal.AllowsMCPTool(s.Name, name) {
				return true
			}
			renamed, err := sjson.Set(t.Raw, "name", s.Name+toolSeparator+name)
			if err != nil {
				return true
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, renamed...)
			n++
			return true
		})
	}
	return string(append(out, "]}"...))
}

// listTools asks the server for its tools, in the session's session with
// it.
func listTools(ctx context.Context, sess *aggSession, s *routing.MCPServer) (gjson.Result, error) {
	reply, err := sess.call(ctx, s, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
	if err != nil {
		return gjson.Result{}, err
	}
	return gjson.GetBytes(reply, "result.tools"), nil
}

// routeCall sends a tools/call to its server through Envoy, with the
// tool's own name and the server session's id.
func (m *mcpExchange) routeCall(ctx context.Context, sess *aggSession, body []byte) []*extprocv3.ProcessingResponse {
	server, tool, ok := strings.Cut(m.rpc.tool, toolSeparator)
	s := m.router.MCPServer(server)
	if !ok || s == nil || tool == "" {
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 200, code: -32602, reason: "unknown_tool",
			message: "unknown tool " + strconv.Quote(m.rpc.tool) + ": /mcp names tools <server>__<tool>"})}
	}
	m.server, m.rpc.tool = s, tool
	switch {
	case !m.principal.AllowsMCPServer(server):
		return []*extprocv3.ProcessingResponse{m.fail(refused("not_allowed", "key "+strconv.Quote(m.principal.Name)+" may not use MCP server "+strconv.Quote(server)))}
	case s.Unavailable != "":
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 503, code: rpcRefused, reason: "unavailable", message: "MCP server " + strconv.Quote(server) + " has no credentials configured"})}
	}
	out, err := sjson.SetBytes(body, "params.name", tool)
	if err != nil {
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 400, code: rpcInvalidRequest, reason: "invalid_request", message: "invalid request"})}
	}
	changed, e := m.check(ctx, out)
	if e != nil {
		return []*extprocv3.ProcessingResponse{m.fail(e)}
	}
	if changed != nil {
		out = changed
	}
	openCtx, cancel := context.WithTimeout(ctx, aggregateBudget)
	ss, err := sess.serverSession(openCtx, s)
	cancel()
	if err != nil {
		return []*extprocv3.ProcessingResponse{m.fail(&rpcError{status: 502, code: -32000, reason: "upstream", message: "MCP server " + strconv.Quote(server) + " cannot open a session"})}
	}
	m.readAnswer()
	m.aggSession, m.upstreamSession = sess, ss
	resp := m.forward(false, out)
	if m.duplex {
		return []*extprocv3.ProcessingResponse{resp, {Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
				Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: out, EndOfStream: true}},
			}},
		}}}}
	}
	return []*extprocv3.ProcessingResponse{resp}
}

// routedAnswered reads the status of a routed tools/call's answer: a 404 to
// the gateway's session with the server tells that the server has ended
// it, which is forgotten so that the next message opens a new one. The
// answer goes on to the client, whose call was not run.
func (m *mcpExchange) routedAnswered() {
	if m.status == 404 && m.aggSession != nil {
		m.aggSession.forget(m.server.Name, m.upstreamSession)
	}
}

// endAggregate ends a /mcp session (DELETE) and the gateway's sessions with
// its servers.
func (m *mcpExchange) endAggregate(ctx context.Context) *extprocv3.ProcessingResponse {
	m.decided = true
	sess := m.srv.aggSessions().close(m.session, m.principal.Name)
	if sess == nil {
		return m.fail(&rpcError{status: 404, code: rpcInvalidRequest, reason: "unknown_session", message: "unknown or expired session"})
	}
	m.endServerSessions(ctx, sess)
	return immediate(200, nil, "switchyard_mcp_session_ended")
}

// endServerSessions ends, in the background, the gateway's sessions with
// the servers of sess, a session no longer in the table; one still being
// opened is ended once open.
func (m *mcpExchange) endServerSessions(ctx context.Context, sess *aggSession) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.ended = true
	for name, o := range sess.servers {
		select {
		case <-o.done:
		default:
			continue // open ends it
		}
		if s := m.router.MCPServer(name); s != nil && o.err == nil && o.ss.id != "" {
			go deleteServerSession(context.WithoutCancel(ctx), s, o.ss)
		}
	}
}
