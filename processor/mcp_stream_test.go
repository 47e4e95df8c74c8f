package processor

import (
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/routing"
)

const mcpTestConfig = `
providers: [{name: openai, url: "https://api.openai.com", schema: openai}]
mcp_servers:
  - {name: github, url: "https://mcp.example.com/v1/mcp", auth: {type: bearer, key_env: OPENAI_API_KEY}}
client_keys:
  - {name: team-a, key_env: KEY_TEAM_A, mcp_tools: ["github/search_*"]}
`

func mcpServerUnderTest(t *testing.T) *Server {
	r := compileRouter(t, mcpTestConfig)
	return New(Options{Router: func() *routing.Router { return r }})
}

func mcpPost(path, key string) *extprocv3.ProcessingRequest {
	return headersMsg(buffered, false, ":method", "POST", ":path", path, "authorization", "Bearer "+key,
		"content-type", "application/json", routing.MCPSessionHeader, "s-1")
}

// TestMCPStreamForwards: an allowed tools/call is answered with the
// server's cluster and path, the client's key out and the server's in.
func TestMCPStreamForwards(t *testing.T) {
	t.Parallel()
	sent := run(t, mcpServerUnderTest(t), mcpPost("/mcp/github", keyTeamA),
		bodyMsg(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","arguments":{}}}`, true))
	if len(sent) != 2 || sent[1].GetRequestBody() == nil {
		t.Fatalf("got %v, want the headers answered, then the body with the decision", sent)
	}
	hm := sent[1].GetRequestBody().GetResponse().GetHeaderMutation()
	set := map[string]string{}
	for _, h := range hm.GetSetHeaders() {
		set[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	if set[routing.ClusterHeader] != "mcp/github" || set[":path"] != "/v1/mcp" || set["authorization"] != "Bearer "+secretOpenAI {
		t.Errorf("set headers %v, want the server's cluster, path and credential", set)
	}
	if strings.Join(hm.GetRemoveHeaders(), ",") != "x-api-key,api-key" || !sent[1].GetRequestBody().GetResponse().GetClearRouteCache() {
		t.Errorf("removed %v (route cache cleared: %v)", hm.GetRemoveHeaders(), sent[1].GetRequestBody().GetResponse().GetClearRouteCache())
	}
}

// TestMCPStreamRefuses: what the gateway answers itself, as JSON-RPC
// errors with an HTTP status.
func TestMCPStreamRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script []*extprocv3.ProcessingRequest
		status int
		want   string
	}{
		{"tool outside the allow-list", []*extprocv3.ProcessingRequest{mcpPost("/mcp/github", keyTeamA),
			bodyMsg(`{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"delete_repo"}}`, true)},
			200, `"id":"c1","error":{"code":-32001,"message":"tool \"github/delete_repo\" is not allowed for key \"team-a\""`},
		{"unknown server", []*extprocv3.ProcessingRequest{mcpPost("/mcp/gitlab", keyTeamA)}, 404, `unknown MCP server \"gitlab\"`},
		{"wrong key", []*extprocv3.ProcessingRequest{mcpPost("/mcp/github", "nope")}, 401, `"code":-32001,"message":"invalid API key"`},
		{"malformed", []*extprocv3.ProcessingRequest{mcpPost("/mcp/github", keyTeamA), bodyMsg(`{"jsonrpc":`, true)}, 400, `"code":-32700`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sent := run(t, mcpServerUnderTest(t), tc.script...)
			checkMCPRefusal(t, sent, tc.status, tc.want)
		})
	}
	// Over MaxInflight: the same answer shape.
	r := compileRouter(t, mcpTestConfig)
	s := New(Options{Router: func() *routing.Router { return r }, MaxInflight: 1})
	s.inflight.Add(1)
	checkMCPRefusal(t, run(t, s, mcpPost("/mcp/github", keyTeamA)), 429, `"reason":"gateway_overloaded"`)
}

func checkMCPRefusal(t *testing.T, sent []*extprocv3.ProcessingResponse, status int, want string) {
	t.Helper()
	ir := sent[len(sent)-1].GetImmediateResponse()
	if ir == nil || int(ir.GetStatus().GetCode()) != status || !strings.Contains(string(ir.GetBody()), want) {
		t.Errorf("answer %v, want %d with %s", sent[len(sent)-1], status, want)
	}
}
