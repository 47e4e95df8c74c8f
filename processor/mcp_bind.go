package processor

import (
	"strconv"
	"time"
)

// The sessions of /mcp/<server>: a server's Mcp-Session-Id passes between
// the client and the server unchanged, and the gateway binds it to the key
// whose initialize the server answered with it, in a table like /mcp's
// own sessions (the same bounds). Another key's request with it is
// answered 404, as a session the server does not know: a key allowed the
// server that learned another client's session id cannot read that
// session's stream of server messages, send in it or end it. A session the
// table does not know (opened through another replica, before extproc
// restarted, or idle for aggSessionIdle) is nobody's and passes, so that
// what worked before keeps working: the server decides.

// boundSessions is the table of /mcp/<server> sessions.
func (s *Server) boundSessions() *aggSessions {
	s.mcpBoundOnce.Do(func() { s.mcpBound = newAggSessions(maxAggSessions, maxAggSessionsPerKey) })
	return s.mcpBound
}

// boundID is the session table's id of a /mcp/<server> session; a session
// id is visible ASCII (MCP), without spaces, and a /mcp one is hex.
func boundID(server, id string) string { return server + " " + id }

// bind records that the server's answer to key's initialize opened the
// session id. A binding that makes room is forgotten: its session is the
// server's to end.
func (t *aggSessions) bind(server, id, key string, now time.Time) {
	t.put(boundID(server, id), &aggSession{key: key, server: server}, now)
}

// boundToOther reports whether the server's session id is another key's.
func (t *aggSessions) boundToOther(server, id, key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[boundID(server, id)]
	switch {
	case s == nil || now.Sub(s.lastUsed) > aggSessionIdle:
		return false
	case s.key != key:
		return true
	}
	s.lastUsed = now
	return false
}

// unbind forgets key's session id with the server, ended.
func (t *aggSessions) unbind(server, id, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[boundID(server, id)]; s != nil && s.key == key {
		delete(t.m, boundID(server, id))
	}
}

// checkSession refuses a request in another key's session with the server.
func (m *mcpExchange) checkSession() *rpcError {
	if m.session == "" || !m.srv.boundSessions().boundToOther(m.server.Name, m.session, m.principal.Name, time.Now()) {
		return nil
	}
	return &rpcError{status: 404, code: rpcInvalidRequest, reason: "unknown_session",
		message: "unknown or expired session with MCP server " + strconv.Quote(m.server.Name) + ": send initialize first"}
}

// bindSession reads a /mcp/<server> answer's status and session id: an
// initialize answered with a session binds it to the key, a DELETE that
// ended one unbinds it.
func (m *mcpExchange) bindSession(issued string) {
	if m.agg || m.server == nil {
		return
	}
	table := m.srv.boundSessions()
	switch {
	case m.rpc.method == "initialize" && m.status == 200 && issued != "":
		table.bind(m.server.Name, issued, m.principal.Name, time.Now())
	case m.method == "DELETE" && m.status/100 == 2 && m.session != "":
		table.unbind(m.server.Name, m.session, m.principal.Name)
	}
}
