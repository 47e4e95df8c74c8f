package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// mcpPy is the venv `make mcp-py` fills with the pinned MCP Python SDK.
const mcpPy = ".tools/mcppy"

// MCP keys: the gateway's client keys and each server's own token.
const (
	mcpKeyFull   = "sk-mcp-full-0123456789"
	mcpKeyNarrow = "sk-mcp-narrow-0123456789"
	mcpKeyLoop   = "sk-mcp-loop-0123456789"
	mcpKeyBudget = "sk-mcp-budget-0123456789"
	mcpTokenA    = "alpha-server-token-xyz"
	mcpTokenB    = "beta-server-token-xyz"
)

// mcpPython is the venv's python once it can import the MCP SDK.
func mcpPython(t testing.TB) string {
	t.Helper()
	py := filepath.Join(repoRoot(t), mcpPy, "bin", "python")
	if out, err := exec.Command(py, "-c", "import mcp, uvicorn").CombinedOutput(); err != nil {
		t.Fatalf("the MCP Python SDK is required: run `make mcp-py` (installs the pinned version from PyPI into %s): %v\n%s", mcpPy, err, out)
	}
	return py
}

// mcpServer is one MCP server written with the SDK (testdata/mcp_server.py).
type mcpServer struct {
	url  string // its MCP endpoint
	seen string // the file it appends each request's credential headers to
}

func startMCPServer(t testing.TB, py, name, token string) mcpServer {
	t.Helper()
	seen := filepath.Join(t.TempDir(), "seen.jsonl")
	port := startListening(t, exec.Command(py, filepath.Join("testdata", "mcp_server.py"), name, token, seen))
	return mcpServer{url: "http://127.0.0.1:" + port + "/rpc", seen: seen}
}

// mcpGateway is a gateway in front of two MCP servers, alpha and beta.
type mcpGateway struct {
	gw          *gateway
	py          string
	alpha, beta mcpServer
}

func startMCPGateway(t *testing.T, opts gatewayOptions) mcpGateway {
	t.Helper()
	py := mcpPython(t)
	m := mcpGateway{py: py, alpha: startMCPServer(t, py, "alpha", mcpTokenA), beta: startMCPServer(t, py, "beta", mcpTokenB)}
	cfg := fmt.Sprintf(`
providers:
  - {name: unused, url: "http://127.0.0.1:9", schema: openai}
routes:
  - {model: unused, provider: unused}
mcp_servers:
  - {name: alpha, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}
  - {name: beta, url: %q, auth: {type: bearer, key_env: SWY_MCP_BETA}}
client_keys:
  - {name: full, key_env: SWY_MCP_KEY_FULL}
  - {name: narrow, key_env: SWY_MCP_KEY_NARROW, mcp_tools: ["alpha/search_*", "alpha/echo"]}
  - {name: looped, key_env: SWY_MCP_KEY_LOOP, loop_guard: {max_repeats: 2, window: 60s}}
  - {name: budget, key_env: SWY_MCP_KEY_BUDGET, limits: {requests_per_minute: 2}}
max_body_bytes: 65536
`, m.alpha.url, m.beta.url)
	if opts.hooksDir != "" {
		cfg += "hooks: {dir: " + opts.hooksDir + "}\n"
	}
	opts.extraEnv = append(opts.extraEnv, "SWY_MCP_ALPHA="+mcpTokenA, "SWY_MCP_BETA="+mcpTokenB,
		"SWY_MCP_KEY_FULL="+mcpKeyFull, "SWY_MCP_KEY_NARROW="+mcpKeyNarrow, "SWY_MCP_KEY_LOOP="+mcpKeyLoop, "SWY_MCP_KEY_BUDGET="+mcpKeyBudget)
	m.gw = startGateway(t, cfg, opts)
	return m
}

// run runs a scenario of testdata/mcp_client.py and returns what it saw.
func (m mcpGateway) run(t *testing.T, key, mode, scenario string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, m.py, filepath.Join("testdata", "mcp_client.py"), m.gw.url, key, mode, scenario).Output()
	if err != nil {
		t.Fatalf("mcp_client.py %s: %v\n%s", scenario, err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("mcp_client.py %s printed %q: %v", scenario, out, err)
	}
	if e, ok := got["exception"]; ok {
		t.Fatalf("mcp_client.py %s failed: %v", scenario, e)
	}
	return got
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestMCPThroughGateway: the official SDK's client reaches two servers
// written with the SDK through /mcp/<name>, in the handshake protocol and
// in the newest one the SDK discovers, with progress notifications
// streamed; each server sees its own credential, never the client's key.
func TestMCPThroughGateway(t *testing.T) {
	t.Parallel()
	m := startMCPGateway(t, gatewayOptions{})
	for _, mode := range []string{"legacy", "auto"} {
		t.Run(mode, func(t *testing.T) {
			got := m.run(t, mcpKeyFull, mode, "basic")
			want := `["crash","delete_repo","echo","search_code"]`
			if jsonOf(got["alpha_tools"]) != want || jsonOf(got["beta_tools"]) != want {
				t.Errorf("tools: alpha %v, beta %v, want %s each", got["alpha_tools"], got["beta_tools"], want)
			}
			if s := jsonOf(got["search"]); s != `{"ok":true,"text":"alpha found needle"}` {
				t.Errorf("search_code through /mcp/alpha = %s", s)
			}
			if s := jsonOf(got["echo"]); s != `{"ok":true,"text":"beta echo hi"}` {
				t.Errorf("echo through /mcp/beta = %s", s)
			}
			if s := jsonOf(got["progress"]); s != `["alpha step 1","alpha step 2","alpha step 3"]` {
				t.Errorf("progress notifications = %s, want the three steps", s)
			}
		})
	}
	for _, s := range []mcpServer{m.alpha, m.beta} {
		seen, err := os.ReadFile(s.seen)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 {
			t.Fatalf("%s saw no request", s.url)
		}
		for _, k := range []string{mcpKeyFull, mcpKeyNarrow, mcpKeyLoop} {
			if strings.Contains(string(seen), k) {
				t.Errorf("%s saw a client key:\n%s", s.url, seen)
			}
		}
	}
	metrics := m.gw.metrics(t)
	for _, series := range []string{
		`switchyard_mcp_calls_total{key="full",outcome="ok",server="alpha",tool="search_code"} 2`,
		`switchyard_mcp_calls_total{key="full",outcome="ok",server="beta",tool="echo"} 2`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("metrics lack %s\n%s", series, grep(metrics, "switchyard_mcp"))
		}
	}
	if strings.Contains(m.gw.extprocOut.String(), "needle") {
		t.Errorf("extproc logged an argument value:\n%s", grep(m.gw.extprocOut.String(), "mcp"))
	}
}

// TestMCPAllowList: a key's mcp_tools hides the other tools from tools/list
// and refuses a tools/call outside it with a JSON-RPC error that never
// reaches the server; a server none of its patterns names is out of reach.
func TestMCPAllowList(t *testing.T) {
	t.Parallel()
	// On ADS: the MCP clusters and routes reach Envoy over xDS too.
	m := startMCPGateway(t, gatewayOptions{extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"}})
	for _, mode := range []string{"legacy", "auto"} {
		t.Run(mode, func(t *testing.T) {
			got := m.run(t, mcpKeyNarrow, mode, "restricted")
			if s := jsonOf(got["alpha_tools"]); s != `["echo","search_code"]` {
				t.Errorf("tools/list for the narrow key = %s, want only the allowed tools", s)
			}
			if s := jsonOf(got["search"]); s != `{"ok":true,"text":"alpha found x"}` {
				t.Errorf("allowed call = %s", s)
			}
			del, _ := got["delete"].(map[string]any)
			if del["ok"] != false || del["code"] != float64(-32001) || !strings.Contains(fmt.Sprint(del["error"]), `"alpha/delete_repo" is not allowed`) {
				t.Errorf("refused call = %s, want JSON-RPC error -32001 naming the tool", jsonOf(del))
			}
			if b := fmt.Sprint(got["beta"]); !strings.HasPrefix(b, "refused") || !strings.Contains(b, `may not use MCP server "beta"`) {
				t.Errorf("beta for the narrow key: %s, want refused", b)
			}
		})
	}
	if seen, _ := os.ReadFile(m.alpha.seen); strings.Contains(string(seen), "delete_repo") {
		t.Errorf("the refused call reached the server")
	}
	waitMetric(t, m.gw, `switchyard_mcp_refused_total{reason="not_allowed",server="alpha"}`, 2)
}

// TestMCPLoopGuard: the third identical tool call within the window is
// refused; a call with other arguments passes. A key's request budget
// counts tool calls.
func TestMCPLoopGuard(t *testing.T) {
	t.Parallel()
	m := startMCPGateway(t, gatewayOptions{})
	got := m.run(t, mcpKeyLoop, "legacy", "loop")
	calls, _ := got["calls"].([]any)
	if len(calls) != 3 || jsonOf(calls[0]) != `{"ok":true,"text":"alpha echo same"}` || jsonOf(calls[1]) != jsonOf(calls[0]) {
		t.Fatalf("calls = %s, want two answered", jsonOf(calls))
	}
	third, _ := calls[2].(map[string]any)
	if third["code"] != float64(-32001) || !strings.Contains(fmt.Sprint(third["error"]), "repeated 2 times") {
		t.Errorf("third identical call = %s, want the loop guard's JSON-RPC error", jsonOf(third))
	}
	if s := jsonOf(got["other"]); s != `{"ok":true,"text":"alpha echo different"}` {
		t.Errorf("call with other arguments = %s", s)
	}
	// A key with a budget of two requests a minute: its third tool call is
	// refused, whatever its arguments (initialize and tools/list do not count).
	got = m.run(t, mcpKeyBudget, "legacy", "loop")
	calls, _ = got["calls"].([]any)
	third, _ = calls[2].(map[string]any)
	other, _ := got["other"].(map[string]any)
	if jsonOf(calls[1]) != `{"ok":true,"text":"alpha echo same"}` || third["code"] != float64(-32001) ||
		!strings.Contains(fmt.Sprint(third["error"]), "rate limit of 2 requests per minute") || other["ok"] != false {
		t.Errorf("calls over the budget: %s, then %s; want two answered, then refused", jsonOf(calls), jsonOf(other))
	}
	waitMetric(t, m.gw, `switchyard_mcp_refused_total{reason="rate_limited",server="alpha"}`, 2)
}

// TestMCPBadInput: malformed JSON-RPC, an unknown server, an oversized
// message, a wrong method and a server that dies mid-answer each get a
// clear error, and the gateway keeps serving.
func TestMCPBadInput(t *testing.T) {
	t.Parallel()
	m := startMCPGateway(t, gatewayOptions{})
	h := map[string]string{"authorization": "Bearer " + mcpKeyFull, "content-type": "application/json", "accept": "application/json, text/event-stream"}
	tests := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		code                     float64 // 0: -32600 from extproc or -32000 from Envoy, whichever refused first
		message                  string
	}{
		{"malformed JSON", "POST", "/mcp/alpha", `{"jsonrpc":"2.0","id":1,`, h, 400, -32700, "parse error"},
		{"not JSON-RPC", "POST", "/mcp/alpha", `{"id":1,"method":"tools/list"}`, h, 400, -32600, "JSON-RPC 2.0"},
		{"tools/call without a name", "POST", "/mcp/alpha", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`, h, 400, -32602, "params.name"},
		{"unknown server", "POST", "/mcp/nosuch", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, h, 404, -32600, `unknown MCP server "nosuch"`},
		{"oversized message", "POST", "/mcp/alpha", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 70000) + `"}}`, h, 413, 0, "65536 bytes"},
		{"no key", "POST", "/mcp/alpha", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"content-type": "application/json"}, 401, -32001, "missing API key"},
		{"wrong method", "PUT", "/mcp/alpha", `{}`, h, 405, -32600, "use POST, GET or DELETE"},
		{"GET on /mcp", "GET", "/mcp", "", h, 405, -32600, "no stream of server messages"},
		{"/mcp without a session", "POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, h, 404, -32600, "send initialize to /mcp first"},
		{"path below a server", "POST", "/mcp/alpha/x", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, h, 404, -32600, "unknown MCP endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.gw.do(t, tc.method, tc.path, tc.headers, tc.body)
			var e struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct {
					Code    float64 `json:"code"`
					Message string  `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.status != tc.status || e.JSONRPC != "2.0" ||
				(tc.code != 0 && e.Error.Code != tc.code) || !strings.Contains(e.Error.Message, tc.message) {
				t.Errorf("%s %s: %d %s, want %d with JSON-RPC error %v containing %q", tc.method, tc.path, r.status, r.body, tc.status, tc.code, tc.message)
			}
		})
	}
	// A DELETE with a body reaches the server like one without: the
	// server, not Envoy, answers for a session it does not know.
	del := map[string]string{"authorization": "Bearer " + mcpKeyFull, "mcp-session-id": "no-such-session"}
	if r := m.gw.do(t, "DELETE", "/mcp/alpha", del, `{"jsonrpc":"2.0","method":"x"}`); r.status != 404 || !strings.Contains(string(r.body), "Session not found") {
		t.Errorf("DELETE with a body: %d %s, want the server's 404 Session not found", r.status, r.body)
	}
	got := m.run(t, mcpKeyFull, "legacy", "crash")
	if c, _ := got["crash"].(map[string]any); c["ok"] != false {
		t.Errorf("a call whose server died mid-answer = %s, want an error", jsonOf(got["crash"]))
	}
	// A call to the dead server gets Envoy's own reply, as a JSON-RPC error.
	r := m.gw.do(t, "POST", "/mcp/beta", h, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if r.status != 503 || !strings.Contains(string(r.body), `"jsonrpc":"2.0"`) || !strings.Contains(string(r.body), "upstream error") {
		t.Errorf("POST to a dead server: %d %s, want 503 with a JSON-RPC error", r.status, r.body)
	}
	// alpha still answers through the same gateway.
	if s := jsonOf(m.run(t, mcpKeyFull, "legacy", "loop")["other"]); s != `{"ok":true,"text":"alpha echo different"}` {
		t.Errorf("after beta died, alpha answered %s", s)
	}
	waitMetric(t, m.gw, `switchyard_mcp_calls_total{key="full",outcome="aborted",server="beta",tool="crash"}`, 1)
}

// mcpHook refuses echo calls with a forbidden word, rewrites one argument
// of search_code, and logs each result's size and error flag.
const mcpHook = `
function on_tool_call(call)
  if call.tool == "echo" and call.arguments.text:find("forbidden") then
    return call:reject("the word is not allowed through the gateway")
  end
  if call.tool == "search_code" and call.arguments.query == "rewrite-me" then
    call.arguments.query = "rewritten by " .. call.key
  end
end

function on_tool_result(result)
  log("info", "tool result seen", {tool = result.tool, size = result.size, is_error = result.is_error, outcome = result.outcome})
end
`

// TestMCPHooks: on_tool_call refuses a call (never sent) and changes an
// argument the server then sees; on_tool_result sees each answer's size.
func TestMCPHooks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tools.lua"), mcpHook)
	m := startMCPGateway(t, gatewayOptions{hooksDir: dir})
	got := m.run(t, mcpKeyFull, "legacy", "hooked")
	rej, _ := got["rejected"].(map[string]any)
	if rej["code"] != float64(-32001) || !strings.Contains(fmt.Sprint(rej["error"]), "the word is not allowed through the gateway") {
		t.Errorf("rejected call = %s, want the hook's message as a JSON-RPC error", jsonOf(rej))
	}
	if s := jsonOf(got["rewritten"]); s != `{"ok":true,"text":"alpha found rewritten by full"}` {
		t.Errorf("rewritten call = %s, want the hook's argument at the server", s)
	}
	if s := jsonOf(got["plain"]); s != `{"ok":true,"text":"alpha echo fine"}` {
		t.Errorf("plain call = %s", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(m.gw.extprocOut.String(), `"msg":"tool result seen"`) {
		if time.Now().After(deadline) {
			t.Fatalf("on_tool_result never logged:\n%s", m.gw.extprocOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log := m.gw.extprocOut.String(); !strings.Contains(log, `"outcome":"ok","size":`) || strings.Contains(log, "forbidden") {
		t.Errorf("tool result log lacks the size, or a log holds an argument value:\n%s", grep(log, "tool"))
	}
	waitMetric(t, m.gw, `switchyard_mcp_refused_total{reason="hook",server="alpha"}`, 1)

	// The hooks swap live: the new version refuses every echo.
	replaceFile(t, filepath.Join(dir, "tools.lua"), `function on_tool_call(call) if call.tool == "echo" then return call:reject("swapped") end end`)
	waitMetric(t, m.gw, "switchyard_hooks_version", 2)
	got = m.run(t, mcpKeyFull, "legacy", "hooked")
	if p, _ := got["plain"].(map[string]any); !strings.Contains(fmt.Sprint(p["error"]), "swapped") {
		t.Errorf("after the swap the plain call = %s, want the new hook's refusal", jsonOf(p))
	}
	if s := jsonOf(got["rewritten"]); s != `{"ok":true,"text":"alpha found rewrite-me"}` {
		t.Errorf("after the swap the old hook still rewrote: %s", s)
	}
}

// mcpSession is a raw streamable-HTTP session (the handshake protocol) for
// the timing loop: initialize, then one POST per tool call.
type mcpSession struct {
	url, auth, id string
}

func (s *mcpSession) post(tb testing.TB, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest("POST", s.url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("accept", "application/json, text/event-stream")
	req.Header.Set("authorization", s.auth)
	req.Header.Set("mcp-protocol-version", "2025-06-18")
	if s.id != "" {
		req.Header.Set("mcp-session-id", s.id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if id := resp.Header.Get("mcp-session-id"); id != "" {
		s.id = id
	}
	return resp.StatusCode, string(b)
}

func openMCPSession(tb testing.TB, url, auth string) *mcpSession {
	s := &mcpSession{url: url, auth: auth}
	if st, b := s.post(tb, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`); st != 200 || s.id == "" {
		tb.Fatalf("initialize: %d %s", st, b)
	}
	if st, b := s.post(tb, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); st != 202 {
		tb.Fatalf("initialized: %d %s", st, b)
	}
	return s
}

// BenchmarkMCPToolCall times one tools/call (echo, answered as SSE) on an
// open session, straight to the server and through the gateway, in one run
// (docs/PERFORMANCE.md): go test -run x -bench BenchmarkMCPToolCall ./e2e.
// Two servers: the SDK's (Python), and a minimal one in Go that answers at
// once, which leaves the gateway's own share in view.
func BenchmarkMCPToolCall(b *testing.B) {
	py := mcpPython(b)
	alpha := startMCPServer(b, py, "alpha", mcpTokenA)
	fast := httptest.NewServer(http.HandlerFunc(fastMCP))
	b.Cleanup(fast.Close)
	gw := startGateway(b, fmt.Sprintf(`
providers: [{name: unused, url: "http://127.0.0.1:9", schema: openai}]
routes: [{model: unused, provider: unused}]
mcp_servers:
  - {name: alpha, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}
  - {name: fast, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}
client_keys: [{name: full, key_env: SWY_MCP_KEY_FULL}]
`, alpha.url, fast.URL+"/rpc"), gatewayOptions{extraEnv: []string{"SWY_MCP_ALPHA=" + mcpTokenA, "SWY_MCP_KEY_FULL=" + mcpKeyFull}})
	for _, path := range []struct{ name, url, auth, want string }{
		{"sdk_server/direct", alpha.url, "Bearer " + mcpTokenA, "alpha echo t"},
		{"sdk_server/gateway", gw.url + "/mcp/alpha", "Bearer " + mcpKeyFull, "alpha echo t"},
		{"go_server/direct", fast.URL + "/rpc", "Bearer " + mcpTokenA, "fast echo t"},
		{"go_server/gateway", gw.url + "/mcp/fast", "Bearer " + mcpKeyFull, "fast echo t"},
	} {
		b.Run(path.name, func(b *testing.B) {
			s := openMCPSession(b, path.url, path.auth)
			lat := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				i++
				start := time.Now()
				st, body := s.post(b, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"method":"tools/call","params":{"name":"echo","arguments":{"text":"t`+strconv.Itoa(i)+`"}}}`)
				if st != 200 || !strings.Contains(body, path.want) {
					b.Fatalf("tools/call: %d %s", st, body)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// fastMCP is the least an MCP server answers: a session at initialize, 202
// to notifications, and a tools/call's echo as one SSE event.
func fastMCP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("authorization") != "Bearer "+mcpTokenA {
		http.Error(w, "wrong credential", http.StatusUnauthorized)
		return
	}
	id := gjson.GetBytes(body, "id").Raw
	switch gjson.GetBytes(body, "method").Str {
	case "initialize":
		w.Header().Set("mcp-session-id", "fast-session")
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"fast","version":"1"}}}`, id)
	case "tools/call":
		w.Header().Set("content-type", "text/event-stream")
		text, _ := json.Marshal("fast echo " + gjson.GetBytes(body, "params.arguments.text").Str)
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%s}]}}\n\n", id, text)
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// TestClaudeCodeMCPTool: `claude -p` with the README's --mcp-config calls a
// tool of an MCP server through the gateway (the mock model asks for the
// call); the tool's answer reaches the model, the server sees its own
// credential and never the client key, and the call is counted.
func TestClaudeCodeMCPTool(t *testing.T) {
	t.Parallel()
	py := mcpPython(t)
	alpha := startMCPServer(t, py, "alpha", mcpTokenA)
	withMCP := func(config string) string {
		return withAgentKey(config) + fmt.Sprintf("mcp_servers:\n  - {name: alpha, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}\n", alpha.url)
	}
	c := startClaude(t, "mock-claude", withMCP, "SWY_MCP_ALPHA="+mcpTokenA)
	block := readmeBlock(t, "claude-mcp")
	const readmeURL = makeRunURL + "/mcp/github"
	if !strings.Contains(block, readmeURL) || !strings.Contains(block, "Bearer "+c.token) {
		t.Fatalf("README's --mcp-config no longer names %s with the client key:\n%s", readmeURL, block)
	}
	mcpConfig := filepath.Join(t.TempDir(), "switchyard-mcp.json")
	writeFile(t, mcpConfig, strings.ReplaceAll(block, readmeURL, c.gw.url+"/mcp/alpha"))
	const tool = "mcp__github__echo"
	run := runAgent(t, c.bin, []string{"--settings", c.settings, "--mcp-config", mcpConfig, "--strict-mcp-config",
		"--allowedTools", tool, "-p", `Echo it. call:` + tool + `*1{"text":"swy-mcp-hello"}`},
		// Claude Code defers MCP tools behind its ToolSearch tool, which the
		// mock model does not drive: it declares them directly this way.
		append(c.env, "ENABLE_TOOL_SEARCH=false"))
	for _, r := range c.mock.take() {
		t.Logf("%s declared tools %s", r.URI, gjson.GetBytes(r.Body, "tools.#.name").Raw)
	}
	checkAgentOutput(t, run, mockllm.ToolResultPrefix, c.guard)
	if !strings.Contains(run.stdout, "alpha echo swy-mcp-hello") {
		t.Errorf("the final answer does not quote the tool's result %q", "alpha echo swy-mcp-hello")
	}
	seen, err := os.ReadFile(alpha.seen)
	if err != nil || len(seen) == 0 || strings.Contains(string(seen), c.token) {
		t.Errorf("the server saw (err %v):\n%s\nwant requests, none with the client key", err, seen)
	}
	waitMetric(t, c.gw, `switchyard_mcp_calls_total{key="`+agentKeyName+`",outcome="ok",server="alpha",tool="echo"}`, 1)
}

// TestMCPAggregate: /mcp serves both servers as one: the gateway answers
// initialize, lists every allowed tool as <server>__<tool>, and routes each
// call to its server (progress streamed) on a server session it keeps.
func TestMCPAggregate(t *testing.T) {
	t.Parallel()
	m := startMCPGateway(t, gatewayOptions{})
	for _, mode := range []string{"legacy", "auto"} {
		t.Run(mode, func(t *testing.T) {
			got := m.run(t, mcpKeyFull, mode, "aggregate")
			want := `["alpha__crash","alpha__delete_repo","alpha__echo","alpha__search_code","beta__crash","beta__delete_repo","beta__echo","beta__search_code"]`
			if s := jsonOf(got["tools"]); s != want {
				t.Errorf("tools = %s\nwant %s", s, want)
			}
			for field, want := range map[string]string{
				"search":   `{"ok":true,"text":"alpha found agg"}`,
				"echo":     `{"ok":true,"text":"beta echo agg"}`,
				"again":    `{"ok":true,"text":"beta echo agg2"}`,
				"progress": `["alpha step 1","alpha step 2","alpha step 3"]`,
			} {
				if s := jsonOf(got[field]); s != want {
					t.Errorf("%s = %s, want %s", field, s, want)
				}
			}
			if u, _ := got["unknown"].(map[string]any); u["code"] != float64(-32602) {
				t.Errorf("unknown tool = %s, want JSON-RPC error -32602", jsonOf(u))
			}
			narrow := m.run(t, mcpKeyNarrow, mode, "aggregate")
			if s := jsonOf(narrow["tools"]); s != `["alpha__echo","alpha__search_code"]` {
				t.Errorf("tools for the narrow key = %s", s)
			}
			if e, _ := narrow["echo"].(map[string]any); e["code"] != float64(-32001) {
				t.Errorf("beta__echo for the narrow key = %s, want refused", jsonOf(e))
			}
		})
	}
	for _, s := range []mcpServer{m.alpha, m.beta} {
		if seen, _ := os.ReadFile(s.seen); strings.Contains(string(seen), mcpKeyFull) || strings.Contains(string(seen), mcpKeyNarrow) {
			t.Errorf("%s saw a client key", s.url)
		}
	}
	waitMetric(t, m.gw, `switchyard_mcp_calls_total{key="full",outcome="ok",server="beta",tool="echo"}`, 4)
}

// TestMCPServerAddedLiveOverXDS: with Envoy on ADS, an MCP server added to
// the file is reachable at /mcp/<name> within 2 s, with the same Envoy.
func TestMCPServerAddedLiveOverXDS(t *testing.T) {
	t.Parallel()
	alpha := startMCPServer(t, mcpPython(t), "alpha", mcpTokenA)
	base := `
providers: [{name: unused, url: "http://127.0.0.1:9", schema: openai}]
routes: [{model: unused, provider: unused}]
client_keys: [{name: full, key_env: SWY_MCP_KEY_FULL}]
`
	g := startGateway(t, base, gatewayOptions{extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"},
		extraEnv: []string{"SWY_MCP_ALPHA=" + mcpTokenA, "SWY_MCP_KEY_FULL=" + mcpKeyFull}})
	s := &mcpSession{url: g.url + "/mcp/alpha", auth: "Bearer " + mcpKeyFull}
	initialize := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	if st, body := s.post(t, initialize); st != 404 || !strings.Contains(body, `unknown MCP server \"alpha\"`) {
		t.Fatalf("before the change: %d %s, want 404 unknown server", st, body)
	}
	pid := g.envoyPID
	written := time.Now()
	replaceFile(t, g.configPath, base+fmt.Sprintf("mcp_servers: [{name: alpha, url: %q, auth: {type: bearer, key_env: SWY_MCP_ALPHA}}]\n", alpha.url))
	for {
		st, body := s.post(t, initialize)
		if st == 200 && s.id != "" {
			break
		}
		if time.Since(written) > 2*time.Second {
			t.Fatalf("alpha not served 2 s after the change: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("alpha served %v after the change", time.Since(written).Round(time.Millisecond))
	if g.envoyPID != pid {
		t.Error("envoy was restarted")
	}
}

// startListening starts a test server that prints "listening PORT" once it
// listens, stops it when the test ends, and returns the port.
func startListening(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("%s did not start: %q %v", strings.Join(cmd.Args, " "), line, err)
	}
	return port
}
