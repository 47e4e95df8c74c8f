package processor

import (
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/routing"
)

// TestMCPSessionBoundToKey: a /mcp/<server> session belongs to the key
// whose initialize the server answered with it. Another key allowed the
// server cannot read its stream, send in it or end it (404, as a session
// the server does not know); a session the gateway never saw opened passes
// to the server, which decides; once its key ended it, the id is nobody's.
func TestMCPSessionBoundToKey(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, `
providers: [{name: openai, url: "https://api.openai.com", schema: openai}]
mcp_servers:
  - {name: github, url: "https://mcp.example.com/v1/mcp", auth: {type: bearer, key_env: OPENAI_API_KEY}}
client_keys:
  - {name: team-a, key_env: KEY_TEAM_A}
  - {name: team-b, key_env: KEY_TEAM_B}
`)
	s := New(Options{Router: func() *routing.Router { return r }})
	request := func(key, method, session string) []*extprocv3.ProcessingRequest {
		kv := []string{":method", method, ":path", "/mcp/github", "authorization", "Bearer " + key}
		if session != "" {
			kv = append(kv, routing.MCPSessionHeader, session)
		}
		return []*extprocv3.ProcessingRequest{headersMsg(buffered, true, kv...), responseHeadersMsg("200")}
	}
	forwarded := func(sent []*extprocv3.ProcessingResponse) bool {
		return setHeaders(sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation())[routing.ClusterHeader] == "mcp/github"
	}

	opened := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")},
			{Key: routing.MCPSessionHeader, RawValue: []byte("srv-a")}}},
	}}}
	run(t, s, headersMsg(buffered, false, ":method", "POST", ":path", "/mcp/github", "authorization", "Bearer "+keyTeamA, "content-type", "application/json"),
		bodyMsg(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, true), opened)

	for _, method := range []string{"GET", "DELETE"} {
		checkMCPRefusal(t, run(t, s, request(keyTeamB, method, "srv-a")...)[:1], 404, `"reason":"unknown_session"`)
	}
	if sent := run(t, s, request(keyTeamA, "GET", "srv-a")...); !forwarded(sent) {
		t.Errorf("the session's own key was refused: %v", sent[0])
	}
	// Two session headers: the server would read one, the check another.
	for _, second := range []string{"junk", ""} {
		twice := []*extprocv3.ProcessingRequest{headersMsg(buffered, true, ":method", "GET", ":path", "/mcp/github",
			"authorization", "Bearer "+keyTeamB, routing.MCPSessionHeader, "srv-a", routing.MCPSessionHeader, second)}
		checkMCPRefusal(t, run(t, s, twice...), 400, "more than one Mcp-Session-Id")
	}
	// An empty one is none, and the server gets none.
	empty := []*extprocv3.ProcessingRequest{headersMsg(buffered, true, ":method", "GET", ":path", "/mcp/github",
		"authorization", "Bearer "+keyTeamB, routing.MCPSessionHeader, ""), responseHeadersMsg("200")}
	if hm := run(t, s, empty...)[0].GetRequestHeaders().GetResponse().GetHeaderMutation(); !slices.Contains(hm.GetRemoveHeaders(), routing.MCPSessionHeader) {
		t.Errorf("an empty session header reaches the server: %v", hm)
	}
	if sent := run(t, s, request(keyTeamB, "GET", "srv-unseen")...); !forwarded(sent) {
		t.Errorf("a session the gateway never saw opened was refused: %v", sent[0])
	}
	run(t, s, request(keyTeamA, "DELETE", "srv-a")...)
	if sent := run(t, s, request(keyTeamB, "GET", "srv-a")...); !forwarded(sent) {
		t.Errorf("a session its key ended was still bound: %v", sent[0])
	}
}

// A /mcp/<server> session in the table is bound to its server and key, and
// is never taken for a /mcp session.
func TestBoundSessions(t *testing.T) {
	t.Parallel()
	tab := newAggSessions(maxAggSessions, maxAggSessionsPerKey)
	now := time.Now()
	tab.bind("github", "x", "team-a", now)
	if !tab.boundToOther("github", "x", "team-b", now) || tab.boundToOther("github", "x", "team-a", now) || tab.boundToOther("db", "x", "team-b", now) {
		t.Error("a session is bound to another server or key than the one it was opened with")
	}
	if tab.boundToOther("github", "x", "team-b", now.Add(aggSessionIdle+time.Second)) {
		t.Error("a session idle past aggSessionIdle is still bound")
	}
	if tab.get(boundID("github", "x"), "team-a", now) != nil || tab.close(boundID("github", "x"), "team-a") != nil {
		t.Error("a /mcp/<server> session served as a /mcp one")
	}
}

// A key's many /mcp/<server> sessions do not push its /mcp sessions out,
// nor the other way round: each has a table of its own.
func TestBoundSessionsApart(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	now := time.Now()
	id, _ := s.aggSessions().open("team-a", now)
	for i := range maxAggSessionsPerKey + 1 {
		s.boundSessions().bind("github", strconv.Itoa(i), "team-a", now.Add(time.Duration(i+1)*time.Millisecond))
	}
	if s.aggSessions().get(id, "team-a", now.Add(time.Second)) == nil {
		t.Error("bindings pushed out the key's /mcp session")
	}
}
