package processor

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
	if set[routing.ClusterHeader] != "mcp/github" || set[":path"] != "/v1/mcp" || set["authorization"] != "Bearer "+secretOpenAI ||
		set[routing.OriginalPathHeader] != "/mcp/github" {
		t.Errorf("set headers %v, want the server's cluster, path and credential, and the client's path for Envoy's spans", set)
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
		{"initialize without an id", []*extprocv3.ProcessingRequest{mcpPost("/mcp", keyTeamA),
			bodyMsg(`{"jsonrpc":"2.0","method":"initialize","params":{}}`, true)}, 400, `"id":null,"error":{"code":-32600`},
		{"a batch with a request", []*extprocv3.ProcessingRequest{mcpPost("/mcp", keyTeamA),
			bodyMsg(`[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":9,"method":"ping"}]`, true)},
			400, `"reason":"batch"`},
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

// TestMCPAllowListMethods: a key with mcp_tools reaches a server's tools
// and its lifecycle, not its resources, prompts or completions, alone or
// in a batch; the refusal is the one for a tool not allowed.
func TestMCPAllowListMethods(t *testing.T) {
	t.Parallel()
	s := mcpServerUnderTest(t)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":"s1","result":{}}`,
		`{"jsonrpc":"2.0","id":"t","method":"tasks/result","params":{"taskId":"x"}}`,
		`{"jsonrpc":"2.0","id":"l","method":"logging/setLevel","params":{"level":"info"}}`,
		`[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":4,"method":"ping"}]`,
	} {
		sent := run(t, s, mcpPost("/mcp/github", keyTeamA), bodyMsg(body, true))
		if got := setHeaders(sent[len(sent)-1].GetRequestBody().GetResponse().GetHeaderMutation())[routing.ClusterHeader]; got != "mcp/github" {
			t.Errorf("%s went to %q, want mcp/github", body, got)
		}
	}
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":"r1","method":"resources/read","params":{"uri":"repo://secret"}}`:        `"id":"r1","error":{"code":-32001,"message":"method \"resources/read\" is not allowed for key \"team-a\"`,
		`{"jsonrpc":"2.0","id":5,"method":"resources/templates/list"}`:                                  `{"jsonrpc":"2.0","id":5,"result":{"resourceTemplates":[]}}`,
		`{"jsonrpc":"2.0","id":"l","method":"tasks/list"}`:                                              `{"jsonrpc":"2.0","id":"l","result":{"tasks":[]}}`,
		`{"jsonrpc":"2.0","id":"p","method":"prompts/list"}`:                                            `{"jsonrpc":"2.0","id":"p","result":{"prompts":[]}}`,
		`{"jsonrpc":"2.0","id":6,"method":"prompts/get","params":{"name":"p"}}`:                         `"reason":"not_allowed"`,
		`{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{}}`:                           `"reason":"not_allowed"`,
		`[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":9,"method":"resources/read"}]`: `"id":null,"error":{"code":-32001,"message":"method \"resources/read\"`,
	} {
		checkMCPRefusal(t, run(t, s, mcpPost("/mcp/github", keyTeamA), bodyMsg(body, true)), 200, want)
	}
}

// TestMCPAnswerLeavesInflight: an MCP answer, which may be an SSE stream
// as long as its session, does not hold one of the gateway's in-flight
// slots once the request went on: idle streams cannot fill MaxInflight.
func TestMCPAnswerLeavesInflight(t *testing.T) {
	t.Parallel()
	s := mcpServerUnderTest(t)
	st := newFakeStream(t.Context(), mcpPost("/mcp/github", keyTeamA),
		bodyMsg(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","arguments":{}}}`, true),
		responseHeadersMsg("200"), responseBodyMsg("event: message\n", false))
	var seen []int64
	st.onRecv = func() { seen = append(seen, s.inflight.Load()) }
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 1, 1, 0, 0}; !slices.Equal(seen, want) {
		t.Errorf("in flight at each message: %v, want %v", seen, want)
	}
	if n := s.inflight.Load(); n != 0 {
		t.Errorf("%d in flight after the stream", n)
	}
}

// TestMCPKeyStore: MCP endpoints take keys from the key store as model
// endpoints do. With a store and no client keys in the config, a call
// without a key is refused, and a store key's mcp_tools apply.
func TestMCPKeyStore(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, `
providers: [{name: openai, url: "https://api.openai.com", schema: openai}]
mcp_servers:
  - {name: github, url: "https://mcp.example.com/v1/mcp", auth: {type: bearer, key_env: OPENAI_API_KEY}}
`)
	store := routing.NewKeySet([]routing.ClientKey{{Name: "ci", Digest: routing.DigestOf("sy-store-key"), MCPTools: []string{"github/search_*"}}})
	s := New(Options{Router: func() *routing.Router { return r }, Keys: func() *routing.KeySet { return store }})
	call := func(tool string) *extprocv3.ProcessingRequest {
		return bodyMsg(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, true)
	}
	noKey := headersMsg(buffered, false, ":method", "POST", ":path", "/mcp/github", "content-type", "application/json")
	checkMCPRefusal(t, run(t, s, noKey, call("search_code")), 401, `"message":"missing API key`)
	checkMCPRefusal(t, run(t, s, mcpPost("/mcp/github", "sy-store-key"), call("delete_repo")), 200,
		`"message":"tool \"github/delete_repo\" is not allowed for key \"ci\""`)
	sent := run(t, s, mcpPost("/mcp/github", "sy-store-key"), call("search_code"))
	if got := setHeaders(sent[len(sent)-1].GetRequestBody().GetResponse().GetHeaderMutation())[routing.ClusterHeader]; got != "mcp/github" {
		t.Errorf("an allowed call with the store's key went to %q, want mcp/github", got)
	}
}

func checkMCPRefusal(t *testing.T, sent []*extprocv3.ProcessingResponse, status int, want string) {
	t.Helper()
	ir := sent[len(sent)-1].GetImmediateResponse()
	if ir == nil || int(ir.GetStatus().GetCode()) != status || !strings.Contains(string(ir.GetBody()), want) {
		t.Errorf("answer %v, want %d with %s", sent[len(sent)-1], status, want)
	}
}

func responseHeadersMsg(status string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)}}},
	}}}
}

func responseBodyMsg(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos}}}
}

// TestMCPMetricsExposition: calls answered ok, with a tool error, with an
// HTTP error and cut off, and refused ones, compared with
// testdata/metrics/mcp.golden.
func TestMCPMetricsExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := compileRouter(t, mcpTestConfig)
	srv := New(Options{Router: func() *routing.Router { return r }, Metrics: m})
	call := func(id string) *extprocv3.ProcessingRequest {
		return bodyMsg(`{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"search_code","arguments":{"q":"x"}}}`, true)
	}
	for _, script := range [][]*extprocv3.ProcessingRequest{
		{mcpPost("/mcp/github", keyTeamA), call("1"), responseHeadersMsg("200"),
			responseBodyMsg("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":", false),
			responseBodyMsg("\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n", true)},
		{mcpPost("/mcp/github", keyTeamA), call("2"), responseHeadersMsg("200"),
			responseBodyMsg(`{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":true}}`, true)},
		{mcpPost("/mcp/github", keyTeamA), call("3"), responseHeadersMsg("500"), responseBodyMsg("oops", true)},
		{mcpPost("/mcp/github", keyTeamA), call("4"), responseHeadersMsg("200"), responseBodyMsg("event: message\n", false)}, // cut off
		{mcpPost("/mcp/github", keyTeamA), bodyMsg(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_repo"}}`, true)},
		{mcpPost("/mcp/gitlab", keyTeamA)},
	} {
		run(t, srv, script...)
	}
	golden := filepath.Join("testdata", "metrics", "mcp.golden")
	names := []string{"switchyard_mcp_calls_total", "switchyard_mcp_refused_total", "switchyard_mcp_requests_total"}
	compareGolden(t, reg, golden, names)
	if n := testutil.CollectAndCount(m.mcp.duration); n != 1 {
		t.Errorf("duration series: %d, want one (server github)", n)
	}
}

// TestMCPBodyOfAnyMethod: a GET or DELETE with a body has its body read as
// a POST's is, and the body's message is answered with a body response:
// Envoy takes any other as a protocol error and fails the request.
func TestMCPBodyOfAnyMethod(t *testing.T) {
	t.Parallel()
	s := mcpServerUnderTest(t)
	for _, method := range []string{"GET", "DELETE"} {
		headers := headersMsg(buffered, false, ":method", method, ":path", "/mcp/github", "authorization", "Bearer "+keyTeamA, routing.MCPSessionHeader, "s-1")
		sent := run(t, s, headers, bodyMsg(`{"jsonrpc":"2.0","id":1,"method":"ping"}`, true))
		if len(sent) != 2 || sent[0].GetRequestHeaders() == nil || sent[1].GetRequestBody() == nil {
			t.Fatalf("%s with a body: answered %v, want the headers, then the body", method, sent)
		}
		if got := setHeaders(sent[1].GetRequestBody().GetResponse().GetHeaderMutation())[routing.ClusterHeader]; got != "mcp/github" {
			t.Errorf("%s with a body went to %q, want mcp/github", method, got)
		}
		checkMCPRefusal(t, run(t, s, headers, bodyMsg(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_repo"}}`, true)),
			200, `"reason":"not_allowed"`)
	}
}
